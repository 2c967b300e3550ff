// Issue 12, finding 1: a SaaS tenant could aim the gateway's polls (with its upstream key
// attached) at internal addresses and read the outcome back — a port scanner. Tenants'
// upstream_base_url now goes through the callback address policy: refused (422) when set,
// and again at connect time with the vetted address pinned (DNS that changes its answer
// after the PATCH still can't reach an internal address). The deployment's own
// UPSTREAM_BASE_URL stays trusted; TASKHOOK_ALLOW_PRIVATE_UPSTREAMS lets self-hosters
// with an internal upstream in.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressPolicy, parseAllowPrivate, type LookupAll } from '../src/net/address-policy.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { UpstreamClient, checkUpstreamBaseUrl } from '../src/upstream/client.js';
import { startStack, type Stack } from './support/gateway.js';

const ADMIN_TOKEN = 'admin_token_0123456789abcdef_0123456789';

type Answers = Array<{ address: string; family: 4 | 6 }>;
const v4 = (address: string): Answers => [{ address, family: 4 }];

/** A resolver the test steers: `table[host]` (a function may change its answer per call). */
function steeredLookup(table: Record<string, Answers | (() => Answers)>): LookupAll {
  return async (host) => {
    const a = table[host.toLowerCase().replace(/\.$/, '')];
    if (a === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return typeof a === 'function' ? a() : a;
  };
}

/** An "internal service": counts every request that reaches it, and what it was sent. */
async function startInternal() {
  const seen: Array<{ url: string; authorization: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ task_id: (req.url ?? '').split('/').pop(), status: 'completed', secret: 'internal' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { seen, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const withKey = (s: Stack, key: string) => (p: string, init: Parameters<Stack['api']>[1] = {}) =>
  s.api(p, { ...init, headers: { authorization: `Bearer ${key}`, ...init?.headers } });

async function newTenant(s: Stack, name: string) {
  const res = await withKey(s, ADMIN_TOKEN)('/v1/admin/tenants', { body: { name, upstream_api_key: 'sk_tenant_secret' } });
  expect(res.status, res.text).toBe(201);
  return res.json as { tenant_id: string; api_key: string };
}

const tenantRow = async (s: Stack, id: string) =>
  (await s.db.sql`select upstream_base_url, upstream_api_key_enc from tenants where id = ${id}`)[0];

describe('tenant upstream_base_url under the default policy (nothing private allowed)', () => {
  let s: Stack;
  let internal: Awaited<ReturnType<typeof startInternal>>;
  let rebindCalls = 0;
  beforeAll(async () => {
    internal = await startInternal();
    s = await startStack(
      { TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN, TASKHOOK_ALLOW_PRIVATE_UPSTREAMS: 'false' },
      {
        lookupAll: steeredLookup({
          'public.test': v4('93.184.216.34'),
          'internal.test': v4('10.0.0.1'),
          'meta.test': v4('169.254.169.254'),
          'mixed.test': [{ address: '93.184.216.34', family: 4 }, { address: '::1', family: 6 }],
          'mapped.test': [{ address: '::ffff:127.0.0.1', family: 6 }],
          localhost: v4('127.0.0.1'),
          // public when the tenant sets it, loopback when the gateway dials: rebinding
          'rebind.test': () => (++rebindCalls === 1 ? v4('93.184.216.34') : v4('127.0.0.1')),
        }),
      },
    );
  });
  afterAll(async () => {
    await s?.close();
    await internal?.close();
  });

  const port = () => internal.port;
  // The exact inputs of the report, then more spellings of each.
  const refused = () => [
    `http://127.0.0.1:${port()}/`,
    'http://169.254.169.254/',
    'http://10.0.0.1/',
    `http://[::1]:${port()}/`,
    `http://[::ffff:127.0.0.1]:${port()}/`,
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:a9fe:a9fe]/',
    `http://2130706433:${port()}/`,
    `http://0x7f000001:${port()}/`,
    `http://0177.0.0.1:${port()}/`,
    `http://127.1:${port()}/`,
    'http://2852039166/', // 169.254.169.254 in decimal
    'http://0xa9fea9fe/', // ... in hex
    'http://0.0.0.0/',
    'http://[::]/',
    'http://100.100.100.200/',
    'http://[fd00:ec2::254]/',
    'http://192.168.1.1/',
    'http://172.16.0.1/',
    'http://100.64.0.1/',
    'http://[fc00::1]/',
    'http://[fe80::1]/',
    `http://localhost:${port()}/`,
    `http://localhost.:${port()}/`,
    'http://internal.test/',
    'http://internal.test./',
    'http://INTERNAL.test/',
    'http://meta.test/',
    'http://mixed.test/',
    'http://mapped.test/',
    'http://does-not-resolve.test/',
    'https://public.test:0/',
  ];

  it('PATCH /v1/tenant refuses every non-public spelling with 422 naming upstream_base_url, and changes nothing', async () => {
    const t = await newTenant(s, 'scanner');
    const before = await tenantRow(s, t.tenant_id);
    for (const url of refused()) {
      const res = await withKey(s, t.api_key)('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: url, upstream_api_key: 'sk_other' } });
      expect(res.status, `${url}: ${res.text}`).toBe(422);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.json.errors, url).toEqual([{ field: 'upstream_base_url', message: expect.stringMatching(/^upstream_base_url /) }]);
      // nothing half-done: neither the URL nor the key given with it was written
      expect(await tenantRow(s, t.tenant_id), url).toEqual(before);
    }
    expect(internal.seen).toEqual([]);
  });

  it('POST /v1/admin/tenants refuses them too, and creates no tenant', async () => {
    const count = async () => (await s.db.sql`select count(*)::int as n from tenants`)[0]!.n;
    const n = await count();
    for (const url of refused()) {
      const res = await withKey(s, ADMIN_TOKEN)('/v1/admin/tenants', { body: { name: 'x', upstream_api_key: 'sk_x', upstream_base_url: url } });
      expect(res.status, `${url}: ${res.text}`).toBe(422);
      expect(res.json.errors[0].field).toBe('upstream_base_url');
    }
    expect(await count()).toBe(n);
  });

  it('a public upstream is accepted, and so is the deployment’s own UPSTREAM_BASE_URL (loopback in tests) with any path', async () => {
    const t = await newTenant(s, 'fine');
    const api = withKey(s, t.api_key);
    const pub = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: 'https://public.test/api/' } });
    expect(pub.status, pub.text).toBe(200);
    expect(pub.json.upstream_base_url).toBe('https://public.test/api');
    const own = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: `${s.upstream.url}/` } });
    expect(own.status, own.text).toBe(200);
    // the same origin spelled differently is the same origin
    const spelled = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: s.upstream.url.replace('http://', 'HTTP://') } });
    expect(spelled.status, spelled.text).toBe(200);
    // ... but another port of the same loopback host is not
    const other = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: `http://127.0.0.1:${port()}` } });
    expect(other.status).toBe(422);
    // and the default tenant (UPSTREAM_BASE_URL) still polls fine: a watch completes
    const task = s.upstream.createTask({ durationMs: 0 });
    const w = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
    expect(w.status, w.text).toBe(201);
    await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === w.json.id), 20_000);
  });

  it('a host that resolves public at the PATCH and to loopback at poll time is never dialled; the poll error says why', async () => {
    const t = await newTenant(s, 'rebinder');
    const api = withKey(s, t.api_key);
    const patched = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: `http://rebind.test:${port()}` } });
    expect(patched.status, patched.text).toBe(200);
    const w = await api('/v1/watches', { body: { task_id: 'task-rebind', callback_url: `${s.receiver.url}/hook` } });
    expect(w.status, w.text).toBe(201);
    const until = Date.now() + 20_000;
    let view = w.json;
    while (view.last_poll_error === null && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      view = (await api(`/v1/watches/${w.json.id}`)).json;
    }
    expect(view.last_poll_error?.message).toMatch(/ERR_UPSTREAM_ADDRESS_FORBIDDEN.*127\.0\.0\.1/);
    expect(view.status).toBe('watching');
    expect(view.task).toBeNull();
    expect(internal.seen).toEqual([]);
  });

  it.each(['.', '..'])('task_id %j is refused with 422 and nothing is registered', async (taskId) => {
    const res = await s.api('/v1/watches', { body: { task_id: taskId, callback_url: `${s.receiver.url}/hook` } });
    expect(res.status, res.text).toBe(422);
    expect(res.json.errors[0].field).toBe('task_id');
    expect(await s.db.sql`select 1 from watches where task_id = ${taskId}`).toHaveLength(0);
    expect(await s.db.sql`select 1 from upstream_tasks where task_id = ${taskId}`).toHaveLength(0);
    expect((await s.api(`/v1/watches?task_id=${encodeURIComponent(taskId)}`)).status).toBe(422);
  });

  it('ids with dots that are not path segments are still task ids', async () => {
    for (const taskId of ['...', '.a', 'a..b', 'v1.2']) {
      const res = await s.api('/v1/watches', { body: { task_id: taskId, callback_url: `${s.receiver.url}/hook` } });
      expect(res.status, `${taskId}: ${res.text}`).toBe(201);
      await s.api(`/v1/watches/${res.json.id}`, { method: 'DELETE' });
    }
  });
});

