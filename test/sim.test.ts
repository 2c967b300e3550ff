// Tests for the simulated upstream: the store's scripted timeline under an
// injected clock, and the HTTP server's §1 behaviour over real loopback.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { SimTaskStore } from '../src/sim/tasks.js';
import type { Capability, Outcome } from '../src/sim/tasks.js';
import { startSimUpstream } from '../src/sim/server.js';
import type { SimUpstream } from '../src/sim/server.js';

const T0 = 1_780_704_348_250; // ms; deliberately not on a whole second
const RESULT_FIELDS: Record<Capability, string[]> = {
  voice: ['audioUrl', '_type', 'format', 'degraded', 'providerUsed'],
  image: ['imageUrl', 'width', 'height'],
  video: ['videoUrl', 'durationSeconds'],
};
const ALL_RESULT_FIELDS = Object.values(RESULT_FIELDS).flat();
const capabilities: Capability[] = ['voice', 'image', 'video'];
const outcomes: Outcome[] = ['completed', 'failed', 'cancelled'];

describe('SimTaskStore timeline', () => {
  const cases = capabilities.flatMap((capability) => outcomes.map((outcome) => ({ capability, outcome })));

  it.each(cases)('$capability task ending $outcome goes pending → processing → $outcome', ({ capability, outcome }) => {
    const store = new SimTaskStore();
    const created = store.create({ capability, outcome, processingAfterMs: 1000, durationMs: 5000 }, T0);
    const id = created.task_id;

    const pending = store.get(id, T0 + 999)!;
    expect(pending).toMatchObject({ status: 'pending', capability, progress: null, error: null, completed_at: null });
    const processing = store.get(id, T0 + 3000)!;
    expect(processing.status).toBe('processing');
    expect(processing.progress).toBeGreaterThan(0);
    expect(processing.progress).toBeLessThan(1);
    expect(processing.completed_at).toBeNull();
    for (const view of [created, pending, processing]) {
      for (const f of ALL_RESULT_FIELDS) expect(view).not.toHaveProperty(f);
    }

    const done = store.get(id, T0 + 5000)!;
    expect(done.status).toBe(outcome);
    expect(done.created_at).toBe(1_780_704_348);
    expect(done.completed_at).toBe(1_780_704_353);
    const present = outcome === 'completed' ? RESULT_FIELDS[capability] : [];
    for (const f of ALL_RESULT_FIELDS) {
      if (present.includes(f)) expect(done).toHaveProperty(f);
      else expect(done).not.toHaveProperty(f);
    }
    expect(done.error).toEqual(
      outcome === 'failed' ? { code: 'generation_failed', message: expect.any(String), type: 'provider_error' } : null,
    );
    expect(done.progress).toBe(outcome === 'completed' ? 1 : null);
    if (outcome === 'completed') expect(done.credits_used).toEqual(expect.any(Number));
    else expect(done.credits_used).toBeNull();
  });

  it('answers with exactly the unified upstream shape', () => {
    const store = new SimTaskStore();
    const { task_id } = store.create({ task_id: 'b28f0341-abc', metadata: { a: 1 } }, T0);
    expect(store.get(task_id, T0 + 10_000)).toEqual({
      task_id: 'b28f0341-abc', status: 'completed', capability: 'voice', action: 'clone', model: 'v1-real',
      progress: 1, error: null, credits_used: 1, created_at: 1_780_704_348, completed_at: 1_780_704_351,
      metadata: { a: 1 }, audioUrl: expect.stringMatching(/^https:\/\/.+\.wav$/), _type: 'audio',
      format: 'wav', degraded: false, providerUsed: 'v1-async',
    });
  });

  it('uses defaults: voice, 500 ms pending, terminal after 3 s, random UUID ids', () => {
    const store = new SimTaskStore();
    const a = store.create({}, T0);
    const b = store.create({}, T0);
    expect(a.task_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.task_id).not.toBe(b.task_id);
    expect(a).toMatchObject({ capability: 'voice', status: 'pending' });
    expect(store.get(a.task_id, T0 + 499)!.status).toBe('pending');
    expect(store.get(a.task_id, T0 + 500)!.status).toBe('processing');
    expect(store.get(a.task_id, T0 + 2999)!.status).toBe('processing');
    expect(store.get(a.task_id, T0 + 3000)!.status).toBe('completed');
  });

  it('raises progress monotonically while processing', () => {
    const store = new SimTaskStore();
    const { task_id } = store.create({ processingAfterMs: 0, durationMs: 10_000 }, T0);
    const seen = [0, 2500, 5000, 7500, 9999].map((dt) => store.get(task_id, T0 + dt)!.progress as number);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(seen[0]).toBe(0);
    expect(seen[2]).toBeCloseTo(0.5);
  });

  it('carries extra fields through untouched, only once completed', () => {
    const store = new SimTaskStore();
    const extra = { seed: 42, nested: { list: [1, 'two', null] }, providerUsed: 'v2-custom' };
    const { task_id } = store.create({ capability: 'voice', extra }, T0);
    expect(store.get(task_id, T0 + 1000)).not.toHaveProperty('seed');
    const done = store.get(task_id, T0 + 3000)!;
    expect(done).toMatchObject(extra);
    extra.nested.list.push('later'); // caller mutation must not leak into the stored script
    expect(store.get(task_id, T0 + 3000)!.nested).toEqual({ list: [1, 'two', null] });
  });

  it('reports the scripted error for failed tasks', () => {
    const store = new SimTaskStore();
    const error = { code: 'content_policy', message: 'nope', type: 'validation_error' };
    const { task_id } = store.create({ outcome: 'failed', error, durationMs: 0 }, T0);
    expect(store.get(task_id, T0)).toMatchObject({ status: 'failed', error });
  });

  it('returns undefined for unknown ids', () => {
    expect(new SimTaskStore().get('nope', T0)).toBeUndefined();
  });

  it('applies a counted override the given number of times, task-specific before wildcard', () => {
    const store = new SimTaskStore();
    store.setOverride('*', { status: 500 });
    store.setOverride('t1', { status: 429, times: 2 });
    expect(store.takeOverride('t1')?.status).toBe(429);
    expect(store.takeOverride('t1')?.status).toBe(429);
    expect(store.takeOverride('t1')?.status).toBe(500);
    store.setOverride('*', undefined);
    expect(store.takeOverride('t1')).toBeUndefined();
  });
});

