// Scheduler v2 with real processes: workers own tasks while their heartbeat lives
// (src/poller/liveness.ts). Each worker polls upstream through its own tagging proxy, so
// the test knows which process polled which task, and when.
// - SIGKILL one of two workers, no restart: the survivor delivers every watch the dead
//   one owned within the takeover bound;
// - SIGSTOP a worker past the timeout: the other takes over; after SIGCONT the stale one
//   polls nothing and owns nothing it had;
// - a worker cut off from Postgres stops polling within half the timeout (+ a heartbeat);
// - three workers and many watches: no task polled by two workers closer than the
//   contract's minimum (outside takeovers, of which there are none here);
// - checkpoints keep the API's polls / next_poll_at within their documented bound.
import { afterEach, describe, expect, it } from 'vitest';
import { registerWatch, startFleet, tally, type Fleet } from './support/fleet.js';
import { processState, type GatewayProcess } from './support/process.js';
import { startTaggingProxy, type TaggingProxy } from './support/tagging-proxy.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { startStack, type Stack } from './support/gateway.js';
import { CHECKPOINT_MS, DEFAULT_WORKER_TIMEOUT_MS, HEARTBEAT_MS, SELF_FENCE_SHARE, TAKEOVER_SPREAD_MS } from '../src/poller/tuning.js';
import { BASE_MIN_MS } from '../src/upstream/schedule.js';
import { until } from './support/wait.js';

let f: Fleet | undefined;
let stack: Stack | undefined;
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await f?.close();
  f = undefined;
  await stack?.close();
  stack = undefined;
  while (closers.length) await closers.pop()!().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** the tests' cadence (support/env.ts TASKHOOK_POLL_SCALE) */
const SCALE = 0.05;

async function proxy(fleet: Fleet): Promise<TaggingProxy> {
  const p = await startTaggingProxy(fleet.upstream.url);
  closers.push(() => p.close());
  return p;
}

/** A TCP proxy to the fleet's Postgres (support/tcp-proxy.ts) and the DATABASE_URL through it. */
async function dbProxy(fleet: Fleet): Promise<{ tcp: TcpProxy; via: string }> {
  const u = new URL(fleet.db.url);
  const tcp = await startTcpProxy(u.hostname, Number(u.port || 5432));
  closers.push(() => tcp.close());
  u.hostname = '127.0.0.1';
  u.port = String(tcp.port);
  return { tcp, via: u.toString() };
}

async function workerIdOf(fleet: Fleet, gw: GatewayProcess): Promise<number> {
  return until(`worker row of pid ${gw.child.pid}`, async () => {
    const [row] = await fleet.db.sql<{ id: number }[]>`select id::int as id from workers where pid = ${gw.child.pid!} and dead_at is null order by id desc limit 1`;
    return row?.id;
  });
}

async function owners(fleet: Fleet): Promise<Map<number | null, number>> {
  const rows = await fleet.db.sql<{ owner: number | null; n: number }[]>`select owner_id::int as owner, count(*)::int as n from upstream_tasks group by 1`;
  return new Map(rows.map((r) => [r.owner, r.n]));
}

/** Every task of these watches ends upstream now (same task_id, a script that is already over). */
async function completeAll(fleet: Fleet) {
  const rows = await fleet.db.sql<{ task_id: string }[]>`select task_id from watches`;
  for (const r of rows) fleet.upstream.createTask({ task_id: r.task_id, durationMs: 0, processingAfterMs: 0 });
}

