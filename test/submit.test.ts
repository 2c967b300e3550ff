// Submit through taskhook (POST /v1/tasks) against a gateway in this process, the
// simulated upstream's generation endpoints and a verifying receiver: the whole path
// per capability, the Idempotency-Key's promises, every upstream failure with its
// problem (and nothing half-registered), and what may and may not reach upstream.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus } from './support/wait.js';
import { TEST_API_KEY } from './support/env.js';
import type { SubmitFaultMode } from '../src/sim/generation.js';

const ADMIN = 'admin_token_0123456789abcdef';
let s: Stack;
beforeAll(async () => {
  // Tenants here aim at loopback upstreams of their own (a broken one, a closed port): allowed
  // explicitly, as the upstream address policy (TASKHOOK_ALLOW_PRIVATE_UPSTREAMS) wants.
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN, TASKHOOK_SUBMIT_TIMEOUT_S: '1', TASKHOOK_ALLOW_PRIVATE_UPSTREAMS: '127.0.0.0/8' });
});
afterAll(async () => {
  await s?.close();
});
beforeEach(() => {
  s.upstream.setSubmitFault(undefined);
});

const VOICE = { text: 'Hello from taskhook', reference_audio_url: 'https://example.com/ref.wav', model: 'v2-emotion' };

function submit(body: Record<string, unknown> | string, key: string | null = randomUUID(), headers: Record<string, string> = {}) {
  return s.api('/v1/tasks', { body, headers: { ...(key === null ? {} : { 'idempotency-key': key }), ...headers } });
}

const request = (path: string, body: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  submit: { path, body },
  callback_url: `${s.receiver.url}/hook`,
  ...extra,
});