describe('sim upstream over HTTP', () => {
  let clock = T0;
  let sim: SimUpstream;
  const auth = { authorization: 'Bearer sk_test' };
  const get = (id: string, headers: Record<string, string> = auth) =>
    request(`${sim.url}/api/v2/tasks/${encodeURIComponent(id)}`, { headers });

  beforeAll(async () => {
    sim = await startSimUpstream({ now: () => clock });
  });
  afterAll(() => sim.close());
  beforeEach(() => {
    clock = T0;
    sim.resetCounts();
    sim.store.clearOverrides();
  });

  it('rejects a missing or wrong bearer key with 401', async () => {
    const { task_id } = sim.createTask({});
    const badHeaders: Record<string, string>[] = [{}, { authorization: 'Bearer sk_wrong' }, { authorization: 'sk_test' }];
    for (const headers of badHeaders) {
      const res = await get(task_id, headers);
      expect(res.statusCode).toBe(401);
      expect(await res.body.json()).toMatchObject({ error: { code: 'unauthorized', type: 'auth' } });
    }
  });

  it('answers 404 task_not_found for an unknown task id', async () => {
    const res = await get('does-not-exist');
    expect(res.statusCode).toBe(404);
    expect(await res.body.json()).toMatchObject({ error: { code: 'task_not_found' } });
  });

  it('serves the task object as it stands on the injected clock', async () => {
    const { task_id } = sim.createTask({ capability: 'image', durationMs: 4000 });
    let res = await get(task_id);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(await res.body.json()).toMatchObject({ task_id, status: 'pending', capability: 'image' });
    clock += 4000;
    res = await get(task_id);
    const body = (await res.body.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ task_id, status: 'completed', width: 1024, height: 1024 });
    expect(body.completed_at).toBe(Math.floor((T0 + 4000) / 1000));
  });

  it('applies a one-shot 429 override with Retry-After, then answers normally', async () => {
    const { task_id } = sim.createTask({});
    sim.store.setOverride(task_id, { status: 429, headers: { 'Retry-After': '7' }, body: { error: { code: 'rate_limited' } }, times: 1 });
    const limited = await get(task_id);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('7');
    await limited.body.dump();
    const ok = await get(task_id);
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });

  it('can answer a malformed JSON body', async () => {
    const { task_id } = sim.createTask({});
    sim.store.setOverride('*', { status: 200, body: '{"task_id": "trunc' });
    const res = await get(task_id);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(await res.body.text()).toBe('{"task_id": "trunc');
  });

  it('can hang a request until the client gives up, and still closes cleanly', async () => {
    const { task_id } = sim.createTask({});
    sim.store.setOverride(task_id, { status: 200, hang: true, times: 1 });
    await expect(
      request(`${sim.url}/api/v2/tasks/${task_id}`, { headers: auth, signal: AbortSignal.timeout(100) }),
    ).rejects.toThrow(/abort|timeout/i);
    const res = await get(task_id);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('counts every poll per task and in total, including 401s and 404s', async () => {
    const { task_id } = sim.createTask({});
    await (await get(task_id)).body.dump();
    await (await get(task_id, {})).body.dump();
    await (await get('ghost')).body.dump();
    expect(sim.requests(task_id)).toBe(2);
    expect(sim.requests('ghost')).toBe(1);
    expect(sim.requests()).toBe(3);
    sim.resetCounts();
    expect(sim.requests()).toBe(0);
  });

  it('creates tasks via POST /api/v2/tasks and validates the script', async () => {
    const res = await request(`${sim.url}/api/v2/tasks`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ task_id: 'posted-1', capability: 'video', durationMs: 0 }),
    });
    expect(res.statusCode).toBe(201);
    expect(await res.body.json()).toMatchObject({ task_id: 'posted-1', status: 'completed', durationSeconds: 5 });
    const bad = await request(`${sim.url}/api/v2/tasks`, {
      method: 'POST', headers: auth, body: JSON.stringify({ capability: 'audio' }),
    });
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
  });

  it('answers GET /healthz', async () => {
    const res = await request(`${sim.url}/healthz`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });
});

