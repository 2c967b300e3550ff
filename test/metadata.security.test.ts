// Issue 12, finding 5 (metadata): it wasn't echoed verbatim — 1e999 came back null, big
// integers rounded, "__proto__" silently dropped, invalid UTF-8 accepted. Now what can't
// come back as sent is refused (422; invalid UTF-8 400) and nothing is registered; what
// is kept round-trips, "__proto__" included. The documented normalisation (docs/api.md):
// metadata is equal as a JSON value, not as text — insignificant whitespace goes, keys
// come back in Postgres jsonb order, numbers in their shortest form (1.0 → 1, 1E2 → 100).
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { numberProblem, scanJsonText } from '../src/api/json-scan.js';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY } from './support/env.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

describe('scanJsonText / numberProblem', () => {
  it.each([
    ['1e999', /out of range/],
    ['-1e999', /out of range/],
    ['1E400', /out of range/],
    ['123456789012345678901234567890', /significant digits/],
    ['9007199254740993', /beyond ±9007199254740991/],
    ['-9007199254740993', /beyond/],
    ['0.1000000000000000055511151231257827', /significant digits/],
  ])('%s is refused', (literal, why) => expect(numberProblem(literal)).toMatch(why));

  it.each(['0', '-0', '1.5', '1e308', '-1.7976931348623157e308', '9007199254740991', '1e20', '0.000001', '1234567890123456.7', '1.50000000000000000000'])(
    '%s is kept',
    (literal) => expect(numberProblem(literal)).toBeUndefined(),
  );

  it('finds duplicate keys and lossy numbers with their paths, at any depth', () => {
    expect(scanJsonText('{"a":1,"b":{"c":[1,{"d":1e999}],"c":2},"a":3}')).toEqual([
      { path: ['b', 'c', 1, 'd'], message: expect.stringMatching(/out of range/) },
      { path: ['b', 'c'], message: 'duplicate key "c"' },
      { path: ['a'], message: 'duplicate key "a"' },
    ]);
    expect(scanJsonText('{"\\u0061":1,"a":2}')).toEqual([{ path: ['a'], message: 'duplicate key "a"' }]); // same key, spelled apart
    expect(scanJsonText('{"a":"1e999 \\" , {\\"a\\":1}","b":[1,2,3]}')).toEqual([]); // inside strings is not JSON
    expect(scanJsonText(`{"x":${'['.repeat(5000)}1e999${']'.repeat(5000)}}`)).toHaveLength(1);
  });
});

describe('POST /v1/watches metadata', () => {
  const cb = () => `${s.receiver.url}/meta`;
  let n = 0;
  const post = (text: string | Buffer) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const url = new URL(`${s.gateway.url}/v1/watches`);
      const req = http.request(url, { method: 'POST', headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(body) }));
      });
      req.on('error', reject);
      req.end(text);
    });
  const registered = async (taskId: string) => (await s.db.sql`select 1 from watches where task_id = ${taskId}`).length;

  it.each([
    ['1e999', '{"n":1e999}', 'metadata.n'],
    ['-1e999 deep', '{"a":{"b":[-1e999]}}', 'metadata.a.b.0'],
    ['a 30-digit integer', '{"id":123456789012345678901234567890}', 'metadata.id'],
    ['2^53 + 1', '{"id":9007199254740993}', 'metadata.id'],
    ['35 significant digits', '{"x":0.1000000000000000055511151231257827}', 'metadata.x'],
    ['duplicate keys', '{"k":1,"k":2}', 'metadata.k'],
    ['duplicate keys, nested', '{"a":{"k":1,"k":2}}', 'metadata.a.k'],
    ['duplicate keys spelled apart', '{"k":1,"\\u006b":2}', 'metadata.k'],
  ])('%s → 422 naming the spot, nothing registered', async (_, metadata, where) => {
    const taskId = `meta-bad-${++n}`;
    const res = await post(`{"task_id":"${taskId}","callback_url":"${cb()}","metadata":${metadata}}`);
    expect(res.status, JSON.stringify(res.json)).toBe(422);
    expect(res.json.errors[0]).toMatchObject({ field: 'metadata', message: expect.stringContaining(`${where}:`) });
    expect(await registered(taskId)).toBe(0);
  });

  it('a duplicated top-level field is refused too (which one was meant?)', async () => {
    const res = await post(`{"task_id":"meta-dup-a","task_id":"meta-dup-b","callback_url":"${cb()}"}`);
    expect(res.status).toBe(422);
    expect(res.json.errors[0].field).toBe('task_id');
    expect(await registered('meta-dup-a')).toBe(0);
    expect(await registered('meta-dup-b')).toBe(0);
  });

  it.each([
    ['a lone surrogate as raw bytes', Buffer.from([0xed, 0xa0, 0x80])],
    ['an overlong NUL', Buffer.from([0xc0, 0x80])],
    ['a stray continuation byte', Buffer.from([0x80])],
    ['0xff', Buffer.from([0xff])],
  ])('invalid UTF-8 (%s) → 400, nothing registered', async (_, bytes) => {
    const taskId = `meta-utf8-${++n}`;
    const body = Buffer.concat([Buffer.from(`{"task_id":"${taskId}","callback_url":"${cb()}","metadata":{"s":"`), bytes, Buffer.from('"}}')]);
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.json.detail).toBe('the body is not valid UTF-8');
    expect(await registered(taskId)).toBe(0);
  });

  it('"__proto__" is kept, in the API and in the webhook; so are the numbers that survive', async () => {
    const task = s.upstream.createTask({ durationMs: 0 });
    const metadata = '{"__proto__":{"x":1},"constructor":"c","max":9007199254740991,"tiny":5e-324,"huge":1.7976931348623157e308,"neg":-0.5}';
    const res = await post(`{"task_id":"${task.task_id}","callback_url":"${cb()}","metadata":${metadata}}`);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const expected = JSON.parse(metadata);
    const got = await s.api(`/v1/watches/${res.json.id}`);
    expect(Object.keys(JSON.parse(got.text).metadata).sort()).toEqual(Object.keys(expected).sort());
    expect(JSON.parse(got.text).metadata).toEqual(expected);
    const [hook] = (await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === res.json.id), 20_000)).filter((r) => r.json?.watch_id === res.json.id);
    const sent = JSON.parse(hook!.body).metadata;
    expect(Object.keys(sent).sort()).toEqual(Object.keys(expected).sort());
    expect(sent).toEqual(expected);
    expect(Object.getPrototypeOf(sent)).toBe(Object.prototype); // a key, not a prototype
  });

  it('the documented normalisation: equal as JSON values (whitespace, key order, 1.0 → 1, 1E2 → 100)', async () => {
    const res = await post(`{"task_id":"meta-norm","callback_url":"${cb()}","metadata":{ "bb" : 1.0, "a":1E2, "c" : [ 1 , 2 ] }}`);
    expect(res.status).toBe(201);
    const got = await s.api(`/v1/watches/${res.json.id}`);
    expect(got.json.metadata).toEqual({ a: 100, bb: 1, c: [1, 2] });
    expect(JSON.stringify(got.json.metadata)).toBe('{"a":100,"c":[1,2],"bb":1}'); // jsonb order: shorter keys first, then bytewise
  });
});