/** Everything a submit could have left behind: watches in all, rows for the task upstream made (if it made one), the key's record. */
async function leftovers(key: string, taskId: string | null = null) {
  const [w] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from watches`;
  const [t] = await s.db.sql<{ n: number }[]>`
    select ((select count(*) from watches where task_id = ${taskId ?? ''}) + (select count(*) from upstream_tasks where task_id = ${taskId ?? ''}))::int as n`;
  const rows = await s.db.sql<{ state: string }[]>`select state from task_submissions where idempotency_key = ${key}`;
  return { watches: w!.n, ofTask: t!.n, key: rows[0]?.state ?? null };
}

describe('submit → poll → webhook, for each capability', () => {
  it.each([
    ['voice', '/api/v2/voice/clone', VOICE, 'audioUrl'],
    ['image', '/api/v2/image/generate', { prompt: 'a corgi under cherry blossoms', size: '16:9' }, 'imageUrl'],
    ['video', '/api/v2/video/generate', { prompt: 'a corgi running', duration: 5 }, 'videoUrl'],
  ] as const)('%s: 201 {task_id, upstream, watch}, then one verified webhook carrying the final task verbatim', async (capability, path, body, field) => {
    const before = s.upstream.submits(path);
    const res = await submit(request(path, { ...body, metadata: { order: 7 }, _sim: { durationMs: 300, processingAfterMs: 50, extra: { surprise: [1, 'two'] } } }, { metadata: { mine: capability } }));
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(s.upstream.submits(path)).toBe(before + 1);
    const { task_id, upstream, watch } = res.json;
    expect(task_id).toBe(s.upstream.submitLog.at(-1)!.task_id);
    expect(upstream).toMatchObject({ task_id, status: 'pending', capability, metadata: { order: 7 } });
    // upstream's answer byte for byte
    expect(res.text).toContain(`"upstream":${JSON.stringify(s.upstream.store.get(task_id, upstream.created_at * 1000 + 1))}`.slice(0, 40));
    expect(watch).toMatchObject({ task_id, status: 'watching', callback_url: `${s.receiver.url}/hook`, metadata: { mine: capability } });
    // the upstream got the body as sent
    expect(JSON.parse(s.upstream.submitLog.at(-1)!.body)).toMatchObject(body);

    const done = await waitForStatus(s, watch.id, 'delivered');
    const hooks = s.receiver.received.filter((r) => r.json?.watch_id === watch.id);
    expect(hooks).toHaveLength(1);
    expect(hooks[0]!.verified, hooks[0]!.verifyError).toBe(true);
    expect(hooks[0]!.json.type).toBe('task.completed');
    expect(hooks[0]!.json.metadata).toEqual({ mine: capability });
    expect(hooks[0]!.json.data).toEqual(s.upstream.store.get(task_id, Date.now()));
    expect(hooks[0]!.json.data[field]).toBeTypeOf('string');
    expect(hooks[0]!.json.data.surprise).toEqual([1, 'two']);
    expect(done.outcome).toBe('task.completed');
  });

  it('the answer carries upstream\'s acceptance verbatim (key order, spacing of upstream\'s own JSON)', async () => {
    const res = await submit(request('/api/v2/image/generate', { prompt: 'x' }));
    expect(res.status).toBe(201);
    const sent = s.upstream.store.get(res.json.task_id, res.json.upstream.created_at * 1000)!;
    expect(Object.keys(res.json.upstream)).toEqual(Object.keys(sent));
    expect(res.text.startsWith(`{"task_id":${JSON.stringify(res.json.task_id)},"upstream":{"task_id":`)).toBe(true);
  });

  it('events and metadata work as with POST /v1/watches (task.processing opt-in)', async () => {
    const res = await submit(request('/api/v2/voice/clone', { ...VOICE, _sim: { durationMs: 600, processingAfterMs: 50, outcome: 'failed' } }, { events: ['task.processing', 'task.failed'] }));
    expect(res.status, res.text).toBe(201);
    await waitForStatus(s, res.json.watch.id, 'delivered');
    const types = s.receiver.received.filter((r) => r.json?.watch_id === res.json.watch.id).map((r) => r.json.type);
    expect(types).toEqual(['task.processing', 'task.failed']);
  });
});

describe('Idempotency-Key', () => {
  it('the same key and request again: the first answer, byte for byte, and upstream asked once', async () => {
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE, { metadata: { a: 1, b: [1, 2] } });
    const first = await submit(body, key);
    expect(first.status).toBe(201);
    const n = s.upstream.submits();
    // the same request in another key order is the same request
    const again = await submit({ metadata: { b: [1, 2], a: 1 }, callback_url: body.callback_url, submit: { body: { model: 'v2-emotion', reference_audio_url: VOICE.reference_audio_url, text: VOICE.text }, path: body.submit.path } }, key);
    expect(again.status).toBe(201);
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(s.upstream.submits()).toBe(n);
    const [{ watches } = { watches: 0 }] = await s.db.sql<{ watches: number }[]>`select count(*)::int as watches from watches where task_id = ${first.json.task_id}`;
    expect(watches).toBe(1);
  });

  it.each([
    ['body', (b: any) => ({ ...b, submit: { ...b.submit, body: { ...VOICE, text: 'other words' } } })],
    ['path', (b: any) => ({ ...b, submit: { ...b.submit, path: '/api/v2/image/generate' } })],
    ['callback_url', (b: any) => ({ ...b, callback_url: `${s.receiver.url}/other` })],
    ['metadata', (b: any) => ({ ...b, metadata: { x: 2 } })],
  ])('the same key with a different %s → 422 idempotency-key-reused, upstream not asked', async (_, change) => {
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE, { metadata: { x: 1 } });
    expect((await submit(body, key)).status).toBe(201);
    const n = s.upstream.submits();
    const res = await submit(change(body), key);
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({ type: 'https://taskhook.dev/problems/idempotency-key-reused', status: 422 });
    expect(s.upstream.submits()).toBe(n);
  });

  // Which of them gets the 409 and which the replay depends on when each reaches the gateway;
  // what may not vary: one upstream submit, one watch, and every 201 the same bytes.
  async function expectOneSubmit(all: Awaited<ReturnType<typeof submit>>[], n: number) {
    expect(s.upstream.submits()).toBe(n + 1);
    for (const r of all) expect([201, 409], r.text).toContain(r.status);
    const created = all.filter((r) => r.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.text)).size).toBe(1);
    for (const r of all.filter((x) => x.status === 409)) {
      expect(r.json).toMatchObject({ type: 'https://taskhook.dev/problems/idempotency-key-in-use', status: 409 });
      expect(r.headers.get('retry-after')).toBe('1');
    }
    const taskId = created[0]!.json.task_id;
    const [{ n: watches } = { n: 0 }] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from watches where task_id = ${taskId}`;
    expect(watches).toBe(1);
    return created[0]!;
  }

  it('two concurrent identical requests: upstream asked once; the other is told 409 (retry) or gets the replay', async () => {
    s.upstream.setSubmitFault({ delayMs: 400, times: 1 });
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE);
    const n = s.upstream.submits();
    const both = await Promise.all([submit(body, key), submit(body, key)]);
    const first = await expectOneSubmit(both, n);
    // the retry a 409 asks for gets the first answer
    const retry = await submit(body, key);
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(first.text);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it('ten concurrent identical requests: still one upstream submit and one watch', async () => {
    s.upstream.setSubmitFault({ delayMs: 400, times: 1 });
    const key = randomUUID();
    const body = request('/api/v2/image/generate', { prompt: 'many' });
    const n = s.upstream.submits();
    const all = await Promise.all(Array.from({ length: 10 }, () => submit(body, key)));
    await expectOneSubmit(all, n);
    // while the first was in flight, the others that arrived were told to retry
    expect(all.filter((r) => r.status === 409).length).toBeGreaterThanOrEqual(1);
  });

  it('keys are per tenant: another tenant\'s identical key submits on its own', async () => {
    const t = await s.api('/v1/admin/tenants', {
      headers: { authorization: `Bearer ${ADMIN}` },
      body: { name: 'other', upstream_api_key: 'sk_test', upstream_base_url: s.upstream.url },
    });
    expect(t.status, t.text).toBe(201);
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE);
    const n = s.upstream.submits();
    const mine = await submit(body, key);
    const theirs = await submit(body, key, { authorization: `Bearer ${t.json.api_key}` });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.json.task_id).not.toBe(mine.json.task_id);
    expect(s.upstream.submits()).toBe(n + 2);
    // and neither can read the other's watch
    expect((await s.api(`/v1/watches/${theirs.json.watch.id}`)).status).toBe(404);
  });

  it('a key past its 24 h submits afresh', async () => {
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE);
    const first = await submit(body, key);
    await s.db.sql`update task_submissions set expires_at = now() - interval '1 second' where idempotency_key = ${key}`;
    const n = s.upstream.submits();
    const second = await submit({ ...body, metadata: { now: 'different' } }, key);
    expect(second.status).toBe(201);
    expect(second.json.task_id).not.toBe(first.json.task_id);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it('no Idempotency-Key → 400 idempotency-key-required; a malformed one → 400; upstream not asked', async () => {
    const n = s.upstream.submits();
    const none = await submit(request('/api/v2/voice/clone', VOICE), null);
    expect(none.status).toBe(400);
    expect(none.json.type).toBe('https://taskhook.dev/problems/idempotency-key-required');
    const long = await submit(request('/api/v2/voice/clone', VOICE), 'k'.repeat(256));
    expect(long.status).toBe(400);
    const spaced = await submit(request('/api/v2/voice/clone', VOICE), 'has space');
    expect(spaced.status).toBe(400);
    expect(s.upstream.submits()).toBe(n);
  });
});

