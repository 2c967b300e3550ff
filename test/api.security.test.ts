// CONTRACT §3: every bad input is answered with its 4xx as application/problem+json
// {type, title, status, detail}; no input yields a 5xx; a refused registration
// queues nothing. Ends with a seeded fuzz over the /v1 surface.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretBox } from '../src/tenancy/secret-box.js';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY, TEST_UPSTREAM_KEY } from './support/env.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

// ---------------------------------------------------------------------------
// helpers

interface Res {
  status: number;
  /** lower-case header names */
  header(name: string): string | null;
  json: any;
  text: string;
}

/** Watch ids this file created on purpose; every other row in `watches` is a leak. */
const intended = new Set<string>();

function wrap(r: { status: number; headers: Headers; json: any; text: string }): Res {
  return { status: r.status, header: (n) => r.headers.get(n), json: r.json, text: r.text };
}

async function api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<Res> {
  return wrap(await s.api(path, init));
}

/**
 * A request over node:http, for what fetch won't send: no content type, a body on
 * any method, chunked uploads, a body bigger than the server will read.
 */
function raw(
  method: string,
  path: string,
  opts: { headers?: Record<string, string | undefined>; body?: string | Buffer; chunks?: Array<string | Buffer>; agent?: http.Agent } = {},
): Promise<Res> {
  const url = new URL(s.gateway.url!);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries({ authorization: `Bearer ${TEST_API_KEY}`, ...opts.headers })) if (v !== undefined) headers[k] = v;
  if (opts.body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  return new Promise<Res>((resolve, reject) => {
    let answered = false;
    const req = http.request(
      { host: url.hostname, port: url.port, method, path, headers, agent: opts.agent ?? false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          const h = res.headers;
          resolve({
            status: res.statusCode!,
            header: (n) => {
              const v = h[n.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : String(v);
            },
            json,
            text,
          });
        });
      },
    );
    // The server may answer (413) and hang up before it has read everything we send.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (opts.chunks) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

function expectProblem(res: Res, status: number, label = '') {
  const where = `${label} → ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, where).toBe(status);
  expect(res.header('content-type'), where).toMatch(/^application\/problem\+json\b/);
  expect(res.json, where).toMatchObject({
    type: expect.stringMatching(/^https?:\/\/\S+$/),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  expect(res.json.title.length, where).toBeGreaterThan(0);
  expect(res.json.detail.length, where).toBeGreaterThan(0);
}

const sha256hex = (v: string) => createHash('sha256').update(v).digest('hex');
const cb = (path = '/hook') => `${s.receiver.url}${path}`;
const post = (body: unknown, headers?: Record<string, string>) => api('/v1/watches', { method: 'POST', body, headers });

async function registerOk(body: Record<string, unknown>, key = TEST_API_KEY): Promise<any> {
  const res = await api('/v1/watches', { method: 'POST', body, headers: { authorization: `Bearer ${key}` } });
  expect(res.status, res.text).toBe(201);
  intended.add(res.json.id);
  return res.json;
}

/** No row in watches / upstream_tasks / deliveries that this file didn't create on purpose. */
async function expectNothingUnintendedQueued() {
  const watches = await s.db.sql<{ id: string; task_id: string; tenant_id: string }[]>`select id, task_id, tenant_id from watches`;
  expect(watches.filter((w) => !intended.has(w.id)), 'unexpected watches').toEqual([]);
  const tasks = new Set(watches.map((w) => `${w.tenant_id}/${w.task_id}`));
  const upstream = await s.db.sql<{ tenant_id: string; task_id: string }[]>`select tenant_id, task_id from upstream_tasks`;
  expect(upstream.filter((u) => !tasks.has(`${u.tenant_id}/${u.task_id}`)), 'unexpected upstream_tasks').toEqual([]);
  const deliveries = await s.db.sql<{ id: string; watch_id: string }[]>`select id, watch_id from deliveries`;
  expect(deliveries.filter((d) => !intended.has(d.watch_id)), 'unexpected deliveries').toEqual([]);
}

// A well-formed id that was never issued.
const UNKNOWN_ID = 'wat_00000000000000000000000000';

// ---------------------------------------------------------------------------

describe('health', () => {
  it('/healthz and /readyz answer 200 on the test stack', async () => {
    const h = await raw('GET', '/healthz', { headers: { authorization: undefined } });
    expect(h.status).toBe(200);
    expect(h.json).toEqual({ status: 'ok' });
    const r = await raw('GET', '/readyz', { headers: { authorization: undefined } });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toEqual({ status: 'ready' });
  });
});

describe('bad input → its 4xx as problem+json, and nothing queued', () => {
  it('400 for malformed JSON bodies', async () => {
    const bodies = [
      '{"task_id": "bad-trunc", "callback_url": "http://127.0.0.1/x"',
      '{"task_id": ',
      '{',
      '[]',
      '[{"task_id":"bad-arr","callback_url":"http://127.0.0.1/x"}]',
      '"a bare string"',
      '42',
      'null',
      'true',
      '',
      ' ',
      '{,}',
      "{'task_id': 'bad-quotes'}",
      '{"task_id": "bad-trailing",}',
      '{"a":1}{"b":2}',
      'task_id=bad-form&callback_url=x',
      '\uFEFF{}',
      '{"task_id": "bad-nan", "x": NaN}',
    ];
    for (const body of bodies) {
      const res = await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body });
      expectProblem(res, 400, JSON.stringify(body));
    }
    // invalid UTF-8 that isn't JSON either
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body: Buffer.from([0xff, 0xfe, 0x7b, 0x80]) }), 400, 'bytes');
    // no body at all (content-length: 0) and a chunked upload of nothing
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json', 'content-length': '0' } }), 400, 'no body');
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, chunks: [] }), 400, 'empty chunked');
    // and through fetch, as a client would
    expectProblem(await post('[]'), 400, 'fetch []');
    expectProblem(await api('/v1/watches', { method: 'POST', body: '' }), 400, 'fetch empty');
  });

  it('401 for a missing, wrong or malformed Authorization header, before anything else is looked at', async () => {
    const headers: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['empty', ''],
      ['wrong key', 'Bearer thk_not_the_key'],
      ['key with a char missing', `Bearer ${TEST_API_KEY.slice(0, -1)}`],
      ['key plus a char', `Bearer ${TEST_API_KEY}x`],
      ['no scheme', TEST_API_KEY],
      ['Basic', `Basic ${Buffer.from(`user:${TEST_API_KEY}`).toString('base64')}`],
      ['Bearer only', 'Bearer'],
      ['Bearer and space', 'Bearer '],
      ['two spaces', `Bearer  ${TEST_API_KEY}`],
      ['trailing junk', `Bearer ${TEST_API_KEY} extra`],
      ['huge token', `Bearer ${'x'.repeat(4000)}`],
      ['token of quotes', 'Bearer """"'],
    ];
    const requests: Array<[string, string, string | undefined]> = [
      ['GET', '/v1/watches', undefined],
      ['POST', '/v1/watches', JSON.stringify({ task_id: 'bad-unauth', callback_url: 'http://127.0.0.1/unauth' })],
      ['POST', '/v1/watches', '{ not json'],
      ['GET', `/v1/watches/${UNKNOWN_ID}`, undefined],
      ['DELETE', `/v1/watches/${UNKNOWN_ID}`, undefined],
      ['GET', `/v1/watches/${UNKNOWN_ID}/deliveries`, undefined],
      ['POST', `/v1/watches/${UNKNOWN_ID}/redeliver`, undefined],
      ['GET', '/v1/tasks/some-task', undefined],
      ['GET', '/v1/no-such-route', undefined],
    ];
    for (const [label, authorization] of headers) {
      for (const [method, path, body] of requests) {
        const res = await raw(method, path, {
          headers: { authorization, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body,
        });
        expectProblem(res, 401, `${label}: ${method} ${path}`);
        expect(res.header('www-authenticate'), `${label}: ${method} ${path}`).toMatch(/^Bearer\b/);
      }
    }
    // fetch too
    const res = await api('/v1/watches', { headers: { authorization: 'Bearer nope' } });
    expectProblem(res, 401, 'fetch');
    expect(res.header('www-authenticate')).toMatch(/^Bearer\b/);
  });

  it('404 for an unknown watch id, a malformed id, an unknown route or task', async () => {
    const ids = [
      UNKNOWN_ID,
      'wat_zzzzzzzzzzzzzzzzzzzzzzzzzz',
      'wat_short',
      'wat_0000000000000000000000000A',
      'wat_000000000000000000000000000',
      'WAT_00000000000000000000000000',
      'not-a-watch',
      '1',
      '%00',
      '%zz',
      '%E0%A4%A',
      '..%2F..%2Fetc%2Fpasswd',
      encodeURIComponent("wat_' or '1'='1"),
      encodeURIComponent('wåt_ünïcødé'),
      'x'.repeat(2000),
    ];
    for (const id of ids) {
      expectProblem(await raw('GET', `/v1/watches/${id}`), 404, `GET ${id}`);
      expectProblem(await raw('DELETE', `/v1/watches/${id}`), 404, `DELETE ${id}`);
      expectProblem(await raw('GET', `/v1/watches/${id}/deliveries`), 404, `deliveries ${id}`);
      expectProblem(await raw('POST', `/v1/watches/${id}/redeliver`), 404, `redeliver ${id}`);
    }
    const routes: Array<[string, string]> = [
      ['GET', '/v1/no-such-route'],
      ['GET', '/v1'],
      ['GET', '/v1/'],
      ['GET', '/nope'],
      ['GET', '/v2/watches'],
      ['PUT', '/v1/watches'],
      ['PATCH', `/v1/watches/${UNKNOWN_ID}`],
      ['POST', `/v1/watches/${UNKNOWN_ID}`],
      ['GET', `/v1/watches/${UNKNOWN_ID}/redeliver`],
      ['POST', `/v1/watches/${UNKNOWN_ID}/deliveries`],
      ['GET', `/v1/watches/${UNKNOWN_ID}/nope`],
      ['DELETE', '/v1/watches'],
      ['POST', '/v1/tasks/some-task'],
      ['GET', '/v1/tasks'],
    ];
    for (const [method, path] of routes) expectProblem(await raw(method, path), 404, `${method} ${path}`);
    // tasks never seen, and task ids that can't exist
    for (const t of ['never-seen', 'a%20b', 'x'.repeat(300), '%zz', encodeURIComponent('tâche')]) {
      expectProblem(await raw('GET', `/v1/tasks/${t}`), 404, `task ${t}`);
    }
  });

  it('413 for a body over 64 KiB, with a content-length and chunked', async () => {
    const big = JSON.stringify({ task_id: 'bad-big', callback_url: cb('/big'), metadata: { pad: 'x'.repeat(70 * 1024) } });
    expect(Buffer.byteLength(big)).toBeGreaterThan(64 * 1024);
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body: big }), 413, 'content-length');
    expectProblem(await post(big), 413, 'fetch');
    // chunked: no content-length to refuse up front, so the cap applies while reading
    const chunks = Array.from({ length: 20 }, (_, i) => (i === 0 ? big.slice(0, 8 * 1024) : 'x'.repeat(8 * 1024)));
    const chunked = await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks });
    expectProblem(chunked, 413, 'chunked');
    // a complete, valid-JSON chunked body just over the limit
    const slices = big.match(/[\s\S]{1,1000}/g)!;
    expectProblem(
      await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks: slices }),
      413,
      'chunked json',
    );
    // exactly at the limit is read (and then refused for what it says, not its size)
    const exact = JSON.stringify({ task_id: 'bad-exact', callback_url: cb('/exact'), metadata: { pad: '' } });
    const padded = exact.replace('"pad":""', `"pad":"${'x'.repeat(64 * 1024 - Buffer.byteLength(exact))}"`);
    expect(Buffer.byteLength(padded)).toBe(64 * 1024);
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body: padded }), 422, 'exactly 64 KiB');
  });

  it('415 for a wrong or missing content type', async () => {
    const body = JSON.stringify({ task_id: 'bad-ctype', callback_url: cb('/ctype') });
    const types: Array<string | undefined> = [
      undefined,
      '',
      'text/plain',
      'text/plain;charset=UTF-8',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/jsonp',
      'application/json-seq',
      'application/octet-stream',
      'json',
      '*/*',
    ];
    for (const t of types) {
      expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': t }, body }), 415, `content-type ${t}`);
    }
    // fetch's default for a string body is text/plain
    expectProblem(await api('/v1/watches', { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } }), 415, 'fetch');
  });

  it('422 for each invalid field, with the field named', async () => {
    const ok = { task_id: 'bad-field-ok', callback_url: cb('/field') };
    const cases: Array<[string, Record<string, unknown>, string]> = [
      // task_id
      ['task_id empty', { ...ok, task_id: '' }, 'task_id'],
      ['task_id 257 chars', { ...ok, task_id: `bad-${'a'.repeat(253)}` }, 'task_id'],
      ['task_id space', { ...ok, task_id: 'bad task' }, 'task_id'],
      ['task_id slash', { ...ok, task_id: 'bad/task' }, 'task_id'],
      ['task_id unicode', { ...ok, task_id: 'bad-tâche' }, 'task_id'],
      ['task_id emoji', { ...ok, task_id: 'bad-🙂' }, 'task_id'],
      ['task_id newline', { ...ok, task_id: 'bad-\n' }, 'task_id'],
      ['task_id NUL', { ...ok, task_id: 'bad-\u0000' }, 'task_id'],
      ['task_id percent', { ...ok, task_id: 'bad%2F' }, 'task_id'],
      ['task_id number', { ...ok, task_id: 12345 }, 'task_id'],
      ['task_id null', { ...ok, task_id: null }, 'task_id'],
      ['task_id array', { ...ok, task_id: ['bad-a'] }, 'task_id'],
      ['task_id object', { ...ok, task_id: { id: 'bad-o' } }, 'task_id'],
      ['task_id bool', { ...ok, task_id: true }, 'task_id'],
      ['task_id missing', { callback_url: ok.callback_url }, 'task_id'],
      // callback_url
      ['callback_url missing', { task_id: 'bad-cb-missing' }, 'callback_url'],
      ['callback_url empty', { ...ok, callback_url: '' }, 'callback_url'],
      ['callback_url null', { ...ok, callback_url: null }, 'callback_url'],
      ['callback_url number', { ...ok, callback_url: 8080 }, 'callback_url'],
      ['callback_url object', { ...ok, callback_url: { href: cb() } }, 'callback_url'],
      ['callback_url ftp', { ...ok, callback_url: 'ftp://127.0.0.1/hook' }, 'callback_url'],
      ['callback_url javascript', { ...ok, callback_url: 'javascript:alert(1)' }, 'callback_url'],
      ['callback_url file', { ...ok, callback_url: 'file:///etc/passwd' }, 'callback_url'],
      ['callback_url data', { ...ok, callback_url: 'data:text/plain,hi' }, 'callback_url'],
      ['callback_url ws', { ...ok, callback_url: 'ws://127.0.0.1/hook' }, 'callback_url'],
      ['callback_url relative', { ...ok, callback_url: '/hook' }, 'callback_url'],
      ['callback_url no scheme', { ...ok, callback_url: '127.0.0.1/hook' }, 'callback_url'],
      ['callback_url no host', { ...ok, callback_url: 'http://' }, 'callback_url'],
      ['callback_url not a url', { ...ok, callback_url: 'not a url' }, 'callback_url'],
      ['callback_url user:pass', { ...ok, callback_url: cb().replace('http://', 'http://user:pass@') }, 'callback_url'],
      ['callback_url user only', { ...ok, callback_url: cb().replace('http://', 'http://user@') }, 'callback_url'],
      ['callback_url empty userinfo password', { ...ok, callback_url: cb().replace('http://', 'http://:secret@') }, 'callback_url'],
      ['callback_url 2049 chars', { ...ok, callback_url: `${cb('/')}${'a'.repeat(2049 - cb('/').length)}` }, 'callback_url'],
      ['callback_url 10 KiB', { ...ok, callback_url: `${cb('/')}${'a'.repeat(10 * 1024)}` }, 'callback_url'],
      ['callback_url private 10/8', { ...ok, callback_url: 'http://10.0.0.1/hook' }, 'callback_url'],
      ['callback_url private 10/8 as hex', { ...ok, callback_url: 'http://0x0a000001/hook' }, 'callback_url'],
      ['callback_url private 192.168', { ...ok, callback_url: 'https://192.168.1.1/hook' }, 'callback_url'],
      ['callback_url private 172.16', { ...ok, callback_url: 'http://172.16.0.5:8080/hook' }, 'callback_url'],
      ['callback_url cloud metadata', { ...ok, callback_url: 'http://169.254.169.254/latest/meta-data/' }, 'callback_url'],
      ['callback_url link-local', { ...ok, callback_url: 'http://169.254.1.1/' }, 'callback_url'],
      ['callback_url unspecified', { ...ok, callback_url: 'http://0.0.0.0/' }, 'callback_url'],
      ['callback_url IPv6 loopback (only 127/8 allowed)', { ...ok, callback_url: 'http://[::1]/hook' }, 'callback_url'],
      ['callback_url IPv4-mapped private', { ...ok, callback_url: 'http://[::ffff:10.0.0.1]/hook' }, 'callback_url'],
      ['callback_url IPv6 unique-local', { ...ok, callback_url: 'http://[fd00::1]/hook' }, 'callback_url'],
      ['callback_url IPv6 metadata', { ...ok, callback_url: 'http://[fd00:ec2::254]/' }, 'callback_url'],
      ['callback_url documentation', { ...ok, callback_url: 'http://192.0.2.1/' }, 'callback_url'],
      ['callback_url broadcast', { ...ok, callback_url: 'http://255.255.255.255/' }, 'callback_url'],
      ['callback_url multicast', { ...ok, callback_url: 'http://224.0.0.1/' }, 'callback_url'],
      // metadata
      ['metadata array', { ...ok, metadata: [1, 2] }, 'metadata'],
      ['metadata string', { ...ok, metadata: 'hello' }, 'metadata'],
      ['metadata null', { ...ok, metadata: null }, 'metadata'],
      ['metadata number', { ...ok, metadata: 7 }, 'metadata'],
      ['metadata bool', { ...ok, metadata: false }, 'metadata'],
      ['metadata > 16 KiB', { ...ok, metadata: { pad: 'x'.repeat(16 * 1024) } }, 'metadata'],
      ['metadata > 16 KiB, many keys', { ...ok, metadata: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])) }, 'metadata'],
      // events
      ['events unknown type', { ...ok, events: ['task.exploded'] }, 'events'],
      ['events one unknown among known', { ...ok, events: ['task.completed', 'task.Completed'] }, 'events'],
      ['events empty', { ...ok, events: [] }, 'events'],
      ['events a string', { ...ok, events: 'task.completed' }, 'events'],
      ['events null', { ...ok, events: null }, 'events'],
      ['events numbers', { ...ok, events: [1] }, 'events'],
      ['events object', { ...ok, events: { 'task.completed': true } }, 'events'],
      // the object itself
      ['unknown top-level field', { ...ok, extra: 1 }, 'extra'],
      ['misspelt field', { task_id: ok.task_id, callbackUrl: ok.callback_url }, 'callback'],
      ['empty object', {}, 'task_id'],
    ];
    for (const [label, body, field] of cases) {
      const res = await post(body);
      expectProblem(res, 422, label);
      expect(res.text, label).toContain(field);
    }
    // __proto__ as a key (JSON.parse makes it an own property) is an unknown field too
    const proto = await raw('POST', '/v1/watches', {
      headers: { 'content-type': 'application/json' },
      body: `{"task_id":"bad-proto","callback_url":"${cb('/proto')}","__proto__":{"polluted":true}}`,
    });
    expectProblem(proto, 422, '__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('422, not 500, for metadata Postgres jsonb cannot store or whose nesting is absurd', async () => {
    const ok = { task_id: 'bad-jsonb', callback_url: cb('/jsonb') };
    const bodies: Array<[string, string]> = [
      ['NUL in a value', JSON.stringify({ ...ok, metadata: { a: 'x\u0000y' } })],
      ['NUL in a key', JSON.stringify({ ...ok, metadata: { 'k\u0000': 1 } })],
      ['NUL deep inside', JSON.stringify({ ...ok, metadata: { a: [{ b: ['\u0000'] }] } })],
      ['lone high surrogate', `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"a":"\\ud800"}}`],
      ['lone low surrogate', `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"a":"\\udc00x"}}`],
      ['lone surrogate in a key', `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"\\ud83d":1}}`],
      ['nested 65 deep', `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"a":${'['.repeat(64)}${']'.repeat(64)}}}`],
      ['nested 8000 deep', `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"a":${'['.repeat(8000)}${']'.repeat(8000)}}}`],
    ];
    for (const [label, body] of bodies) {
      const res = await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body });
      expectProblem(res, 422, label);
      expect(res.text, label).toContain('metadata');
    }
    // 30 000 deep is past the 16 KiB metadata limit anyway, but must not blow the stack on the way
    const deep = `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","metadata":{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`;
    expectProblem(await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body: deep }), 422, '30000 deep');
    // absurd nesting anywhere else is just a wrong type or an unknown field
    for (const field of ['task_id', 'callback_url', 'events', 'surprise']) {
      const body = `{"task_id":"bad-jsonb","callback_url":"${ok.callback_url}","${field}":${'['.repeat(30_000)}${']'.repeat(30_000)}}`;
      const res = await raw('POST', '/v1/watches', { headers: { 'content-type': 'application/json' }, body });
      expectProblem(res, 422, `deep ${field}`);
      expect(res.text).toContain(field);
    }
    // a properly paired surrogate (an emoji) is fine: escaped and raw
    const emoji = await raw('POST', '/v1/watches', {
      headers: { 'content-type': 'application/json' },
      body: `{"task_id":"emoji-meta","callback_url":"${cb('/emoji')}","metadata":{"a":"\\ud83d\\ude00","b":"🙂","\\ud83d\\ude00":"k"}}`,
    });
    expect(emoji.status, emoji.text).toBe(201);
    intended.add(emoji.json.id);
    expect(emoji.json.metadata).toEqual({ a: '😀', b: '🙂', '😀': 'k' });
  });

  it('422 for a bad list query', async () => {
    const queries = [
      'status=bogus',
      'status=',
      'status=WATCHING',
      'limit=0',
      'limit=101',
      'limit=-1',
      'limit=abc',
      'limit=1.5',
      'limit=',
      'limit=Infinity',
      'limit=1e9',
      'cursor=bad',
      'cursor=',
      'cursor=wat_0000000000000000000000000A',
      `cursor=${encodeURIComponent("wat_' or 1=1 --")}`,
      'task_id=a%20b',
      'task_id=',
      `task_id=${'a'.repeat(257)}`,
      'status=%zz',
      'limit=%',
      'unknown=1',
    ];
    for (const q of queries) expectProblem(await raw('GET', `/v1/watches?${q}`), 422, q);
    // the good ones still work
    for (const q of ['', 'limit=1', 'limit=100', 'status=watching', `cursor=${UNKNOWN_ID}`, 'task_id=a.b:c-d_e']) {
      const res = await raw('GET', `/v1/watches?${q}`);
      expect(res.status, `${q} ${res.text}`).toBe(200);
      expect(res.json).toMatchObject({ data: expect.any(Array) });
    }
  });

  it('none of the refused registrations left a watch, a poll schedule or a delivery behind', async () => {
    const n = await s.db.sql<{ n: number }[]>`select count(*)::int as n from watches where task_id like 'bad%'`;
    expect(n[0]!.n).toBe(0);
    const u = await s.db.sql<{ n: number }[]>`select count(*)::int as n from upstream_tasks where task_id like 'bad%'`;
    expect(u[0]!.n).toBe(0);
    const d = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries`;
    expect(d[0]!.n).toBe(0);
    await expectNothingUnintendedQueued();
  });
});

describe('limits are inclusive', () => {
  it('accepts a 256-char task_id, a 2048-char callback_url, 16 KiB / 64-level metadata and every event type', async () => {
    const base = cb('/edge/');
    const metaShell = JSON.stringify({ pad: '' });
    const w = await registerOk({
      task_id: `edge-${'t'.repeat(251)}`,
      callback_url: `${base}${'a'.repeat(2048 - base.length)}`,
      metadata: { pad: 'm'.repeat(16 * 1024 - metaShell.length) },
      events: ['task.completed', 'task.failed', 'task.cancelled', 'task.processing', 'watch.failed'],
    });
    expect(w.task_id).toHaveLength(256);
    expect(w.callback_url).toHaveLength(2048);
    expect(Buffer.byteLength(JSON.stringify(w.metadata))).toBe(16 * 1024);
    await api(`/v1/watches/${w.id}`, { method: 'DELETE' });
    // metadata nested exactly 64 levels (the object itself is level 1)
    const deep = await registerOk({ task_id: 'edge-deep', callback_url: cb('/edge-deep'), metadata: { a: JSON.parse(`${'['.repeat(63)}${']'.repeat(63)}`) } });
    expect(JSON.stringify(deep.metadata)).toBe(`{"a":${'['.repeat(63)}${']'.repeat(63)}}`);
    await api(`/v1/watches/${deep.id}`, { method: 'DELETE' });
  });
});

describe('another tenant’s watches are invisible (404, never 403)', () => {
  const OTHER_KEY = 'thk_other_tenant_key_9f8e7d6c5b4a';
  let mine: any;
  let theirs: any;

  beforeAll(async () => {
    const box = createSecretBox([Buffer.alloc(32, 7)]);
    await s.db.sql`
      insert into tenants (id, name, api_key_hash, signing_secret, upstream_api_key_enc)
      values ('ten_other', 'other', ${sha256hex(OTHER_KEY)}, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', ${box.seal(TEST_UPSTREAM_KEY, 'ten_other')})`;
    const task = s.upstream.createTask({ durationMs: 120_000 });
    mine = await registerOk({ task_id: task.task_id, callback_url: cb('/mine') });
    theirs = await registerOk({ task_id: task.task_id, callback_url: cb('/theirs'), metadata: { secret: 'theirs' } }, OTHER_KEY);
  });

  it('the default key gets 404 on GET, DELETE, deliveries and redeliver of the other tenant’s watch', async () => {
    for (const [method, path] of [
      ['GET', `/v1/watches/${theirs.id}`],
      ['DELETE', `/v1/watches/${theirs.id}`],
      ['GET', `/v1/watches/${theirs.id}/deliveries`],
      ['POST', `/v1/watches/${theirs.id}/redeliver`],
    ] as const) {
      const res = await raw(method, path);
      expectProblem(res, 404, `${method} ${path}`);
      expect(res.text).not.toContain('theirs');
    }
    // …and the other tenant's watch is untouched by that DELETE
    const still = await api(`/v1/watches/${theirs.id}`, { headers: { authorization: `Bearer ${OTHER_KEY}` } });
    expect(still.status).toBe(200);
    expect(still.json.status).toBe('watching');
    // the reverse holds too
    const back = await api(`/v1/watches/${mine.id}`, { headers: { authorization: `Bearer ${OTHER_KEY}` } });
    expectProblem(back, 404, 'other → mine');
  });

  it('lists are scoped: neither tenant sees the other’s watches, even filtered by the shared task_id', async () => {
    const mineList = await api(`/v1/watches?limit=100`);
    expect(mineList.status).toBe(200);
    expect(mineList.json.data.map((w: any) => w.id)).toContain(mine.id);
    expect(mineList.json.data.map((w: any) => w.id)).not.toContain(theirs.id);
    const theirList = await api(`/v1/watches?limit=100`, { headers: { authorization: `Bearer ${OTHER_KEY}` } });
    expect(theirList.status).toBe(200);
    expect(theirList.json.data.map((w: any) => w.id)).toEqual([theirs.id]);
    const byTask = await api(`/v1/watches?task_id=${mine.task_id}`);
    expect(byTask.json.data.map((w: any) => w.id)).toEqual([mine.id]);
  });

  it('registering the same (task_id, callback_url) as another tenant creates a new watch rather than returning theirs', async () => {
    const res = await post({ task_id: theirs.task_id, callback_url: theirs.callback_url });
    expect(res.status, res.text).toBe(201);
    intended.add(res.json.id);
    expect(res.json.id).not.toBe(theirs.id);
    expect(res.json.metadata).toEqual({});
  });
});