/** n watches of tasks that stay `processing` for an hour (completeAll ends them). */
async function registerPending(fleet: Fleet, api: GatewayProcess, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, async () => {
        const task = fleet.upstream.createTask({ durationMs: 3_600_000, processingAfterMs: 0 });
        return registerWatch(api, { task_id: task.task_id, callback_url: `${fleet.receiver.url}/hook` });
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

const TAKEOVER_MS = DEFAULT_WORKER_TIMEOUT_MS + HEARTBEAT_MS + TAKEOVER_SPREAD_MS;

describe('workers own tasks while alive', () => {
  it('SIGKILL one of two workers, no restart: the survivor delivers every watch the dead one owned within the takeover bound', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const [pa, pb] = [await proxy(f), await proxy(f)];
    const a = await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: pa.url });
    const b = await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: pb.url });
    const aId = await workerIdOf(f, a);
    const bId = await workerIdOf(f, b);
    const n = 120;
    const ids = await registerPending(f, api, n); // pending for the whole test
    // nothing is left unowned; the one that owns more dies (often both own a share, but the
    // first claim after the batch comes due may take all 120: balancing moves nothing that small)
    const o = await until('every task to be owned', async () => {
      const o = await owners(f!);
      return (o.get(aId) ?? 0) + (o.get(bId) ?? 0) === n ? o : undefined;
    });
    const [victim, victimId, survivorProxy] = (o.get(aId) ?? 0) >= (o.get(bId) ?? 0) ? [a, aId, pb] : [b, bId, pa];
    const aTasks = (await f.db.sql<{ task_id: string }[]>`select task_id from upstream_tasks where owner_id = ${victimId}`).map((r) => r.task_id);
    expect(aTasks.length).toBeGreaterThan(0);
    const killed = Date.now();
    expect(await victim.kill('SIGKILL')).toBeNull();
    await completeAll(f);
    const aWatches = new Set(
      (await f.db.sql<{ id: string }[]>`select id from watches where task_id = any(${aTasks})`).map((r) => r.id),
    );
    // the dead one's watches, each delivered by the survivor
    const tookMs = await until('every watch of the dead worker to be delivered', () => {
      const hit = new Set(f!.receiver.received.map((r) => r.json?.watch_id).filter((w) => aWatches.has(w)));
      return hit.size === aWatches.size ? Date.now() - killed : undefined;
    }, 60_000);
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.maxIdsPerWatch).toBe(1);
    // the bound: worker timeout + one heartbeat (the sweep) + the spread + one poll interval
    // (6 s × scale) + a delivery; 4 s of slack for a loaded box
    const bound = TAKEOVER_MS + 6_000 * SCALE + 4_000;
    console.info(`takeover: ${aTasks.length} tasks of the killed worker, all delivered by the survivor ${tookMs} ms after the kill (bound ${bound} ms)`);
    expect(tookMs).toBeLessThan(bound);
    expect(survivorProxy.polls.some(([, id]) => aTasks.includes(id))).toBe(true);
  });

  it('SIGSTOP past the timeout: the other takes over; after SIGCONT the stale worker polls and writes nothing of what it had', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const [pa, pb] = [await proxy(f), await proxy(f)];
    const a = await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: pa.url });
    const aId = await workerIdOf(f, a);
    const n = 60;
    await registerPending(f, api, n);
    await until('the first worker to own every task', async () => ((await owners(f!)).get(aId) === n ? true : undefined));
    const b = await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: pb.url });
    const bId = await workerIdOf(f, b);
    a.child.kill('SIGSTOP');
    await until('the worker to stop', () => (processState(a.child.pid!) === 'T' ? true : undefined));
    const stopped = Date.now();
    await until('the other worker to own every task', async () => ((await owners(f!)).get(bId) === n ? true : undefined), 30_000);
    const tookOverMs = Date.now() - stopped;
    const [dead] = await f.db.sql<{ dead: boolean }[]>`select dead_at is not null as dead from workers where id = ${aId}`;
    expect(dead!.dead).toBe(true);
    const continued = Date.now();
    a.child.kill('SIGCONT');
    // (how soon is not the point — a starved box delays it — what it does afterwards is)
    await until('the stale worker to notice', () => (a.output().includes('declared dead') ? true : undefined), 45_000).catch((err: Error) => {
      throw new Error(`${err.message}; its output:\n${a.output().slice(-4_000)}`);
    });
    await sleep(2_000);
    // nothing polled by the stale worker after it woke (it owns nothing: the other has all of them,
    // fewer than balancing would move); and nothing is owned by its old row
    const late = pa.polls.filter(([at]) => at > continued + 100);
    expect(late, 'polls by the stale worker after SIGCONT').toEqual([]);
    const o = await owners(f);
    expect(o.get(aId) ?? 0).toBe(0);
    expect(o.get(bId)).toBe(n);
    // and the watches still end, once, delivered by whoever owns them
    await completeAll(f);
    await until('all delivered', async () => {
      const [r] = await f!.db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
      return r!.n === n ? true : undefined;
    }, 60_000);
    expect(new Set(f.receiver.received.map((r) => r.json.watch_id)).size).toBe(n);
    expect(f.receiver.received.length).toBe(n);
    console.info(`paused worker: taken over ${tookOverMs} ms after SIGSTOP; after SIGCONT it polled nothing (${pa.polls.length} polls before, 0 after)`);
  });

  it('a worker cut off from Postgres stops polling within half the timeout, and picks up again when it is back', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const pa = await proxy(f);
    const { tcp, via } = await dbProxy(f);
    const a = await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: pa.url, DATABASE_URL: via });
    const n = 30;
    await registerPending(f, api, n);
    await until('polls through the worker', () => (new Set(pa.polls.map(([, id]) => id)).size === n ? true : undefined));
    const cut = Date.now();
    tcp.cut();
    await sleep(DEFAULT_WORKER_TIMEOUT_MS + 2_000);
    const last = Math.max(...pa.polls.map(([at]) => at));
    // half the timeout since the last acknowledged heartbeat (≤ one heartbeat before the cut),
    // plus one request deadline (1 s in the fleet) for a poll that had just started; 1 s slack
    const bound = DEFAULT_WORKER_TIMEOUT_MS * SELF_FENCE_SHARE + HEARTBEAT_MS + 1_000 + 1_000;
    console.info(`cut off: last poll ${last - cut} ms after the cut (bound ${bound} ms)`);
    expect(last - cut).toBeLessThan(bound);
    expect(a.output()).toContain('no heartbeat acknowledged');
    tcp.restore();
    await completeAll(f);
    await until('all delivered once it is back', async () => {
      const [r] = await f!.db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
      return r!.n === n ? true : undefined;
    }, 60_000);
  });

  it('a claim whose answer is lost (committed, then the connection dropped): the worker frees what it took and every watch ends', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const { tcp, via } = await dbProxy(f);
    // the watches first, not due for an hour, so the worker starts with nothing to claim
    const n = 40;
    const ids = await registerPending(f, api, n);
    await f.db.sql`update upstream_tasks set next_poll_at = now() + interval '1 hour'`;
    const a = await f.gateway({ TASKHOOK_ROLE: 'worker', DATABASE_URL: via });
    const aId = await workerIdOf(f, a);
    // from now on the worker's next statement that changes rows commits unanswered …
    tcp.hold();
    await f.db.sql`update upstream_tasks set next_poll_at = now()`;
    // … its next claim
    const claimed = await until('a claim while the answers are dropped', async () => {
      const m = (await owners(f!)).get(aId) ?? 0;
      return m > 0 ? m : undefined;
    }, 3_000);
    tcp.cut();
    tcp.restore();
    await completeAll(f);
    const restored = Date.now();
    await until('all delivered', async () => {
      const [r] = await f!.db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
      return r!.n === n ? true : undefined;
    }, 30_000);
    const tookMs = Date.now() - restored;
    // the same worker row, never fenced: the lost claim was undone by the worker itself
    expect(await workerIdOf(f, a)).toBe(aId);
    expect(a.output()).not.toContain('no heartbeat acknowledged');
    expect(a.output()).toContain('freed tasks a claim whose answer was lost');
    const t = tally(f.receiver, ids);
    expect(t.missing).toEqual([]);
    console.info(`lost claim answer: ${claimed} of ${n} tasks claimed unseen; all ${n} delivered ${tookMs} ms after the connection came back, by the same worker`);
  });

  it('three workers, many watches: no task is polled by two workers closer than the minimum interval', async () => {
    // Scaled down for a 2-core box shared with others: 1,000 watches at scale 0.5 (polls every
    // 1.5–3 s) for 30 s. Each poll is taken from the worker's own log line (`polling`, at debug,
    // stamped by the worker as it sends the request), not from a proxy in this busy process.
    const scale = 0.5;
    process.env.GATEWAY_OUTPUT_KEEP = String(64 * 1024 * 1024);
    closers.push(async () => void delete process.env.GATEWAY_OUTPUT_KEEP);
    // (5 s deadlines: a slow answer from the simulator in this busy test process must not
    // trip the tenant's upstream breaker and pause everything)
    f = await startFleet({ LOG_LEVEL: 'warn', TASKHOOK_POLL_SCALE: String(scale), TASKHOOK_UPSTREAM_TIMEOUT_S: '5' });
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const ws: GatewayProcess[] = [];
    for (let i = 0; i < 3; i++) ws.push(await f.gateway({ TASKHOOK_ROLE: 'worker', LOG_LEVEL: 'debug' }));
    const n = 1_000;
    await registerPending(f, api, n);
    const from = Date.now();
    await sleep(30_000);
    const to = Date.now();
    const byTask = new Map<string, Array<[number, number]>>();
    const perWorker = ws.map((w, i) => {
      let k = 0;
      for (const line of w.output().split('\n')) {
        if (!line.includes('"msg":"polling"')) continue;
        const { time, task_id } = JSON.parse(line) as { time: string; task_id: string };
        const at = Date.parse(time);
        if (at < from || at > to) continue;
        k++;
        (byTask.get(task_id) ?? byTask.set(task_id, []).get(task_id)!).push([at, i]);
      }
      return k;
    });
    const minGap = BASE_MIN_MS * scale;
    let crossWorker = 0;
    let tooClose = 0;
    let polls = 0;
    let closest = Number.POSITIVE_INFINITY;
    for (const list of byTask.values()) {
      list.sort((x, y) => x[0] - y[0]);
      polls += list.length;
      for (let i = 1; i < list.length; i++) {
        const gap = list[i]![0] - list[i - 1]![0];
        closest = Math.min(closest, gap);
        if (gap < minGap) {
          tooClose++;
          if (list[i]![1] !== list[i - 1]![1]) crossWorker++;
        }
      }
    }
    console.info(`three workers: ${n} watches, ${polls} polls in 30 s (${perWorker.join('/')} per worker), ${crossWorker} polled by two workers within the minimum ${minGap} ms, ${tooClose} too close in all, closest ${closest} ms`);
    expect(byTask.size).toBe(n);
    expect(crossWorker).toBe(0);
    expect(tooClose).toBe(0);
    expect(Math.min(...perWorker)).toBeGreaterThan(0);
  }, 240_000);
});