describe('TASKHOOK_ALLOW_PRIVATE_UPSTREAMS', () => {
  let s: Stack;
  let inside: SimUpstream;
  beforeAll(async () => {
    inside = await startSimUpstream({ apiKeys: ['sk_tenant_secret'] });
    s = await startStack(
      { TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN, TASKHOOK_ALLOW_PRIVATE_UPSTREAMS: '127.0.0.0/8, upstream.internal, meta.internal' },
      { lookupAll: steeredLookup({ 'upstream.internal': v4('127.0.0.1'), 'meta.internal': v4('169.254.169.254') }) },
    );
  });
  afterAll(async () => {
    await s?.close();
    await inside?.close();
  });

  it('lets a tenant use an internal upstream the operator listed; its watches complete', async () => {
    const t = await newTenant(s, 'self-hoster');
    const api = withKey(s, t.api_key);
    const patched = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: inside.url } });
    expect(patched.status, patched.text).toBe(200);
    const task = inside.createTask({ durationMs: 0 });
    const w = await api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
    expect(w.status, w.text).toBe(201);
    await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === w.json.id), 20_000);
    expect(inside.requests(task.task_id)).toBeGreaterThan(0);
    // an allowed hostname too
    const byName = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: `http://upstream.internal:${new URL(inside.url).port}` } });
    expect(byName.status, byName.text).toBe(200);
  });

  it('what is not listed is still refused: 10.0.0.1, cloud metadata (also by a listed name that resolves there), [::1]', async () => {
    const t = await newTenant(s, 'still-refused');
    for (const url of ['http://10.0.0.1/', 'http://169.254.169.254/', 'http://[::1]/', 'http://meta.internal/', 'http://meta.internal./']) {
      const res = await withKey(s, t.api_key)('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: url } });
      expect(res.status, url).toBe(422);
    }
  });
});

