// The pure parts of submit through taskhook: which paths may be submitted to, what
// upstream's answer means, and what makes two requests the same request.
import { describe, expect, it } from 'vitest';
import { checkSubmitPath, parseSubmitPaths, submitUrl } from '../src/submit/path.js';
import { decideSubmit, upstreamBodyForProblem, MAX_UPSTREAM_ERROR_BYTES } from '../src/submit/decide.js';
import { canonicalJson, requestFingerprint } from '../src/submit/fingerprint.js';
import { failedBeforeSending, type SubmitResult } from '../src/upstream/client.js';

const ALLOW = ['/api/v2/'];

describe('checkSubmitPath', () => {
  it.each(['/api/v2/voice/clone', '/api/v2/image/generate', '/api/v2/video/generate', '/api/v2/a.b_c~d-e/', '/api/v2/x'])('accepts %j as it is', (p) => {
    expect(checkSubmitPath(p, ALLOW)).toEqual({ ok: true, path: p });
  });

  it.each([
    ['/api/v2/../admin', /\.\. segments/],
    ['/api/v2/./voice/clone', /\.\. segments/],
    ['/api/v2/voice/..', /\.\. segments/],
    ['/api/v2//voice', /empty segment/],
    ['//evil.example/api/v2/x', /not a URL/],
    ['https://evil.example/api/v2/x', /not a URL/],
    ['http:/api/v2/x', /not a URL/],
    ['api/v2/voice/clone', /start with \//],
    ['/api/v2/voice/clone?x=1', /query string/],
    ['/api/v2/voice/clone#frag', /query string/],
    ['/api/v2/voice/clone\r\nX-Injected: 1', /control characters/],
    ['/api/v2/voice clone', /control characters/],
    ['/api/v2/voice\tclone', /control characters/],
    ['/api/v2/voice/\u0000', /control characters/],
    ['/api/v2/%2e%2e/admin', /percent-encoded/],
    ['/api/v2/voice%2Fclone', /percent-encoded/],
    ['/api/v2\\..\\admin', /backslash/],
    ['/api/v2/vöice', /only letters, digits/],
    ['/api/v2/@evil', /only letters, digits/],
    ['/api/v1/voice/clone', /must lie under \/api\/v2\//],
    ['/api/v2/', /must lie under/],
    ['/api/v2', /must lie under/],
    ['/', /must lie under/],
    ['', /must not be empty/],
    ['/api/v2/' + 'a'.repeat(600), /at most 512/],
  ])('refuses %j', (p, reason) => {
    const r = checkSubmitPath(p, ALLOW);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });

  it('refuses a non-string', () => {
    expect(checkSubmitPath(42, ALLOW)).toEqual({ ok: false, reason: 'submit.path must be a string' });
  });

  it('takes any of several prefixes, on whole segments only', () => {
    const allow = ['/api/v2/voice/', '/api/v3/'];
    expect(checkSubmitPath('/api/v3/x', allow).ok).toBe(true);
    expect(checkSubmitPath('/api/v2/voice/clone', allow).ok).toBe(true);
    expect(checkSubmitPath('/api/v2/image/generate', allow).ok).toBe(false);
    expect(checkSubmitPath('/api/v2/voicex/clone', allow).ok).toBe(false);
  });
});

describe('parseSubmitPaths (TASKHOOK_SUBMIT_PATHS)', () => {
  it('reads a comma list', () => {
    expect(parseSubmitPaths('/api/v2/, /api/v3/voice/ ')).toEqual(['/api/v2/', '/api/v3/voice/']);
  });
  it.each([
    ['', /comma list/],
    ['/api/v2', /must end with \//],
    ['/api/../', /\.\. segments/],
    ['https://x/api/', /not a URL/],
    ['api/v2/', /start with \//],
  ])('refuses %j', (v, reason) => {
    expect(() => parseSubmitPaths(v)).toThrow(reason);
  });
});

describe('submitUrl', () => {
  it.each([
    ['https://api.example.com', '/api/v2/voice/clone', 'https://api.example.com/api/v2/voice/clone'],
    ['https://api.example.com/', '/api/v2/voice/clone', 'https://api.example.com/api/v2/voice/clone'],
    ['http://127.0.0.1:8090/proxy', '/api/v2/x', 'http://127.0.0.1:8090/proxy/api/v2/x'],
  ])('%s + %s → %s', (base, p, url) => {
    expect(submitUrl(base, p)).toBe(url);
  });
  it('is undefined for a base that is not a URL', () => {
    expect(submitUrl('not a url', '/api/v2/x')).toBeUndefined();
  });
});

const answer = (status: number, text: string | null, extra: Partial<Extract<SubmitResult, { kind: 'answer' }>> = {}): SubmitResult => ({
  kind: 'answer',
  status,
  text,
  retryAfter: undefined,
  ...extra,
});
const ACCEPTED = JSON.stringify({ task_id: 'b28f0341-3045', status: 'pending', capability: 'voice', action: 'clone', model: 'v2-emotion' });

describe('decideSubmit', () => {
  it('202 with a task_id → accepted, with the kind of task', () => {
    expect(decideSubmit(answer(202, ACCEPTED))).toEqual({
      kind: 'accepted',
      taskId: 'b28f0341-3045',
      status: 202,
      text: ACCEPTED,
      taskKind: { capability: 'voice', action: 'clone', model: 'v2-emotion' },
    });
    expect(decideSubmit(answer(200, '{"task_id":"t1"}'))).toMatchObject({ kind: 'accepted', taskKind: { capability: null, action: null, model: null } });
  });

  it.each<[string, SubmitResult, object]>([
    ['401', answer(401, '{"error":{}}'), { kind: 'refused', reason: 'unauthorized', status: 401 }],
    ['400', answer(400, '{"error":{}}'), { kind: 'refused', reason: 'rejected', status: 400 }],
    ['402', answer(402, '{"required":10}'), { kind: 'refused', reason: 'rejected', status: 402 }],
    ['404', answer(404, ''), { kind: 'refused', reason: 'rejected', status: 404 }],
    ['429 keeps Retry-After', answer(429, '{}', { retryAfter: '7' }), { kind: 'refused', reason: 'rejected', status: 429, retryAfter: '7' }],
    ['4xx with an unreadable body', answer(422, null, { readError: 'timed out' }), { kind: 'refused', reason: 'rejected', status: 422, text: null }],
    ['500', answer(500, '{}'), { kind: 'failed', outcome: 'unknown', status: 500 }],
    ['502', answer(502, 'bad gateway'), { kind: 'failed', outcome: 'unknown', status: 502 }],
    ['504', answer(504, ''), { kind: 'failed', outcome: 'unknown', status: 504 }],
    ['503', answer(503, '{}'), { kind: 'failed', outcome: 'not_submitted', status: 503 }],
    ['302', answer(302, ''), { kind: 'failed', outcome: 'not_submitted', status: 302 }],
    ['202 garbage', answer(202, '{"task_id":"x","sta'), { kind: 'failed', outcome: 'unknown', status: 202 }],
    ['202 an array', answer(202, '[1]'), { kind: 'failed', outcome: 'unknown' }],
    ['202 without task_id', answer(202, '{"status":"pending"}'), { kind: 'failed', outcome: 'unknown', message: expect.stringMatching(/without a task_id/) }],
    ['202 with a numeric task_id', answer(202, '{"task_id":12}'), { kind: 'failed', outcome: 'unknown', message: expect.stringMatching(/cannot watch/) }],
    ['202 with a task_id taskhook cannot watch', answer(202, '{"task_id":"a/b"}'), { kind: 'failed', outcome: 'unknown' }],
    ['202 with the body cut off', answer(202, null, { readError: 'terminated' }), { kind: 'failed', outcome: 'unknown', message: expect.stringMatching(/could not be read/) }],
    ['never connected', { kind: 'no_answer', sent: false, message: 'ECONNREFUSED' }, { kind: 'failed', outcome: 'not_submitted', status: null }],
    ['timed out after sending', { kind: 'no_answer', sent: true, message: 'timed out' }, { kind: 'failed', outcome: 'unknown', status: null }],
  ])('%s', (_, r, want) => {
    expect(decideSubmit(r)).toMatchObject(want);
  });
});

describe('failedBeforeSending', () => {
  it.each([
    [Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), true],
    [Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), true],
    [Object.assign(new Error('fetch failed'), { cause: { code: 'ENOTFOUND' } }), true],
    [Object.assign(new Error('x'), { cause: { name: 'UpstreamAddressForbiddenError' } }), true],
    [Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }), false],
    [Object.assign(new Error('x'), { code: 'ECONNRESET' }), false],
    [Object.assign(new Error('x'), { name: 'TimeoutError' }), false],
    [new Error('anything else'), false],
  ])('%s → %s', (err, want) => {
    expect(failedBeforeSending(err)).toBe(want);
  });
});

