// Upstream answering 500, 429 with Retry-After, garbage JSON, or never answering, for
// a while: watches are delayed, never failed early; the request rate during Retry-After
// stays ≈ 0 (per-tenant upstream breaker, src/poller/poller.ts). CONTRACT §5.
import { describe, expect, it } from 'vitest';
import type { Override } from '../src/sim/tasks.js';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus } from './support/wait.js';

const WATCHES = 40;
const STORM_MS = 3_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 40 watches on tasks that are already completed upstream (only the storm stands in the way). */
async function registerWatches(s: Stack): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < WATCHES; i++) {
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
    expect(res.status, res.text).toBe(201);
    ids.push(res.json.id as string);
  }
  return ids;
}

/** Resolves with the time the upstream has seen at least `n` requests. */
async function upstreamRequests(s: Stack, n: number, timeoutMs = 10_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (s.upstream.requests() < n) {
    if (Date.now() > until) throw new Error(`upstream saw ${s.upstream.requests()} requests, wanted ${n}`);
    await sleep(2);
  }
  return Date.now();
}

/** Every watch ends delivered with exactly one task.completed; none failed early. */
async function expectAllCompleted(s: Stack, ids: string[]) {
  for (const id of ids) await waitForStatus(s, id, 'delivered', 30_000);
  const types = s.receiver.received.map((r) => r.json?.type);
  expect(types.filter((t) => t === 'watch.failed')).toEqual([]);
  for (const id of ids) {
    const hooks = s.receiver.received.filter((r) => r.json?.watch_id === id);
    expect(hooks.map((h) => h.json.type), id).toEqual(['task.completed']);
    expect(hooks[0]!.verified).toBe(true);
  }
  const [failed] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where event_type = 'watch.failed'`;
  expect(failed!.n).toBe(0);
}

/**
 * The storm answers every poll with `override` from registration until STORM_MS after the
 * first request; returns how many requests it took and when the storm ended.
 */
async function storm(s: Stack, override: Override) {
  s.upstream.store.setOverride('*', override);
  const ids = await registerWatches(s);
  const started = await upstreamRequests(s, 1);
  await sleep(STORM_MS - (Date.now() - started));
  const during = s.upstream.requests();
  s.upstream.store.setOverride('*', undefined);
  const endedAt = Date.now();
  await expectAllCompleted(s, ids);
  return { ids, during, recoveredMs: Date.now() - endedAt, total: s.upstream.requests() };
}

// Polling 40 healthy tasks every 150–300 ms (test scale) for 3 s would take at least this many requests.
const NORMAL_RATE_MIN = Math.floor((WATCHES * STORM_MS) / 300);

describe('upstream storms delay watches but never fail them', () => {
  it('429 with Retry-After: 3 on every task: ≈ 0 requests while it runs, then all complete', async () => {
    const s = await startStack();
    try {
      s.upstream.store.setOverride('*', { status: 429, headers: { 'retry-after': '3' }, body: '{"error":{"code":"rate_limited"}}' });
      const registering = registerWatches(s);
      registering.catch(() => {}); // awaited below; don't let a failure surface as unhandled first
      const first429 = await upstreamRequests(s, 1);
      await sleep(first429 + 500 - Date.now());
      const atWindowStart = s.upstream.requests();
      await sleep(first429 + 2_500 - Date.now());
      const inWindow = s.upstream.requests() - atWindowStart;
      const ids = await registering; // long done; registration does not call upstream
      s.upstream.store.setOverride('*', undefined);
      const cleared = s.upstream.requests();
      await expectAllCompleted(s, ids);
      console.info('[storm/429 retry-after 3]', {
        requests_before_window: atWindowStart,
        requests_in_window_first429_plus_0_5s_to_2_5s: inWindow,
        requests_during_storm: cleared,
        requests_total: s.upstream.requests(),
      });
      expect(inWindow).toBeLessThanOrEqual(2);
      // no task came back before Retry-After passed, and each came back once (plus the first 429s)
      expect(s.upstream.requests()).toBeLessThanOrEqual(cleared + WATCHES);
    } finally {
      await s.close();
    }
  });

  it('500 on every task for ~3 s: the tenant breaker keeps the rate down; all complete afterwards', async () => {
    const s = await startStack();
    try {
      const r = await storm(s, { status: 500, body: '{"error":{"code":"internal"}}' });
      console.info('[storm/500]', { requests_during_3s_storm: r.during, normal_rate_would_be_at_least: NORMAL_RATE_MIN, recovered_ms: r.recoveredMs, requests_total: r.total });
      expect(r.during).toBeLessThan(NORMAL_RATE_MIN / 2);
    } finally {
      await s.close();
    }
  });

  it('garbage JSON (200, `{"task_id":`) for ~3 s: treated as an error, backed off; all complete afterwards', async () => {
    const s = await startStack();
    try {
      const r = await storm(s, { status: 200, body: '{"task_id":' });
      console.info('[storm/garbage json]', { requests_during_3s_storm: r.during, normal_rate_would_be_at_least: NORMAL_RATE_MIN, recovered_ms: r.recoveredMs, requests_total: r.total });
      expect(r.during).toBeLessThan(NORMAL_RATE_MIN / 2);
    } finally {
      await s.close();
    }
  });

  it('never answering for ~3 s (upstream timeout 1 s): timed-out polls back off; all complete afterwards', async () => {
    const s = await startStack({ TASKHOOK_UPSTREAM_TIMEOUT_S: '1' });
    try {
      const r = await storm(s, { status: 200, hang: true });
      console.info('[storm/hang]', { requests_during_3s_storm: r.during, normal_rate_would_be_at_least: NORMAL_RATE_MIN, recovered_ms: r.recoveredMs, requests_total: r.total });
      expect(r.during).toBeLessThan(NORMAL_RATE_MIN / 2);
    } finally {
      await s.close();
    }
  });
});
