// End to end in one process: register → poll the simulated upstream → signed
// webhook to a verifying receiver, for every capability and outcome.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus as waitForStatusOf } from './support/wait.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

async function register(taskId: string, extra: Record<string, unknown> = {}) {
  const res = await s.api('/v1/watches', { body: { task_id: taskId, callback_url: `${s.receiver.url}/hook`, ...extra } });
  expect(res.status, res.text).toBe(201);
  return res.json;
}

const waitForStatus = (id: string, status: string, timeoutMs?: number) => waitForStatusOf(s, id, status, timeoutMs);

const hooksFor = (watchId: string) => s.receiver.received.filter((r) => r.json?.watch_id === watchId);

describe('register → poll → webhook', () => {
  const cases = (['voice', 'image', 'video'] as const).flatMap((capability) =>
    (['completed', 'failed', 'cancelled'] as const).map((outcome) => ({ capability, outcome })),
  );

  it.each(cases)('$capability task $outcome produces exactly one verified webhook carrying the final upstream object', async ({ capability, outcome }) => {
    const task = s.upstream.createTask({ capability, outcome, durationMs: 400, processingAfterMs: 100, extra: { surprise: { nested: [1, 'two'] } } });
    const watch = await register(task.task_id, { metadata: { order: 42, who: capability } });
    expect(watch.status).toBe('watching');
    expect(watch.id).toMatch(/^wat_/);

    const done = await waitForStatus(watch.id, 'delivered');
    const hooks = hooksFor(watch.id);
    expect(hooks).toHaveLength(1);
    const hook = hooks[0]!;
    expect(hook.verified, hook.verifyError).toBe(true);
    expect(hook.headers['webhook-id']).toMatch(/^msg_/);
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.headers['user-agent']).toMatch(/^taskhook\//);
    expect(hook.json.type).toBe(`task.${outcome}`);
    expect(hook.json.metadata).toEqual({ order: 42, who: capability });
    expect(new Date(hook.json.timestamp).toISOString()).toBe(hook.json.timestamp);
    const final = s.upstream.store.get(task.task_id, Date.now());
    expect(hook.json.data).toEqual(final);
    if (outcome === 'completed') {
      expect(hook.json.data.surprise).toEqual({ nested: [1, 'two'] });
      const field = { voice: 'audioUrl', image: 'imageUrl', video: 'videoUrl' }[capability];
      expect(hook.json.data[field]).toBeTypeOf('string');
    }
    if (outcome === 'failed') expect(hook.json.data.error).toMatchObject({ code: expect.any(String), message: expect.any(String), type: expect.any(String) });

    expect(done.task).toEqual(final);
    expect(done.polls).toBeGreaterThanOrEqual(1);
    expect(done.next_poll_at).toBeNull();
    expect(done.last_delivery).toMatchObject({ webhook_id: hook.headers['webhook-id'], status: 'delivered', attempts: 1 });
    const snap = await s.api(`/v1/tasks/${task.task_id}`);
    expect(snap.status).toBe(200);
    expect(snap.json).toEqual(final);
  });

  it('sends task.processing once when the watch opts in, then the terminal event', async () => {
    const task = s.upstream.createTask({ capability: 'video', durationMs: 1500, processingAfterMs: 100 });
    const watch = await register(task.task_id, { events: ['task.processing', 'task.completed'] });
    await waitForStatus(watch.id, 'delivered');
    const types = hooksFor(watch.id).map((h) => h.json.type);
    expect(types).toEqual(['task.processing', 'task.completed']);
    const ids = hooksFor(watch.id).map((h) => h.headers['webhook-id']);
    expect(new Set(ids).size).toBe(2);
  });

  it('three watches on one task cost no more upstream requests than one', async () => {
    const single = s.upstream.createTask({ durationMs: 1200 });
    const shared = s.upstream.createTask({ task_id: `${single.task_id}-shared`, durationMs: 1200 });
    const one = await register(single.task_id);
    const receivers = await Promise.all(
      [1, 2, 3].map((i) => s.api('/v1/watches', { body: { task_id: shared.task_id, callback_url: `${s.receiver.url}/hook/${i}` } })),
    );
    expect(receivers.map((r) => r.status)).toEqual([201, 201, 201]);
    await waitForStatus(one.id, 'delivered');
    for (const r of receivers) await waitForStatus(r.json.id, 'delivered');
    expect(s.upstream.requests(shared.task_id)).toBeLessThanOrEqual(s.upstream.requests(single.task_id) + 1);
    const sharedHooks = s.receiver.received.filter((h) => h.json?.data?.task_id === shared.task_id);
    expect(sharedHooks.map((h) => h.path).sort()).toEqual(['/hook/1', '/hook/2', '/hook/3']);
  });

  it('registering the same task and callback again returns the existing watch with 200', async () => {
    const task = s.upstream.createTask({ durationMs: 60_000 });
    const first = await register(task.task_id);
    const again = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(first.id);
    const list = await s.api(`/v1/watches?task_id=${task.task_id}`);
    expect(list.json.data).toHaveLength(1);
  });

  it('gives up an unknown task with watch.failed/task_not_found after the grace period', async () => {
    const watch = await register('never-submitted-task');
    await waitForStatus(watch.id, 'delivered');
    const [hook] = hooksFor(watch.id);
    expect(hook!.verified).toBe(true);
    expect(hook!.json.type).toBe('watch.failed');
    expect(hook!.json.data).toEqual({
      task_id: 'never-submitted-task',
      status: 'failed',
      error: { code: 'task_not_found', message: expect.any(String), type: 'gateway' },
    });
    // polled more than once: a 404 inside the grace period is tolerated
    expect(s.upstream.requests('never-submitted-task')).toBeGreaterThan(1);
  });

  it('gives up with watch.failed/upstream_unauthorized after three 401s in a row', async () => {
    const task = s.upstream.createTask({ durationMs: 60_000 });
    s.upstream.store.setOverride(task.task_id, { status: 401, body: { error: { code: 'unauthorized' } } });
    const watch = await register(task.task_id);
    await waitForStatus(watch.id, 'delivered');
    const [hook] = hooksFor(watch.id);
    expect(hook!.json.data.error.code).toBe('upstream_unauthorized');
    expect(s.upstream.requests(task.task_id)).toBe(3);
  });

  it('keeps polling through a 500, a malformed body and a 429 (honouring Retry-After) without failing the watch', async () => {
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const requestsAfter = async (n: number) => {
      const until = Date.now() + 15_000;
      while (s.upstream.requests(task.task_id) < n) {
        if (Date.now() > until) throw new Error(`upstream saw ${s.upstream.requests(task.task_id)} requests, wanted ${n}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return Date.now();
    };
    s.upstream.store.setOverride(task.task_id, { status: 500, body: 'oops', times: 1 });
    const watch = await register(task.task_id);
    await requestsAfter(1);
    s.upstream.store.setOverride(task.task_id, { status: 200, body: '{"task_id": oops', times: 1 });
    await requestsAfter(2);
    s.upstream.store.setOverride(task.task_id, { status: 429, headers: { 'retry-after': '2' }, body: '{}', times: 1 });
    const throttledAt = await requestsAfter(3);
    const nextAt = await requestsAfter(4);
    // the schedule is scaled to ~0.3 s in tests, and error backoff to < 3 s; Retry-After is not scaled
    expect(nextAt - throttledAt).toBeGreaterThanOrEqual(1_900);
    const done = await waitForStatus(watch.id, 'delivered', 30_000);
    expect(hooksFor(watch.id).map((h) => h.json.type)).toEqual(['task.completed']);
    expect(done.polls).toBe(4);
  });

  it('cancelling a watch stops it and answers with status cancelled', async () => {
    const task = s.upstream.createTask({ durationMs: 60_000 });
    const watch = await register(task.task_id);
    const res = await s.api(`/v1/watches/${watch.id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('cancelled');
    const before = s.upstream.requests(task.task_id);
    const rows = await s.db.sql`select count(*)::int as n from upstream_tasks where task_id = ${task.task_id}`;
    expect(rows[0]!.n).toBe(0);
    expect(s.upstream.requests(task.task_id)).toBe(before);
  });
});
