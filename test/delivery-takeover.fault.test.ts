// Deliveries follow the worker that claimed them (issue 14, "the same liveness for
// deliveries"): a claim records its worker (deliveries.leased_by), and the heartbeat sweep
// that declares a worker dead also makes its leased deliveries due at once. So a killed
// process's in-flight deliveries are retried by a survivor after the worker timeout, not
// after their lease (2 × the delivery deadline + 5 s: 35 s here). Real processes: SIGKILL
// one of two workers while its sends hang at a slow receiver, no restart.
import { afterEach, describe, expect, it } from 'vitest';
import { registerWatch, startFleet, tally, type Fleet } from './support/fleet.js';
import { DEFAULT_WORKER_TIMEOUT_MS } from '../src/poller/tuning.js';
import { processState, type GatewayProcess } from './support/process.js';
import { leaseFor } from '../src/gateway.js';
import { until } from './support/wait.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** n watches of tasks that are already over, each to its own callback URL (no per-URL cap holds one back) */
async function registerDone(fleet: Fleet, api: GatewayProcess, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const task = fleet.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    ids.push(await registerWatch(api, { task_id: task.task_id, callback_url: `${fleet.receiver.url}/hook/${i}` }));
  }
  return ids;
}

/**
 * A fleet (api + worker `a`, deliveries timing out after `deliveryTimeoutS`) whose receiver
 * hangs every request until `release()`, with the deliveries of `n` watches in flight from `a`.
 */
async function hungDeliveries(n: number, deliveryTimeoutS: number) {
  const fleet = (f = await startFleet({ LOG_LEVEL: 'warn', TASKHOOK_DELIVERY_TIMEOUT_S: String(deliveryTimeoutS) }));
  const api = await fleet.gateway({ TASKHOOK_ROLE: 'api' });
  const a = await fleet.gateway({ TASKHOOK_ROLE: 'worker' });
  let hang = true;
  fleet.receiver.decide = () => (hang ? { status: 204, hang: true } : undefined);
  const ids = await registerDone(fleet, api, n);
  await fleet.receiver.waitFor((all) => new Set(all.map((r) => r.json?.watch_id)).size === n, 30_000);
  return { fleet, a, ids, release: () => void (hang = false) };
}

describe('deliveries follow their worker', () => {
  it('SIGKILL a worker with deliveries in flight, no restart: the survivor delivers them after the worker timeout, not the lease', async () => {
    const deliveryTimeoutS = 15;
    const leaseMs = leaseFor(deliveryTimeoutS * 1000);
    const n = 12;
    // the slow receiver: every request hangs until the kill; every delivery in flight from the first worker (the only one so far)
    const { fleet, a, ids, release } = await hungDeliveries(n, deliveryTimeoutS);
    const [aRow] = await fleet.db.sql<{ id: number }[]>`select id::int as id from workers where pid = ${a.child.pid!} and dead_at is null`;
    const leased = await fleet.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where leased_by = ${aRow!.id} and lease_token is not null`;
    expect(leased[0]!.n).toBe(n);
    const b = await fleet.gateway({ TASKHOOK_ROLE: 'worker' });
    const sentBefore = fleet.receiver.received.length;
    release();
    const killed = Date.now();
    expect(await a.kill('SIGKILL')).toBeNull();
    await until('every delivery of the killed worker to be delivered by the survivor', async () => {
      const [r] = await fleet.db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
      return r!.n === n ? true : undefined;
    }, 60_000);
    const tookMs = Date.now() - killed;
    const t = tally(fleet.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.maxIdsPerWatch).toBe(1); // the retry is the same webhook-id
    expect(fleet.receiver.received.length - sentBefore).toBeGreaterThanOrEqual(n);
    expect(b.output()).toContain('took over the tasks and deliveries of a dead worker');
    // generous: the worker timeout + a heartbeat + a claim on a loaded box, well short of the lease
    const bound = Math.min(20_000, leaseMs - 10_000);
    console.info(`delivery takeover: ${n} in-flight deliveries of the killed worker delivered by the survivor ${tookMs} ms after the kill (worker timeout ${DEFAULT_WORKER_TIMEOUT_MS} ms, lease ${leaseMs} ms, bound ${bound} ms)`);
    expect(tookMs).toBeLessThan(bound);
  });

  it('SIGSTOP a worker with deliveries in flight past the timeout: the other delivers them; after SIGCONT the stale one records and sends nothing new', async () => {
    const n = 8;
    const { fleet, a, ids, release } = await hungDeliveries(n, 15);
    await fleet.gateway({ TASKHOOK_ROLE: 'worker' });
    a.child.kill('SIGSTOP');
    await until('the worker to stop', () => (processState(a.child.pid!) === 'T' ? true : undefined));
    release();
    await until('every watch delivered by the other worker', async () => {
      const [r] = await fleet.db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
      return r!.n === n ? true : undefined;
    }, 60_000);
    const sent = fleet.receiver.received.length;
    a.child.kill('SIGCONT');
    // its requests of before the pause time out now (15 s deadline): their completions are fenced
    await until('the stale worker to notice', () => (a.output().includes('declared dead') ? true : undefined), 20_000);
    await sleep(3_000);
    expect(fleet.receiver.received.length - sent, 'requests sent after SIGCONT').toBe(0);
    const t = tally(fleet.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.maxIdsPerWatch).toBe(1);
    const [late] = await fleet.db.sql<{ n: number }[]>`select count(*)::int as n from delivery_attempts where error like '%late: lease had passed%'`;
    const [st] = await fleet.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where status <> 'delivered'`;
    expect(st!.n).toBe(0); // the stale worker's timed-out attempts did not overwrite a delivered row
    console.info(`paused worker with deliveries in flight: the other delivered all ${n}; after SIGCONT 0 new requests, ${late!.n} late attempt(s) recorded as such`);
  });
});
