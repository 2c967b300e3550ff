// Found by the chaos soak (bench/README.md, "Soak"): a worker stopped with SIGTERM while
// it held a backlog for one receiver (sends waiting for a connection slot) went on
// starting those sends during its drain — and after the drain deadline had handed their
// leases to another process, which sent them too: duplicates from a graceful stop. Sends
// not begun when the stop comes are now handed back instead of begun.
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { registerMany, startFleet, tally, waitAllDelivered, type Fleet } from './support/fleet.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

describe('SIGTERM with a backlog for one receiver', () => {
  it('drains what it is sending, hands back what it had not begun, and nothing is sent twice', async () => {
    // 32 sends at once per receiver: 64 claimed, half of them waiting for a slot. A send takes
    // 1.2 s, inside the 2 s drain: the ones in flight finish, the waiting ones would not.
    f = await startFleet({ TASKHOOK_SHUTDOWN_TIMEOUT_S: '2' });
    f.receiver.fallback = { status: 204, delayMs: 1_200 };
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const n = 100;
    const ids = await registerMany(f, [api], n, 1);
    const first = await f.gateway({ TASKHOOK_ROLE: 'worker' });
    await f.receiver.waitFor((all) => all.length >= 20, 30_000);
    const exited = once(first.child, 'exit');
    first.child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    const sentByFirst = f.receiver.received.length;
    expect(sentByFirst).toBeLessThan(n); // the stop really left work behind

    await f.gateway({ TASKHOOK_ROLE: 'worker' });
    await waitAllDelivered(f.db, n, 60_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.duplicates).toBe(0);
    console.info(`graceful stop with a backlog: ${sentByFirst} sent before the stop, the rest by the next worker, ${t.requests} requests for ${n} webhooks`);
  });
});
