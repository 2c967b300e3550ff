// Registrations that arrive together are written by one statement (WatchStore's batch).
// These pin down that batching changes nothing a client can see: duplicates inside one
// batch, several watches of one task in one batch, and one failing row in a batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WatchStore } from '../src/watches/store.js';
import { startStack, type Stack } from './support/gateway.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack({ TASKHOOK_POLL_SCALE: '100' }); // nothing gets polled while we look
});
afterAll(async () => s?.close());

describe('registration, batched', () => {
  it('60 concurrent POSTs: new ones 201, repeats 200 with the same watch, one schedule row per task', async () => {
    const hook = (i: number) => `${s.receiver.url}/hook/${i}`;
    const bodies = [
      ...Array.from({ length: 30 }, (_, i) => ({ task_id: `reg-unique-${i}`, callback_url: hook(0) })),
      // the same (task, callback) 15 times, in the same burst
      ...Array.from({ length: 15 }, () => ({ task_id: 'reg-dup', callback_url: hook(0) })),
      // one task, 15 different callbacks
      ...Array.from({ length: 15 }, (_, i) => ({ task_id: 'reg-shared', callback_url: hook(i) })),
    ];
    const results = await Promise.all(bodies.map((body) => s.api('/v1/watches', { body })));

    expect(results.every((r) => r.status === 201 || r.status === 200)).toBe(true);
    const uniques = results.slice(0, 30);
    expect(uniques.map((r) => r.status)).toEqual(Array(30).fill(201));
    expect(new Set(uniques.map((r) => r.json.id)).size).toBe(30);
    uniques.forEach((r, i) => expect(r.json).toMatchObject({ task_id: `reg-unique-${i}`, status: 'watching', callback_url: hook(0) }));

    const dups = results.slice(30, 45);
    expect(dups.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(dups.map((r) => r.json.id)).size).toBe(1);

    const shared = results.slice(45);
    expect(shared.map((r) => r.status)).toEqual(Array(15).fill(201));
    expect(new Set(shared.map((r) => r.json.callback_url)).size).toBe(15);
    for (const r of [...uniques, ...dups, ...shared]) expect(r.json.next_poll_at).not.toBeNull();

    const rows = await s.db.sql<{ task_id: string; n: number }[]>`
      select task_id, count(*)::int as n from upstream_tasks where task_id like 'reg-%' group by task_id`;
    expect(rows).toHaveLength(32);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    const [w] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from watches where task_id like 'reg-%'`;
    expect(w!.n).toBe(30 + 1 + 15);
  });

  it('a row the database refuses fails only its own registration, not the batch it rode in', async () => {
    const [tenant] = await s.db.sql<{ id: string }[]>`select id from tenants limit 1`;
    const store = new WatchStore(s.db.sql as never, 100);
    const attempt = (i: number, metadata: Record<string, unknown>) =>
      store.register(tenant!.id, { task_id: `reg-mixed-${i}`, callback_url: `${s.receiver.url}/hook`, metadata, events: ['task.completed'] });
    // (the API refuses NUL in metadata up front; straight to the store, jsonb refuses it)
    const settled = await Promise.allSettled([attempt(0, {}), attempt(1, { bad: 'a\u0000b' }), attempt(2, {}), attempt(3, { ok: 1 })]);
    expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/unicode|\\u0000/i);
    const rows = await s.db.sql<{ task_id: string }[]>`select task_id from watches where task_id like 'reg-mixed-%' order by task_id`;
    expect(rows.map((r) => r.task_id)).toEqual(['reg-mixed-0', 'reg-mixed-2', 'reg-mixed-3']);
  });
});