describe('upstreamBodyForProblem', () => {
  it('parses a small JSON body, keeps a small text one, caps a large one', () => {
    expect(upstreamBodyForProblem('{"error":{"code":"x"}}')).toEqual({ upstream_body: { error: { code: 'x' } } });
    expect(upstreamBodyForProblem('plain words')).toEqual({ upstream_body: 'plain words' });
    expect(upstreamBodyForProblem(null)).toEqual({ upstream_body: null });
    const big = upstreamBodyForProblem(JSON.stringify({ pad: 'é'.repeat(10_000) }));
    expect(big.upstream_body_truncated).toBe(true);
    expect(Buffer.byteLength(big.upstream_body as string)).toBeLessThanOrEqual(MAX_UPSTREAM_ERROR_BYTES);
    expect(big.upstream_body as string).not.toMatch(/\uFFFD/);
  });
});

describe('requestFingerprint', () => {
  const base = { path: '/api/v2/voice/clone', body: { text: 'hi', model: 'v1', n: [1, { b: 2, a: 1 }] }, callback_url: 'https://x/hook', metadata: { a: 1 }, events: ['task.completed', 'task.failed'] };
  it('is the same whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
    expect(requestFingerprint(base)).toBe(requestFingerprint({ ...base, body: { n: [1, { a: 1, b: 2 }], model: 'v1', text: 'hi' }, events: ['task.failed', 'task.completed'] }));
  });
  it.each([
    ['path', { path: '/api/v2/image/generate' }],
    ['body', { body: { text: 'hi!' } }],
    ['callback_url', { callback_url: 'https://x/other' }],
    ['metadata', { metadata: { a: 2 } }],
    ['events', { events: ['task.completed'] }],
  ])('differs when %s differs', (_, change) => {
    expect(requestFingerprint({ ...base, ...change })).not.toBe(requestFingerprint(base));
  });
});