describe('409', () => {
  it('redeliver on a still-watching watch, and on a cancelled one', async () => {
    const task = s.upstream.createTask({ durationMs: 120_000 });
    const w = await registerOk({ task_id: task.task_id, callback_url: cb('/409') });
    expect(w.status).toBe('watching');
    expectProblem(await api(`/v1/watches/${w.id}/redeliver`, { method: 'POST' }), 409, 'watching');
    const cancelled = await api(`/v1/watches/${w.id}`, { method: 'DELETE' });
    expect(cancelled.json.status).toBe('cancelled');
    expectProblem(await api(`/v1/watches/${w.id}/redeliver`, { method: 'POST' }), 409, 'cancelled');
    const d = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where watch_id = ${w.id}`;
    expect(d[0]!.n).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// fuzz

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}
type Rng = ReturnType<typeof prng>;

const ALPHABET = 'abcXYZ019._:-/ %?#&=+"\'\\<>{}[],;@!~`$^*()|\t\n\u0000\u00e9\u4e2d\ud83d\ude00\ud800\udc00';
function randString(r: Rng, max = 40): string {
  let out = '';
  const n = r.int(max + 1);
  for (let i = 0; i < n; i++) out += ALPHABET[r.int(ALPHABET.length)];
  return out;
}

/** encodeURIComponent, except an unpaired surrogate becomes the (invalid UTF-8) bytes a sloppy client would send. */
function enc(v: string): string {
  return v.replace(/[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]|[^\ud800-\udfff]+/g, (m) =>
    m.length === 1 && m.charCodeAt(0) >= 0xd800 && m.charCodeAt(0) <= 0xdfff ? '%ED%A0%80' : encodeURIComponent(m),
  );
}

function randJson(r: Rng, depth = 0): unknown {
  const k = r.int(depth > 3 ? 6 : 9);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 101, 100, 1]);
    case 3:
    case 4:
      return randString(r);
    case 5:
      return r.pick(['task.completed', 'watch.failed', 'watching', 'http://127.0.0.1/', '', 'wat_00000000000000000000000000']);
    case 6:
      return Array.from({ length: r.int(4) }, () => randJson(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) o[r.chance(0.5) ? r.pick(['task_id', 'callback_url', 'metadata', 'events', '__proto__', 'constructor']) : randString(r, 8)] = randJson(r, depth + 1);
      return o;
    }
  }
}

const CALLBACKS = [
  'http://10.0.0.1/x',
  'http://169.254.169.254/',
  'ftp://127.0.0.1/',
  'javascript:alert(1)',
  'http://u:p@127.0.0.1/',
  'http://[::1]/',
  'http://0x7f.1/',
  'http://',
  'not a url',
];

function randBody(r: Rng, hookBase: string): string | Buffer | undefined {
  switch (r.int(8)) {
    case 0:
      return undefined;
    case 1:
      return JSON.stringify(randJson(r));
    case 2: {
      // near-valid registration with one field mutated
      const body: Record<string, unknown> = {
        task_id: r.chance(0.7) ? `fz-${r.int(1e6)}` : randJson(r),
        callback_url: r.chance(0.5) ? `${hookBase}/fz/${r.int(100)}` : r.chance(0.7) ? r.pick(CALLBACKS) : randJson(r),
      };
      if (r.chance(0.4)) body.metadata = r.chance(0.8) ? { k: randJson(r), [randString(r, 6)]: randString(r) } : randJson(r);
      if (r.chance(0.3)) body.events = r.chance(0.5) ? [r.pick(['task.completed', 'task.processing', 'task.nope'])] : randJson(r);
      if (r.chance(0.1)) body[randString(r, 6)] = 1;
      return JSON.stringify(body);
    }
    case 3: {
      const s = JSON.stringify(randJson(r));
      return s.slice(0, r.int(s.length + 1)); // truncated
    }
    case 4:
      return Buffer.from(Array.from({ length: r.int(200) }, () => r.int(256)));
    case 5:
      return randString(r, 100);
    case 6: {
      const d = 1 + (r.chance(0.5) ? r.int(100) : r.int(8100)); // 16 KiB of metadata nests ~8000 deep
      return `{"task_id":"fz-deep","callback_url":"${hookBase}/deep","metadata":{"a":${'['.repeat(d)}${']'.repeat(d)}}}`;
    }
    default:
      return r.chance(0.3) ? `{"task_id":"fz-big","callback_url":"${hookBase}/big","metadata":{"p":"${'x'.repeat(70_000)}"}}` : '{}';
  }
}

function randPath(r: Rng, known: string[]): string {
  const id = () =>
    r.pick([
      () => r.pick(known.length ? known : [UNKNOWN_ID]),
      () => UNKNOWN_ID,
      () => `wat_${enc(randString(r, 30))}`,
      () => enc(randString(r, 20)),
      () => r.pick(['%', '%zz', '%E0%A4%A', '%00', '..', '.', '%2F', '']),
    ])();
  const query = () => {
    const parts = [];
    for (let i = r.int(4); i > 0; i--) {
      const key = r.pick(['status', 'limit', 'cursor', 'task_id', 'x', '']);
      const val = r.chance(0.5) ? r.pick(['watching', 'delivered', '0', '1', '100', '101', 'abc', '-5', UNKNOWN_ID, '%', '%zz']) : enc(randString(r, 12));
      parts.push(`${key}=${val}`);
    }
    return parts.length ? `?${parts.join('&')}` : '';
  };
  switch (r.int(14)) {
    case 0:
    case 1:
    case 2:
    case 10:
    case 11:
    case 12:
    case 13:
      return `/v1/watches${r.chance(0.7) ? '' : query()}`;
    case 3:
      return `/v1/watches/${id()}`;
    case 4:
      return `/v1/watches/${id()}/deliveries`;
    case 5:
      return `/v1/watches/${id()}/redeliver`;
    case 6:
      return `/v1/tasks/${id()}`;
    case 7:
      return r.pick(['/v1/watches/', '/v1', '/v1/', '/v1/tasks', '/v1//watches', '/V1/watches', '/v1/watches/x/y/z', '//', '/v1/watches?']);
    case 8:
      return `/v1/${enc(randString(r, 10))}`;
    default:
      return `/v1/watches${r.pick(['', '/', `/${UNKNOWN_ID}`])}`;
  }
}

describe('fuzz', () => {
  it('thousands of random requests: never a 5xx, every 4xx is problem+json', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 0x7a5c_4b1d);
    const total = Number(process.env.FUZZ_COUNT ?? 3000);
    const r = prng(seed);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const known = [...intended];
    const hookBase = s.receiver.url;
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const methods = ['GET', 'GET', 'POST', 'POST', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'] as const;
    const types = [
      'application/json',
      'application/json',
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/problem+json',
      'application/vnd.api+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=zz',
      'application/jsonx',
      '',
      undefined,
    ];
    const badAuths = ['Bearer x', undefined, 'Basic Og==', `Bearer ${TEST_API_KEY}x`, ''];

    const requests = Array.from({ length: total }, (_, i) => {
      const path = randPath(r, known);
      // mostly what could pass: registrations, with the key
      const method = /^\/v1\/watches\/?(\?|$)/.test(path) && r.chance(0.7) ? 'POST' : r.pick(methods);
      const body = method === 'GET' || method === 'HEAD' ? (r.chance(0.1) ? randBody(r, hookBase) : undefined) : randBody(r, hookBase);
      const authorization = r.chance(0.85) ? `Bearer ${TEST_API_KEY}` : r.pick(badAuths);
      const contentType = r.chance(0.7) ? r.pick(types.slice(0, 6)) : r.pick(types);
      const headers: Record<string, string | undefined> = { authorization, 'content-type': contentType };
      const chunked = body !== undefined && r.chance(0.15);
      return { i, method, path, body, headers, chunked };
    });

    const started = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const q = requests[next++]!;
        const label = `#${q.i} ${q.method} ${q.path} auth=${q.headers.authorization?.slice(0, 12)} ct=${q.headers['content-type']} body=${JSON.stringify(q.body?.toString().slice(0, 120))}${q.chunked ? ' (chunked)' : ''}`;
        let res: Res;
        try {
          const send = (agent?: http.Agent) =>
            raw(q.method, q.path, {
              headers: { ...q.headers, ...(q.chunked ? { 'transfer-encoding': 'chunked' } : {}) },
              ...(q.chunked ? { chunks: [q.body!] } : { body: q.body }),
              ...(agent ? { agent } : {}),
            });
          // A keep-alive socket the server just closed (e.g. after a 413) is a client race, not an answer: retry once fresh.
          res = await send(agent).catch(() => send());
        } catch (err) {
          failures.push(`${label} → request error ${(err as Error).message}`);
          continue;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) failures.push(`${label} → ${res.status} ${res.text.slice(0, 200)}`);
        else if (res.status >= 400) {
          const ct = res.header('content-type') ?? '';
          if (!/^application\/problem\+json\b/.test(ct)) failures.push(`${label} → ${res.status} with content-type ${ct}`);
          else if (q.method !== 'HEAD') {
            const j = res.json;
            if (!j || typeof j.type !== 'string' || typeof j.title !== 'string' || j.status !== res.status || typeof j.detail !== 'string') {
              failures.push(`${label} → ${res.status} malformed problem ${res.text.slice(0, 200)}`);
            }
          }
        } else if (q.method === 'POST' && /^\/v1\/watches\/?(\?.*)?$/.test(q.path) && (res.status === 200 || res.status === 201)) {
          intended.add(res.json.id); // a registration the fuzz happened to get right
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    agent.destroy();
    const ms = Date.now() - started;
    if (process.env.FUZZ_VERBOSE) console.log(ms, JSON.stringify([...statuses].sort()));

    expect(failures, `seed ${seed}: ${failures.length} failure(s), first: ${failures.slice(0, 20).join('\n')}`).toEqual([]);
    // the fuzz really exercised the validators, not just the auth check
    for (const status of [400, 401, 404, 413, 415, 422]) expect(statuses.get(status) ?? 0, `status ${status} in ${JSON.stringify([...statuses])}`).toBeGreaterThan(0);
    expect(ms, `${total} requests took ${ms} ms`).toBeLessThan(20_000);
    await expectNothingUnintendedQueued();
  });
});

// Issue 12, finding 2: an upstream's answer is input too. Each hostile answer is stored
// as the task's snapshot; then every endpoint that shows it (or a watch of it) is called,
// and none may answer 5xx. What is stored is served as the bytes upstream sent.
describe('fuzz: hostile upstream answers', () => {
  const DEPTH = 5_000;
  const head = (id: string, status = 'completed') => `{"task_id":"${id}","status":"${status}"`;
  const answers: Array<[string, (id: string) => string | Buffer]> = [
    ['arrays nested 5,000 deep', (id) => `${head(id)},"x":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`],
    ['objects nested 5,000 deep', (id) => `${head(id)},"x":${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}}`],
    ['processing, nested 5,000 deep', (id) => `${head(id, 'processing')},"x":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`],
    ['1e999, -1e999 and a 30-digit integer', (id) => `${head(id)},"n":1e999,"m":-1e999,"big":123456789012345678901234567890,"f":0.1000000000000000055511151231257827}`],
    ['duplicate keys', (id) => `{"task_id":"${id}","status":"processing","status":"completed","k":1,"k":2,"__proto__":{"polluted":true}}`],
    ['NUL escaped in a string and a key', (id) => `${head(id)},"s":"a\\u0000b","\\u0000":"k"}`],
    ['lone surrogates escaped', (id) => `${head(id)},"s":"\\ud800","t":"\\udfff x \\ud83d"}`],
    ['invalid UTF-8 bytes (a lone surrogate, an overlong NUL)', (id) => Buffer.concat([Buffer.from(`${head(id)},"s":"`), Buffer.from([0xed, 0xa0, 0x80, 0xc0, 0x80, 0xff]), Buffer.from('"}')])],
    ['1 MiB less a byte', (id) => { const h = `${head(id)},"p":"`; return h + 'x'.repeat((1 << 20) - h.length - 3) + '"}'; }],
    ['1 MiB and a byte (refused by the poller: too large)', (id) => { const h = `${head(id)},"p":"`; return h + 'x'.repeat((1 << 20) - h.length - 1) + '"}'; }],
    ['control characters and U+2028 in strings', (id) => `${head(id)},"s":"\\u0001\\u001f  </script><!--"}`],
    ['deep nesting in the error object of a failed task', (id) => `${head(id, 'failed')},"error":{"code":"x","message":"y","type":"z","detail":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}}`],
  ];

  it('no endpoint ever answers 5xx, whatever upstream sent; the stored answer comes back byte for byte', async () => {
    const { signIn } = await import('./support/dashboard-client.js');
    const dash = await signIn(s.gateway.url!, TEST_API_KEY);
    const failures: string[] = [];
    const check = (label: string, res: { status: number; text: string }) => {
      if (res.status >= 500) failures.push(`${label} → ${res.status} ${res.text.slice(0, 200)}`);
    };
    for (const [name, make] of answers) {
      const task = s.upstream.createTask({ durationMs: 60_000 });
      const body = make(task.task_id);
      s.upstream.store.setOverride(task.task_id, { status: 200, body });
      const reg = await api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hostile`, events: ['task.completed', 'task.failed', 'task.processing', 'watch.failed'] } });
      check(`${name}: POST /v1/watches`, reg);
      expect(reg.status, reg.text).toBe(201);
      intended.add(reg.json.id);
      const id = reg.json.id as string;
      // wait until the answer was polled and stored (or, for the oversized one, refused)
      const until = Date.now() + 20_000;
      let snap = await api(`/v1/tasks/${task.task_id}`);
      while (snap.status === 404 && Date.now() < until) {
        const w = await api(`/v1/watches/${id}`);
        if (w.json?.last_poll_error) break;
        await new Promise((r) => setTimeout(r, 50));
        snap = await api(`/v1/tasks/${task.task_id}`);
      }
      check(`${name}: GET /v1/tasks/{id}`, snap);
      if (snap.status === 200) {
        // the exact bytes upstream sent (invalid UTF-8 as the replacement character it decodes to)
        const raw = await fetch(`${s.gateway.url}/v1/tasks/${task.task_id}`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
        expect(Buffer.from(await raw.arrayBuffer()).equals(Buffer.from(Buffer.from(body).toString('utf8'))), name).toBe(true);
        const one = await api(`/v1/watches/${id}`);
        check(`${name}: GET /v1/watches/{id}`, one);
        expect(one.status, name).toBe(200);
        expect(one.text, name).toContain(Buffer.from(body).toString('utf8'));
      } else {
        expect(name).toMatch(/refused/);
      }
      for (const [label, res] of [
        ['GET /v1/watches', await api('/v1/watches?limit=100')],
        [`GET /v1/watches?task_id`, await api(`/v1/watches?task_id=${task.task_id}`)],
        ['GET /v1/watches/{id}/deliveries', await api(`/v1/watches/${id}/deliveries`)],
        ['POST /v1/watches again (same watch)', await api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hostile`, events: ['task.completed', 'task.failed', 'task.processing', 'watch.failed'] } })],
        ['POST redeliver', await api(`/v1/watches/${id}/redeliver`, { method: 'POST' })],
        ['dashboard list', await dash.get('/dashboard')],
        ['dashboard watch page', await dash.get(`/dashboard/watches/${id}`)],
        ['DELETE', await api(`/v1/watches/${id}`, { method: 'DELETE' })],
        ['GET after DELETE', await api(`/v1/watches/${id}`)],
      ] as const) {
        check(`${name}: ${label}`, res);
      }
      s.upstream.store.setOverride(task.task_id, undefined);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe('raw HTTP with control characters in headers', () => {
  async function raw(request: string): Promise<string> {
    const net = await import('node:net');
    const url = new URL(s.gateway.url!);
    return new Promise((resolve, reject) => {
      const sock = net.connect(Number(url.port), url.hostname, () => sock.end(request));
      let out = '';
      sock.on('data', (c: Buffer) => (out += c.toString()));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
    });
  }

  it.each([
    ['a CR inside a header value', `X-Evil: a\rInjected: 1`],
    ['a NUL inside a header value', `X-Evil: a\u0000b`],
    ['a bare LF line folding a header', `X-Evil: a\n Injected: 1`],
  ])('%s is refused with 400 before any route runs, and nothing is queued', async (_name, header) => {
    const body = JSON.stringify({ task_id: 'ctl-chars-task', callback_url: 'http://127.0.0.1:9/x' });
    const answer = await raw(
      `POST /v1/watches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Type: application/json\r\n${header}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    const rows = await s.db.sql`select 1 from watches where task_id = 'ctl-chars-task'`;
    expect(rows).toHaveLength(0);
  });
});