describe('upstream failures: each its problem, nothing half-registered', () => {
  const cases: Array<[SubmitFaultMode, number, string, string, boolean]> = [
    // mode, status, problem, outcome, key kept (unknown) or freed
    ['400', 422, 'upstream-rejected', 'not_submitted', false],
    ['422', 422, 'upstream-rejected', 'not_submitted', false],
    ['429', 422, 'upstream-rejected', 'not_submitted', false],
    ['401', 422, 'upstream-unauthorized', 'not_submitted', false],
    ['503', 502, 'upstream-unavailable', 'not_submitted', false],
    ['500', 502, 'outcome-unknown', 'unknown', true],
    ['timeout', 502, 'outcome-unknown', 'unknown', true],
    ['garbage', 502, 'outcome-unknown', 'unknown', true],
    ['no_task_id', 502, 'outcome-unknown', 'unknown', true],
  ];

  it.each(cases)('upstream %s → %d %s, outcome %s', async (mode, status, type, outcome, kept) => {
    const before = await leftovers('-');
    s.upstream.setSubmitFault({ mode, times: 1 });
    const key = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE);
    const res = await submit(body, key);
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({ type: `https://taskhook.dev/problems/${type}`, status, outcome });
    expect(res.json.detail).toBeTypeOf('string');
    if (['400', '422', '429', '401', '503', '500'].includes(mode)) {
      expect(res.json.upstream_status).toBe(Number(mode));
      expect(res.json.upstream_body ?? null).not.toBeUndefined();
    }
    if (mode === '400') expect(res.json.upstream_body).toEqual({ error: { code: 'invalid_request', message: 'simulated: the request was refused', type: 'invalid_request' } });
    if (mode === '429') expect(res.headers.get('retry-after')).toBe('2');
    // no watch, no schedule row: nothing polls a task nobody got
    const made = s.upstream.submitLog.at(-1)!.task_id; // timeout, garbage, no_task_id: upstream did make one
    if (['timeout', 'garbage', 'no_task_id'].includes(mode)) expect(made).toBeTypeOf('string');
    const after = await leftovers(key, made);
    expect(after.watches).toBe(before.watches);
    expect(after.ofTask).toBe(0);
    expect(after.key).toBe(kept ? 'unknown' : null);

    const n = s.upstream.submits();
    const retry = await submit(body, key);
    if (kept) {
      // upstream may hold the task: the key answers the same, and never submits again
      expect(retry.status).toBe(502);
      expect(retry.text).toBe(res.text);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(s.upstream.submits()).toBe(n);
    } else {
      // nothing was created: the key is free, the same retry goes through
      expect(retry.status, retry.text).toBe(201);
      expect(s.upstream.submits()).toBe(n + 1);
    }
  });

  it('an upstream 4xx body past 4 KiB is cut and flagged', async () => {
    // the sim's 400 is small; the real check is the table test of upstreamBodyForProblem
    s.upstream.setSubmitFault({ mode: '400', times: 1 });
    const res = await submit(request('/api/v2/voice/clone', VOICE));
    expect(res.json.upstream_body_truncated).toBeUndefined();
  });

  it('the upstream refusing the request itself (missing field) → 422 with upstream\'s error', async () => {
    const res = await submit(request('/api/v2/voice/clone', { text: 'no reference audio' }));
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ type: 'https://taskhook.dev/problems/upstream-rejected', upstream_status: 400, upstream_body: { error: { code: 'invalid_request', message: 'reference_audio_url (or voice_id) is required' } } });
  });

  it('an upstream nobody listens on → 502 upstream-unavailable, not_submitted', async () => {
    const t = await s.api('/v1/admin/tenants', {
      headers: { authorization: `Bearer ${ADMIN}` },
      body: { name: 'down', upstream_api_key: 'sk_test', upstream_base_url: 'http://127.0.0.1:1' },
    });
    expect(t.status, t.text).toBe(201);
    const res = await submit(request('/api/v2/voice/clone', VOICE), randomUUID(), { authorization: `Bearer ${t.json.api_key}` });
    expect(res.status).toBe(502);
    expect(res.json).toMatchObject({ type: 'https://taskhook.dev/problems/upstream-unavailable', outcome: 'not_submitted' });
  });
});