describe('TASKHOOK_SUBMIT_PATHS / TASKHOOK_SUBMIT_TIMEOUT_S', () => {
  it('default to /api/v2/ and 30 s', async () => {
    const { loadConfig } = await import('../src/config.js');
    expect(loadConfig({})).toMatchObject({ submitPaths: ['/api/v2/'], submitTimeoutMs: 30_000 });
    expect(loadConfig({ TASKHOOK_SUBMIT_PATHS: '/api/v2/voice/,/api/v3/', TASKHOOK_SUBMIT_TIMEOUT_S: '2.5' })).toMatchObject({ submitPaths: ['/api/v2/voice/', '/api/v3/'], submitTimeoutMs: 2500 });
  });
  it.each([
    ['TASKHOOK_SUBMIT_PATHS', '/api/v2', /invalid TASKHOOK_SUBMIT_PATHS: prefix "\/api\/v2" must end with \//],
    ['TASKHOOK_SUBMIT_PATHS', '/api/../', /invalid TASKHOOK_SUBMIT_PATHS: .*\.\. segments/],
    ['TASKHOOK_SUBMIT_TIMEOUT_S', '0', /invalid TASKHOOK_SUBMIT_TIMEOUT_S: expected seconds/],
  ])('%s=%j stops start-up in one line', async (name, value, message) => {
    const { loadConfig } = await import('../src/config.js');
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
