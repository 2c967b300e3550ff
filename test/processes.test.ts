// Real processes: kill -9 a gateway mid-flight and restart it; race gateways on
// one database; stop one gracefully. The promise under test is CONTRACT §6.
import { afterEach, describe, expect, it } from 'vitest';
import { registerMany, startFleet, tally, waitAllDelivered, type Fleet } from './support/fleet.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

describe('processes', () => {
  it('SIGKILL with deliveries in flight, then restart: every watch delivered, duplicates share the webhook-id', async () => {
    f = await startFleet();
    f.receiver.fallback = { status: 200, delayMs: 150 };
    const first = await f.gateway();
    const n = 200;
    const ids = await registerMany(f, [first], n);
    await f.receiver.waitFor((all) => all.length >= 40, 30_000);
    expect(await first.kill('SIGKILL')).toBeNull();
    const [{ pending } = { pending: 0 }] = await f.db.sql<{ pending: number }[]>`
      select count(*)::int as pending from watches where status <> 'delivered'`;
    expect(pending).toBeGreaterThan(0); // the kill really interrupted work

    await f.gateway();
    const recoveredMs = await waitAllDelivered(f.db, n, 60_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.watchesHit).toBe(n);
    expect(t.maxIdsPerWatch).toBe(1);
    console.info(`crash: ${n} watches, ${pending} unfinished at kill, all delivered ${recoveredMs} ms after restart, ${t.duplicates} duplicate request(s), all with the same webhook-id`);
  });

  it.each([2, 3])('%i processes on one database deliver every watch exactly once', async (count) => {
    // Long deadlines, so long leases: only a real crash window (none here) may duplicate,
    // not a process starved of CPU on a busy machine for a few seconds.
    f = await startFleet({ TASKHOOK_UPSTREAM_TIMEOUT_S: '5', TASKHOOK_DELIVERY_TIMEOUT_S: '5' });
    const gws = [];
    for (let i = 0; i < count; i++) gws.push(await f.gateway());
    const n = 300;
    const ids = await registerMany(f, gws, n);
    const ms = await waitAllDelivered(f.db, n, 60_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.requests).toBe(n);
    expect(t.duplicates).toBe(0);
    const polled = await f.db.sql`select count(*)::int as n from task_snapshots`;
    expect(polled[0]!.n).toBe(n);
    console.info(`race: ${count} processes, ${n} watches, ${t.requests} webhooks, 0 duplicates, done ${ms} ms after the last registration`);
  });

  it('SIGTERM drains and exits 0; a rolling restart of one of two processes loses nothing', async () => {
    f = await startFleet();
    f.receiver.fallback = { status: 200, delayMs: 100 };
    const a = await f.gateway();
    const b = await f.gateway();
    const n = 200;
    const ids = await registerMany(f, [a, b], n);
    await f.receiver.waitFor((all) => all.length >= 30, 30_000);
    expect(await a.kill('SIGTERM')).toBe(0);
    await f.gateway(); // the replacement
    await waitAllDelivered(f.db, n, 60_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.maxIdsPerWatch).toBe(1);
    expect(t.duplicates).toBe(0);
  });
});

describe('graceful stop past its deadline', () => {
  it('hands back the lease of a delivery still hanging, so another process retries it at once', async () => {
    // A 5 s attempt deadline makes the lease 15 s: only a handed-back lease explains a fast retry.
    f = await startFleet({ TASKHOOK_DELIVERY_TIMEOUT_S: '5', TASKHOOK_SHUTDOWN_TIMEOUT_S: '1' });
    f.receiver.replies.push({ status: 200, hang: true });
    const a = await f.gateway();
    const ids = await registerMany(f, [a], 1);
    await f.receiver.waitFor((all) => all.length === 1);
    const stopping = Date.now();
    expect(await a.kill('SIGTERM')).toBe(0);
    const stopMs = Date.now() - stopping;
    expect(stopMs).toBeLessThan(5_000);
    await f.gateway();
    const redeliveredMs = await waitAllDelivered(f.db, 1, 30_000);
    expect(stopMs + redeliveredMs).toBeLessThan(10_000);
    const t = tally(f.receiver, ids);
    expect(t.maxIdsPerWatch).toBe(1);
    console.info(`hand-back: stopped in ${stopMs} ms with a delivery hanging; redelivered by the next process ${redeliveredMs} ms later (lease was 15 s)`);
  });
});