describe('an upstream answering anything at all', () => {
  let broken: http.Server;
  let api: (body: Record<string, unknown>, key?: string) => ReturnType<typeof submit>;
  const hits: string[] = [];
  beforeAll(async () => {
    broken = http.createServer((req, res) => {
      hits.push(req.url!);
      switch (req.url) {
        case '/api/v2/nul200':
          return res.writeHead(200, { 'content-type': 'application/json' }).end('\u0000{"task_id":"x"\u0000');
        case '/api/v2/nul500':
          return res.writeHead(500).end('broken\u0000body');
        case '/api/v2/nul400':
          return res.writeHead(400).end('bad\u0000request');
        case '/api/v2/huge':
          return res.writeHead(202, { 'content-type': 'application/json' }).end(`{"task_id":"t1","pad":"${'x'.repeat(2 << 20)}"}`);
        case '/api/v2/slowbody':
          res.writeHead(202, { 'content-type': 'application/json' });
          res.write('{"task_id":"t2",');
          return; // the rest never comes
        case '/api/v2/weird-id':
          return res.writeHead(202, { 'content-type': 'application/json' }).end('{"task_id":"../../etc"}');
        default:
          return res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
    const t = await s.api('/v1/admin/tenants', {
      headers: { authorization: `Bearer ${ADMIN}` },
      body: { name: 'broken-upstream', upstream_api_key: 'sk_x', upstream_base_url: `http://127.0.0.1:${(broken.address() as AddressInfo).port}` },
    });
    expect(t.status, t.text).toBe(201);
    api = (body, key = randomUUID()) => submit(body, key, { authorization: `Bearer ${t.json.api_key}` });
  });
  afterAll(async () => {
    broken.closeAllConnections();
    await new Promise((r) => broken.close(r));
  });

  it.each([
    ['a 200 with NUL bytes', '/api/v2/nul200', 502, 'outcome-unknown'],
    ['a 500 with NUL bytes', '/api/v2/nul500', 502, 'outcome-unknown'],
    ['a 400 with NUL bytes', '/api/v2/nul400', 422, 'upstream-rejected'],
    ['a 2 MiB acceptance', '/api/v2/huge', 502, 'outcome-unknown'],
    ['a body that never ends', '/api/v2/slowbody', 502, 'outcome-unknown'],
    ['a task_id taskhook cannot watch', '/api/v2/weird-id', 502, 'outcome-unknown'],
  ])('%s → %s its problem, never a 5xx of its own, and the record holds', async (_, path, status, type) => {
    const key = randomUUID();
    const res = await api(request(path, { x: 1 }), key);
    expect(res.status, res.text).toBe(status);
    expect(res.json.type).toBe(`https://taskhook.dev/problems/${type}`);
    const again = await api(request(path, { x: 1 }), key);
    if (status === 502) {
      expect(again.text).toBe(res.text);
      expect(hits.filter((h) => h === path)).toHaveLength(1);
    }
    hits.length = 0;
  });
});

describe('safe forwarding', () => {
  it.each([
    '/api/v2/../admin',
    '/api/v2/%2e%2e/admin',
    '/api/v2//voice/clone',
    '//evil.example/api/v2/voice/clone',
    'https://evil.example/api/v2/voice/clone',
    '/api/v2/voice/clone?api_key=x',
    '/api/v2/voice/clone#x',
    '/api/v2/voice/clone\r\nX-Injected: yes',
    '/api/v2/voice\\..\\..\\admin',
    '/api/v1/voice/clone',
    '/api/v2/tasks/../../../etc/passwd',
  ])('path %j → 422 on submit.path, upstream not asked, nothing recorded', async (path) => {
    const n = s.upstream.submits();
    const key = randomUUID();
    const res = await submit(request(path, VOICE), key);
    expect(res.status).toBe(422);
    expect(res.json.errors).toEqual([{ field: 'submit.path', message: expect.any(String) }]);
    expect(s.upstream.submits()).toBe(n);
    expect((await leftovers(key)).key).toBeNull();
  });

  it('only content-type, authorization (the tenant\'s upstream key) and user-agent go upstream', async () => {
    const res = await submit(request('/api/v2/voice/clone', VOICE), randomUUID(), {
      cookie: 'session=secret',
      'x-forwarded-for': '10.0.0.1',
      'x-api-key': 'client-secret',
      'x-upstream-override': 'http://evil.example',
      forwarded: 'for=10.0.0.1',
      'user-agent': 'curl/8.0',
      'accept-language': 'fr',
    });
    expect(res.status, res.text).toBe(201);
    const seen = s.upstream.submitLog.at(-1)!.headers;
    expect(seen.authorization).toBe('Bearer sk_test');
    expect(seen['content-type']).toBe('application/json');
    expect(seen['user-agent']).toMatch(/^taskhook\//);
    // the only others are the ones HTTP itself needs
    expect(Object.keys(seen).filter((h) => !['authorization', 'content-type', 'user-agent', 'host', 'content-length', 'connection'].includes(h))).toEqual([]);
    expect(JSON.stringify(seen)).not.toContain(TEST_API_KEY);
    expect(JSON.stringify(seen)).not.toContain('secret');
  });

  it('fields beside submit.{path,body} are refused (nothing smuggled into the upstream call)', async () => {
    const n = s.upstream.submits();
    for (const body of [
      { ...request('/api/v2/voice/clone', VOICE), headers: { 'x-evil': '1' } },
      { ...request('/api/v2/voice/clone', VOICE), submit: { path: '/api/v2/voice/clone', body: VOICE, method: 'DELETE' } },
      { ...request('/api/v2/voice/clone', VOICE), submit: { path: '/api/v2/voice/clone', body: VOICE, base_url: 'http://evil.example' } },
    ]) {
      const res = await submit(body);
      expect(res.status, res.text).toBe(422);
    }
    expect(s.upstream.submits()).toBe(n);
  });

  it.each([
    ['a body that is not an object', { submit: { path: '/api/v2/voice/clone', body: [1] } }, 422],
    ['no submit', {}, 422],
    ['no path', { submit: { body: VOICE } }, 422],
    ['a bad callback_url', { submit: { path: '/api/v2/voice/clone', body: VOICE }, callback_url: 'ftp://x' }, 422],
    ['a callback on a metadata address', { submit: { path: '/api/v2/voice/clone', body: VOICE }, callback_url: 'http://169.254.169.254/hook' }, 422],
  ])('%s → 4xx, upstream not asked', async (_, body, status) => {
    const n = s.upstream.submits();
    const res = await submit({ callback_url: `${s.receiver.url}/hook`, ...body });
    expect(res.status, res.text).toBe(status);
    expect(s.upstream.submits()).toBe(n);
  });

  it('submit.body over 256 KiB → 422 (or 413 past the request cap), upstream not asked', async () => {
    const n = s.upstream.submits();
    const big = await submit(request('/api/v2/voice/clone', { ...VOICE, pad: 'x'.repeat(256 * 1024) }));
    expect([413, 422]).toContain(big.status);
    const huge = await submit(request('/api/v2/voice/clone', { ...VOICE, pad: 'x'.repeat(400 * 1024) }));
    expect(huge.status).toBe(413);
    // just under the cap goes through
    const ok = await submit(request('/api/v2/voice/clone', { ...VOICE, pad: 'x'.repeat(200 * 1024) }));
    expect(ok.status, ok.text).toBe(201);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it('a deeply nested body → 422, no 5xx', async () => {
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    const text = JSON.stringify(request('/api/v2/voice/clone', { ...VOICE, deep: 0 })).replace('"deep":0', `"deep":${deep}`);
    const n = s.upstream.submits();
    const res = await submit(text);
    expect(res.status, res.text).toBe(422);
    expect(res.json.errors[0].message).toMatch(/nest at most/);
    expect(s.upstream.submits()).toBe(n);
  });

  it('without the gateway key → 401; the upstream is never asked', async () => {
    const n = s.upstream.submits();
    const res = await s.api('/v1/tasks', { body: request('/api/v2/voice/clone', VOICE), headers: { authorization: 'Bearer nope-nope-nope-nope', 'idempotency-key': 'k1' } });
    expect(res.status).toBe(401);
    expect(s.upstream.submits()).toBe(n);
  });
});

describe('metrics', () => {
  it('counts submits by outcome', async () => {
    const res = await fetch(`${s.gateway.url}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/taskhook_submits_total\{outcome="accepted"\} [1-9]/);
    expect(text).toMatch(/taskhook_submits_total\{outcome="replayed"\} [1-9]/);
    expect(text).toMatch(/taskhook_submits_total\{outcome="unknown"\} [1-9]/);
    expect(text).toMatch(/taskhook_submit_upstream_duration_seconds_count [1-9]/);
  });
});

describe('the dashboard', () => {
  /** signs in with the gateway key (cookies by hand, no browser) and fetches a page */
  async function dashboardPage(p: string): Promise<string> {
    const jar = new Map<string, string>();
    const req = async (method: string, url: string, form?: Record<string, string>) => {
      const headers: Record<string, string> = {};
      if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      if (form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        headers.origin = s.gateway.url!;
      }
      const res = await fetch(`${s.gateway.url}${url}`, { method, headers, body: form ? new URLSearchParams(form).toString() : undefined, redirect: 'manual' });
      for (const line of res.headers.getSetCookie()) {
        const pair = line.split(';')[0]!;
        jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
      }
      return { status: res.status, text: await res.text() };
    };
    const signIn = await req('GET', '/dashboard/sign-in');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(signIn.text)![1]!;
    expect((await req('POST', '/dashboard/sign-in', { _csrf: csrf, api_key: TEST_API_KEY })).status).toBe(303);
    const page = await req('GET', p);
    expect(page.status).toBe(200);
    return page.text;
  }

  it('a watch submitted through taskhook says so, with upstream\'s first answer; one registered by task_id says that', async () => {
    const res = await submit(request('/api/v2/video/generate', { prompt: 'dashboard', model: 'kling-v3' }));
    expect(res.status).toBe(201);
    const html = await dashboardPage(`/dashboard/watches/${res.json.watch.id}`);
    expect(html).toContain('submitted through taskhook');
    expect(html).toContain('POST /api/v2/video/generate');
    expect(html).toContain('video generate kling-v3');
    expect(html).toMatch(/data-testid="upstream-answer"[^>]*>[^<]*&quot;task_id&quot;: &quot;[\w-]+&quot;/);

    const task = s.upstream.createTask({ durationMs: 60_000 });
    const plain = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
    const other = await dashboardPage(`/dashboard/watches/${plain.json.id}`);
    expect(other).toContain('registered by task_id');
    expect(other).not.toContain('upstream-answer');
  });
});

describe('retention of idempotency keys', () => {
  it('keys past their 24 h go (an accepted one once its watch is gone); younger ones stay; the key is usable again', async () => {
    const { purgeExpiredKeys } = await import('../src/retention.js');
    const accepted = randomUUID();
    const acceptedGone = randomUUID();
    const unknown = randomUUID();
    const young = randomUUID();
    const body = request('/api/v2/voice/clone', VOICE);
    const a = await submit(body, accepted);
    const g = await submit(body, acceptedGone);
    s.upstream.setSubmitFault({ mode: '500', times: 1 });
    expect((await submit(body, unknown)).status).toBe(502);
    expect((await submit(body, young)).status).toBe(201);
    await s.db.sql`update task_submissions set expires_at = now() - interval '1 minute' where idempotency_key in ${s.db.sql([accepted, acceptedGone, unknown])}`;
    await s.db.sql`delete from watches where id = ${g.json.watch.id}`; // as retention purges a finished watch
    const gone = await purgeExpiredKeys(s.db.sql, 2); // batches of 2: the loop goes on until a short batch
    expect(gone).toBeGreaterThanOrEqual(2);
    const left = (await s.db.sql<{ idempotency_key: string }[]>`
      select idempotency_key from task_submissions where idempotency_key in ${s.db.sql([accepted, acceptedGone, unknown, young])}`).map((r) => r.idempotency_key);
    expect(left.sort()).toEqual([accepted, young].sort());
    // an expired key submits afresh (the row kept for the dashboard is taken over)
    const n = s.upstream.submits();
    const again = await submit(body, accepted);
    expect(again.status).toBe(201);
    expect(again.json.task_id).not.toBe(a.json.task_id);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it('the purge walks task_submissions_expires_idx', async () => {
    const plan = await s.db.sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      return (await tx.unsafe(`explain select tenant_id, idempotency_key from task_submissions where expires_at <= now() order by expires_at limit 500`))
        .map((r) => String(Object.values(r)[0]))
        .join('\n');
    });
    expect(plan).toContain('task_submissions_expires_idx');
  });
});
