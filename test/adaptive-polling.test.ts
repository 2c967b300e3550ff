// End to end: two gateways, one on the fixed cadence and one adaptive, watch the same
// tasks (the same ids and durations on two simulated upstreams, so each upstream counts
// one gateway's requests). After a warm-up that teaches the adaptive one the kind, it
// polls the kind measurably less while the webhooks arrive as soon as with fixed, and
// the watch shows an ETA. Time-compressed (TASKHOOK_POLL_SCALE=0.1): a 60 s video takes 6 s (long enough
// that a loaded machine's own delays do not swamp the cadence being compared).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { drawDurationMs, type DurationSpec } from '../src/sim/durations.js';
import { seeded } from '../bench/adaptive-model.js';
import { createTestDb, type TestDb } from './support/db.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './support/env.js';

const SCALE = 0.1;
const spec: DurationSpec = { capability: 'video', action: 'generate', model: 'vid-e2e', medianMs: 60_000, sigma: 0.1, tailShare: 0 };

interface Side {
  db: TestDb;
  sim: SimUpstream;
  gateway: Gateway;
  api(path: string, init?: { body?: unknown }): Promise<{ status: number; json: any; headers: Headers }>;
}

let receiver: Receiver;
let fixed: Side;
let adaptive: Side;

async function side(strategy: 'fixed' | 'adaptive'): Promise<Side> {
  const db = await createTestDb();
  const sim = await startSimUpstream({ apiKeys: ['sk_test'], tasks: { fractionalTimestamps: true, noProgress: true } });
  const cfg = loadConfig(testEnv(db.url, sim.url, { TASKHOOK_POLL_SCALE: String(SCALE), TASKHOOK_POLL_STRATEGY: strategy }));
  const gateway = await startGateway(cfg, createLogger(cfg.logLevel), { idleMs: 20, learnEveryMs: 300 });
  return {
    db,
    sim,
    gateway,
    async api(path, init = {}) {
      const res = await fetch(`${gateway.url}${path}`, {
        method: init.body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
        body: init.body ? JSON.stringify(init.body) : undefined,
      });
      return { status: res.status, json: await res.json(), headers: res.headers };
    },
  };
}

beforeAll(async () => {
  receiver = await startReceiver([TEST_SIGNING_SECRET]);
  [fixed, adaptive] = await Promise.all([side('fixed'), side('adaptive')]);
});
afterAll(async () => {
  for (const s of [fixed, adaptive]) {
    if (!s) continue;
    await s.gateway.stop();
    await s.sim.close();
    await s.db.drop();
  }
  await receiver?.close();
});

const rand = seeded(16);
let n = 0;

/** The same task (id, kind, duration) on both upstreams, watched by both gateways. */
async function launch(count: number) {
  const tasks = Array.from({ length: count }, () => ({ task_id: `e2e-${++n}`, durationMs: drawDurationMs(spec, rand, SCALE) }));
  const watches: { fixed: string; adaptive: string; task_id: string }[] = [];
  for (const t of tasks) {
    const script = { ...t, capability: spec.capability, action: spec.action, model: spec.model, processingAfterMs: 50 };
    fixed.sim.createTask(script);
    adaptive.sim.createTask(script);
  }
  for (const t of tasks) {
    const body = { task_id: t.task_id, callback_url: `${receiver.url}/hook` };
    const [f, a] = await Promise.all([fixed.api('/v1/watches', { body }), adaptive.api('/v1/watches', { body })]);
    expect(f.status).toBe(201);
    expect(a.status).toBe(201);
    watches.push({ fixed: f.json.id, adaptive: a.json.id, task_id: t.task_id });
  }
  return watches;
}

const delivered = (ids: string[]) => receiver.waitFor((got) => ids.every((id) => got.some((r) => r.json?.watch_id === id)), 30_000);

/** Receipt − upstream completed_at (ms) per watch. */
function lags(ids: string[]): number[] {
  return ids.map((id) => {
    const hook = receiver.received.find((r) => r.json?.watch_id === id)!;
    return hook.at - hook.json.data.completed_at * 1000;
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('adaptive polling, end to end', () => {
  it('after warm-up polls a kind measurably less than the fixed cadence, webhooks as soon, and shows an ETA', async () => {
    // warm-up: 30 completions teach the adaptive gateway the kind (minEvents 20)
    const warm = await launch(30);
    await delivered(warm.flatMap((w) => [w.fixed, w.adaptive]));

    // the learner folds within ~300 ms + settle; a fresh task's watch gets an ETA once the kind is known
    const [probe] = await launch(1);
    let eta: { p50: string; p90: string } | null = null;
    for (let i = 0; i < 100 && !eta; i++) {
      await new Promise((r) => setTimeout(r, 100));
      eta = (await adaptive.api(`/v1/watches/${probe!.adaptive}`)).json.eta;
    }
    expect(eta, 'the adaptive gateway learned the kind').not.toBeNull();
    const created = adaptive.sim.store.get(probe!.task_id, Date.now())!.created_at * 1000;
    // p50 ≈ created + 6 s (the kind's median, time-compressed), p90 after it
    expect(Date.parse(eta!.p50) - created).toBeGreaterThan(5_000);
    expect(Date.parse(eta!.p50) - created).toBeLessThan(7_200);
    expect(Date.parse(eta!.p90)).toBeGreaterThanOrEqual(Date.parse(eta!.p50));
    const task = await fetch(`${adaptive.gateway.url}/v1/tasks/${probe!.task_id}`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(task.headers.get('taskhook-eta-p50')).toMatch(/^\d{4}-\d\d-\d\dT/);
    await delivered([probe!.fixed, probe!.adaptive]);

    // measured: the same 30 tasks through both
    fixed.sim.resetCounts();
    adaptive.sim.resetCounts();
    const run = await launch(30);
    await delivered(run.flatMap((w) => [w.fixed, w.adaptive]));
    const perTask = (s: Side) => s.sim.requests() / run.length;
    const fixedPolls = perTask(fixed);
    const adaptivePolls = perTask(adaptive);
    expect(adaptivePolls, `adaptive ${adaptivePolls} vs fixed ${fixedPolls} requests per task`).toBeLessThan(fixedPolls * 0.75);

    if (process.env.ADAPTIVE_E2E_PRINT) console.info({ fixedPolls, adaptivePolls, lagFixed: median(lags(run.map((w) => w.fixed))), lagAdaptive: median(lags(run.map((w) => w.adaptive))) });
    // webhooks as soon: the median lag no worse than fixed's (one fixed gap of slack for a loaded box)
    const lagFixed = median(lags(run.map((w) => w.fixed)));
    const lagAdaptive = median(lags(run.map((w) => w.adaptive)));
    expect(lagAdaptive, `lag p50 adaptive ${lagAdaptive} ms vs fixed ${lagFixed} ms`).toBeLessThanOrEqual(lagFixed * 1.1 + 300 * SCALE * 10);

    // the finished watch shows no ETA any more
    const done = await adaptive.api(`/v1/watches/${run[0]!.adaptive}`);
    expect(done.json.eta).toBeNull();
  }, 90_000);
});
