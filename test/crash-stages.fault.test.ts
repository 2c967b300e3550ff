// Kill -9 at each stage of the pipeline, and freeze a worker past its lease.
// A separate API process takes the registrations so the faulty worker can die
// whenever its fault point says, without failing a registration.
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { FaultPoint } from '../src/faults.js';
import { TEST_API_KEY } from './support/env.js';
import { registerMany, startFleet, tally, waitAllDelivered, type Fleet } from './support/fleet.js';
import { processState, type GatewayProcess } from './support/process.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

const exited = (gw: GatewayProcess) =>
  gw.child.exitCode !== null || gw.child.signalCode !== null ? Promise.resolve() : once(gw.child, 'exit').then(() => {});

describe('SIGKILL at each stage, then restart', () => {
  it.each<[FaultPoint, number]>([
    ['poll.after-claim', 60],
    ['poll.before-commit', 60],
    ['delivery.before-send', 40],
    ['delivery.after-send', 40],
  ])('killed at %s (hit #%i): every watch delivered, duplicates share the webhook-id', async (point, at) => {
    f = await startFleet();
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const worker = await f.gateway({ TASKHOOK_ROLE: 'worker', TASKHOOK_FAULTS: `${point}=kill@${at}` });
    const n = 200;
    const ids = await registerMany(f, [api], n, 1000);
    await exited(worker);
    expect(worker.child.signalCode).toBe('SIGKILL');
    expect(worker.output()).toContain(`fault injection: kill at ${point}`);
    const [{ open } = { open: 0 }] = await f.db.sql<{ open: number }[]>`select count(*)::int as open from watches where status <> 'delivered'`;
    expect(open).toBeGreaterThan(0);

    const started = Date.now();
    await f.gateway({ TASKHOOK_ROLE: 'worker' });
    await waitAllDelivered(f.db, n, 120_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.maxIdsPerWatch).toBe(1);
    console.info(`kill at ${point}: ${n} watches, ${open} open at the kill, all delivered ${Date.now() - started} ms after restart, ${t.duplicates} duplicate(s) (same webhook-id)`);
  });
});

describe('a worker frozen past its lease', () => {
  async function oneWatch(fleet: Fleet, api: GatewayProcess) {
    const task = fleet.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await fetch(`${api.url}/v1/watches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ task_id: task.task_id, callback_url: `${fleet.receiver.url}/hook` }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
    const until = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('stale write rejected: frozen after sending, it wakes after another worker delivered and cannot overwrite the result', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    // The frozen worker's attempt gets a 500; the new owner's gets the 204 that settles it.
    f.receiver.replies.push({ status: 500 });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const stale = await f.gateway({ TASKHOOK_ROLE: 'worker', TASKHOOK_FAULTS: 'delivery.after-send=stop@1' });
    const watchId = await oneWatch(f, api);
    await waitFor(() => processState(stale.child.pid!) === 'T', 'the worker to freeze itself');
    expect(f.receiver.received).toHaveLength(1);

    await f.gateway({ TASKHOOK_ROLE: 'worker' }); // takes over once the lease (7 s) has run out
    await waitAllDelivered(f.db, 1, 30_000);
    stale.child.kill('SIGCONT');
    await waitFor(() => stale.output().includes('lease lost during delivery'), 'the stale worker to notice');

    const [d] = await f.db.sql`select status, attempts, last_response_status from deliveries where watch_id = ${watchId}`;
    expect(d).toMatchObject({ status: 'delivered', last_response_status: 204 });
    const attempts = await f.db.sql`select response_status, error from delivery_attempts order by id`;
    expect(attempts.map((a) => a.response_status).sort()).toEqual([204, 500]);
    expect(attempts.find((a) => a.response_status === 500)!.error).toMatch(/late: lease had passed/);
    const [w] = await f.db.sql`select status from watches where id = ${watchId}`;
    expect(w!.status).toBe('delivered');
    // two sends, one webhook-id: the frozen one's and the new owner's; no third
    expect(f.receiver.received).toHaveLength(2);
    expect(new Set(f.receiver.received.map((r) => r.headers['webhook-id'])).size).toBe(1);
  });

  it('frozen after claiming, it wakes, notices the lease ran out and does not send', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const stale = await f.gateway({ TASKHOOK_ROLE: 'worker', TASKHOOK_FAULTS: 'delivery.before-send=stop@1' });
    await oneWatch(f, api);
    await waitFor(() => processState(stale.child.pid!) === 'T', 'the worker to freeze itself');
    await f.gateway({ TASKHOOK_ROLE: 'worker' });
    await waitAllDelivered(f.db, 1, 30_000);
    stale.child.kill('SIGCONT');
    await waitFor(() => stale.output().includes('lease ran out before sending'), 'the stale worker to notice');
    expect(f.receiver.received).toHaveLength(1);
    const attempts = await f.db.sql`select count(*)::int as n from delivery_attempts`;
    expect(attempts[0]!.n).toBe(1);
  });
});