describe('sim upstream lifecycle', () => {
  it('close() releases a hanging request and keep-alive connections', async () => {
    const sim = await startSimUpstream({ apiKeys: ['sk_other'] });
    sim.store.setOverride('*', { status: 200, hang: true });
    const pending = request(`${sim.url}/api/v2/tasks/x`, { headers: { authorization: 'Bearer sk_other' } })
      .then(async (r) => { await r.body.dump(); return 'answered'; }, () => 'errored');
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await sim.close();
    expect(await pending).toMatch(/answered|errored/);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('sim admin routes (/_sim, opt-in)', () => {
  it('fault windows answer every poll or one key for a while; the log records every poll and the terminal answer verbatim', async () => {
    const sim = await startSimUpstream({ apiKeys: ['sk_a', 'sk_b'], admin: true });
    try {
      const get = (key: string, id: string) => request(`${sim.url}/api/v2/tasks/${id}`, { headers: { authorization: `Bearer ${key}` } });
      const t = sim.createTask({ durationMs: 0 });
      const fault = await request(`${sim.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: '429', ms: 60_000, key: 'sk_a', retry_after_s: 2 }) });
      expect(fault.statusCode).toBe(201);
      const limited = await get('sk_a', t.task_id);
      expect([limited.statusCode, limited.headers['retry-after']]).toEqual([429, '2']);
      await limited.body.text();
      const ok = await get('sk_b', t.task_id);
      expect(ok.statusCode).toBe(200);
      const body = await ok.body.text();
      expect((await request(`${sim.url}/_sim/faults`, { method: 'DELETE' })).statusCode).toBe(204);
      const after = await get('sk_a', t.task_id);
      expect(after.statusCode).toBe(200);
      await after.body.text();
      const bad = await request(`${sim.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'teapot', ms: 1 }) });
      expect(bad.statusCode).toBe(400);
      await bad.body.text();
      const log = (await (await request(`${sim.url}/_sim/log`)).body.json()) as { polls: unknown[][]; terminal: Record<string, string> };
      expect(log.polls.map((p) => [p[1], p[2], p[3]])).toEqual([[t.task_id, 'sk_a', 429], [t.task_id, 'sk_b', 200], [t.task_id, 'sk_a', 200]]);
      expect(log.terminal[t.task_id]).toBe(body);
    } finally {
      await sim.close();
    }
  });

  it('is off by default', async () => {
    const sim = await startSimUpstream();
    try {
      const res = await request(`${sim.url}/_sim/log`);
      expect(res.statusCode).toBe(404);
      await res.body.text();
    } finally {
      await sim.close();
    }
  });
});
