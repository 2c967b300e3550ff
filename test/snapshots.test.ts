// The last-known task snapshot (GET /v1/watches/{id}, /v1/tasks/{id}) follows upstream's
// answers, while polls that get the same answer as last time write no snapshot at all
// (the poller compares hashes instead of sending the snapshot back to Postgres).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack(); // tests' cadence: polls every 150–300 ms
});
afterAll(async () => s?.close());

async function register(taskId: string) {
  const res = await s.api('/v1/watches', { body: { task_id: taskId, callback_url: `${s.receiver.url}/hook` } });
  expect(res.status, res.text).toBe(201);
  return res.json.id as string;
}

/** Reads the watch through the API until `done` says so. */
async function watchUntil(id: string, done: (w: any) => boolean, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const w = (await s.api(`/v1/watches/${id}`)).json;
    if (done(w)) return w;
    if (Date.now() > until) throw new Error(`watch ${id} never got there: ${JSON.stringify(w)}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

describe('task snapshots', () => {
  it('an unchanged answer is not written again: the snapshot row stays as it was over many polls', async () => {
    const task = s.upstream.createTask({ processingAfterMs: 600_000, durationMs: 1_200_000 }); // pending for the whole test
    const id = await register(task.task_id);
    await watchUntil(id, (w) => w.polls >= 1 && w.task !== null);
    const [first] = await s.db.sql<{ updated_at: Date; snapshot: string }[]>`
      select updated_at, snapshot from task_snapshots where task_id = ${task.task_id}`;
    const [hash] = await s.db.sql<{ h: string | null }[]>`select snapshot_hash::text as h from upstream_tasks where task_id = ${task.task_id}`;
    expect(hash!.h).not.toBeNull();
    const w = await watchUntil(id, (w) => w.polls >= 5);
    expect(w.task.status).toBe('pending');
    const [later] = await s.db.sql<{ updated_at: Date; snapshot: string }[]>`
      select updated_at, snapshot from task_snapshots where task_id = ${task.task_id}`;
    expect(later!.updated_at.getTime()).toBe(first!.updated_at.getTime());
    expect(later!.snapshot).toBe(first!.snapshot);
  });

  it('a changing answer is stored every time it changes: the watch shows progress moving, then the final object', async () => {
    const task = s.upstream.createTask({ processingAfterMs: 0, durationMs: 4_000 });
    const id = await register(task.task_id);
    const seen = new Set<number>();
    await watchUntil(id, (w) => {
      if (w.task?.status === 'processing' && typeof w.task.progress === 'number') seen.add(w.task.progress);
      return seen.size >= 3;
    });
    const w = await watchUntil(id, (w) => w.status === 'delivered', 20_000);
    expect(w.task.status).toBe('completed');
    expect(w.task.progress).toBe(1);
    const snap = await s.api(`/v1/tasks/${task.task_id}`);
    expect(snap.json.status).toBe('completed');
  });
});