describe('the UpstreamClient connection path (what POST /v1/tasks and every poll go through)', () => {
  it('refuses at connect time, also for IP literals, whatever URL a caller builds; trusted origins pass', async () => {
    const internal = await startInternal();
    const trusted = await startSimUpstream({ apiKeys: ['k'] });
    const client = new UpstreamClient({
      timeoutMs: 2000,
      addresses: {
        policy: new AddressPolicy(parseAllowPrivate('false')),
        trustedBaseUrls: [trusted.url],
        lookupAll: steeredLookup({ 'evil.test': v4('127.0.0.1') }),
      },
    });
    try {
      for (const base of [`http://127.0.0.1:${internal.port}`, `http://[::ffff:127.0.0.1]:${internal.port}`, `http://evil.test:${internal.port}`, `http://2130706433:${internal.port}`]) {
        const r = await client.fetchTask(base, 'sk_secret', 'task-1');
        expect(r, base).toMatchObject({ kind: 'error', message: expect.stringMatching(/ERR_UPSTREAM_ADDRESS_FORBIDDEN/) });
      }
      expect(internal.seen).toEqual([]);
      const task = trusted.createTask({ durationMs: 0 });
      expect(await client.fetchTask(trusted.url, 'k', task.task_id)).toMatchObject({ kind: 'task' });
    } finally {
      await client.close();
      await internal.close();
      await trusted.close();
    }
  });

  it('through a forward proxy (HTTP_PROXY) every request is vetted before it is sent; the trusted origin is not', async () => {
    const internal = await startInternal();
    const dead = http.createServer(); // a "proxy" that is never reached for refused hosts
    const proxied: string[] = [];
    dead.on('connect', (req, sock) => {
      proxied.push(req.url ?? '');
      sock.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
    });
    dead.on('request', (req, res) => {
      proxied.push(req.url ?? '');
      res.statusCode = 502;
      res.end();
    });
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const trustedUrl = 'http://trusted.test:8090';
    const client = new UpstreamClient({
      timeoutMs: 2000,
      proxy: { httpProxy: `http://127.0.0.1:${(dead.address() as AddressInfo).port}` },
      addresses: {
        policy: new AddressPolicy(parseAllowPrivate('false')),
        trustedBaseUrls: [trustedUrl],
        lookupAll: steeredLookup({ 'evil.test': v4('10.0.0.1') }),
      },
    });
    try {
      for (const base of [`http://127.0.0.1:${internal.port}`, 'http://evil.test', 'http://[::1]:80', 'http://169.254.169.254']) {
        const r = await client.fetchTask(base, 'sk_secret', 'task-1');
        expect(r, base).toMatchObject({ kind: 'error', message: expect.stringMatching(/ERR_UPSTREAM_ADDRESS_FORBIDDEN/) });
      }
      expect(proxied).toEqual([]);
      expect(internal.seen).toEqual([]);
      // the trusted origin is handed to the proxy as is (which answers 502 here)
      expect(await client.fetchTask(trustedUrl, 'k', 'task-1')).toMatchObject({ kind: 'error' });
      expect(proxied.length).toBeGreaterThan(0);
    } finally {
      await client.destroy();
      await internal.close();
      dead.closeAllConnections();
      dead.close();
    }
  });

  it('never sends a dot-segment task id (it would rewrite the path)', async () => {
    const trusted = await startSimUpstream({ apiKeys: ['k'] });
    const client = new UpstreamClient({ timeoutMs: 2000 });
    try {
      for (const id of ['.', '..', '%2e%2e', '%2E.']) {
        expect(await client.fetchTask(trusted.url, 'k', id), id).toMatchObject({ kind: 'error', message: expect.stringContaining('path segment') });
      }
      expect(trusted.requests()).toBe(0);
    } finally {
      await client.close();
      await trusted.close();
    }
  });

  it('checkUpstreamBaseUrl: the check PATCH uses, exported for other callers', async () => {
    const rules = { policy: new AddressPolicy(parseAllowPrivate('false')), trustedBaseUrls: ['http://127.0.0.1:8090'], lookupAll: steeredLookup({}) };
    expect(await checkUpstreamBaseUrl('http://127.0.0.1:8090/x', rules)).toMatchObject({ ok: true });
    expect(await checkUpstreamBaseUrl('http://127.0.0.1:8091/', rules)).toMatchObject({ ok: false, reason: expect.stringContaining('loopback') });
    expect(await checkUpstreamBaseUrl('http://[::ffff:7f00:1]:8090/', rules)).toMatchObject({ ok: false });
  });
});