describe('checkpoints', () => {
  it('keep the API\'s polls and next_poll_at within the checkpoint bound of the truth', async () => {
    stack = await startStack();
    const task = stack.upstream.createTask({ processingAfterMs: 600_000, durationMs: 1_200_000 });
    const res = await stack.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${stack.receiver.url}/hook` } });
    expect(res.status).toBe(201);
    // the bound at the tests' scale: the checkpoint interval (scaled) + its tick + the write
    const checkpointMs = CHECKPOINT_MS * SCALE;
    const boundMs = checkpointMs * 1.25 + 1_000;
    const minGap = BASE_MIN_MS * SCALE;
    let worstLagPolls = 0;
    let worstStaleMs = 0;
    const started = Date.now();
    while (Date.now() - started < 8_000) {
      const w = (await stack.api(`/v1/watches/${res.json.id}`)).json;
      const truth = stack.upstream.requests(task.task_id);
      const at = Date.now();
      worstLagPolls = Math.max(worstLagPolls, truth - w.polls);
      if (w.next_poll_at) worstStaleMs = Math.max(worstStaleMs, at - Date.parse(w.next_poll_at));
      await sleep(97);
    }
    console.info(`checkpoint: API polls at most ${worstLagPolls} behind the upstream's count, next_poll_at at most ${worstStaleMs} ms in the past (bound ${boundMs} ms)`);
    expect(worstLagPolls).toBeLessThanOrEqual(Math.ceil(boundMs / minGap));
    expect(worstStaleMs).toBeLessThan(boundMs);
    expect(stack.upstream.requests(task.task_id)).toBeGreaterThan(10);
  });
});
