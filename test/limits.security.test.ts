// Per-tenant limits (a SaaS tenant can't starve the others): API request rate,
// active watches, upstream polls per second. Each limit answers 429 problem+json.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';

const ADMIN = 'admin_token_limits_0123456789_0123456789';
let s: Stack;
beforeAll(async () => {
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  await s?.close();
});

async function tenant(limits: Record<string, number | null>) {
  const res = await s.api('/v1/admin/tenants', {
    headers: { authorization: `Bearer ${ADMIN}` },
    body: { name: 'limited', upstream_api_key: 'sk_test', upstream_base_url: s.upstream.url, limits },
  });
  expect(res.status, res.text).toBe(201);
  const key = res.json.api_key as string;
  return (path: string, init: { method?: string; body?: unknown } = {}) => s.api(path, { ...init, headers: { authorization: `Bearer ${key}` } });
}

describe('per-tenant limits', () => {
  it('API request rate: over it, 429 problem+json with Retry-After; other tenants unaffected', async () => {
    const api = await tenant({ api_rate_per_s: 2, max_active_watches: null, max_polls_per_s: null });
    const results = await Promise.all(Array.from({ length: 12 }, () => api('/v1/watches')));
    const limited = results.filter((r) => r.status === 429);
    expect(results.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(4); // the burst
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.headers.get('content-type')).toBe('application/problem+json');
    expect(Number(limited[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited[0]!.json).toMatchObject({ status: 429, title: 'Too many requests' });
    // the default tenant (unlimited) is not slowed by it
    const others = await Promise.all(Array.from({ length: 12 }, () => s.api('/v1/watches')));
    expect(others.every((r) => r.status === 200)).toBe(true);
  });

  it('active watches: the one over the limit is refused with 429 and nothing is queued; a cancel frees a slot', async () => {
    const api = await tenant({ api_rate_per_s: null, max_active_watches: 3, max_polls_per_s: null });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const task = s.upstream.createTask({ durationMs: 60_000 });
      const res = await api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/l${i}` } });
      expect(res.status).toBe(201);
      ids.push(res.json.id);
    }
    const over = s.upstream.createTask({ durationMs: 60_000 });
    const refused = await api('/v1/watches', { body: { task_id: over.task_id, callback_url: `${s.receiver.url}/l4` } });
    expect(refused.status).toBe(429);
    expect(refused.json.detail).toMatch(/at most 3 active watches/);
    const [{ n } = { n: -1 }] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from upstream_tasks where task_id = ${over.task_id}`;
    expect(n).toBe(0);
    expect((await api(`/v1/watches/${ids[0]}`, { method: 'DELETE' })).status).toBe(200);
    const again = await api('/v1/watches', { body: { task_id: over.task_id, callback_url: `${s.receiver.url}/l4` } });
    expect(again.status).toBe(201);
  });

  it('upstream polls per second: polling slows to the limit instead of hammering upstream', async () => {
    const api = await tenant({ api_rate_per_s: null, max_active_watches: null, max_polls_per_s: 2 });
    const tasks = Array.from({ length: 10 }, () => s.upstream.createTask({ durationMs: 60_000 }));
    for (const [i, t] of tasks.entries()) {
      expect((await api('/v1/watches', { body: { task_id: t.task_id, callback_url: `${s.receiver.url}/p${i}` } })).status).toBe(201);
    }
    const count = () => tasks.reduce((n, t) => n + s.upstream.requests(t.task_id), 0);
    const start = count();
    const started = Date.now();
    // an observation window: the scenario is "for 3 s", not a wait for a condition
    await new Promise((r) => setTimeout(r, 3_000));
    const made = count() - start;
    const allowed = 2 * ((Date.now() - started) / 1000) + 2; // rate × time + burst
    // unlimited, 10 watches at a 150-300 ms cadence would make ~100 requests here
    expect(made).toBeLessThanOrEqual(Math.ceil(allowed));
    console.info(`polls/s limit 2: ${made} upstream requests in ${Date.now() - started} ms for 10 watches`);
  });
});
