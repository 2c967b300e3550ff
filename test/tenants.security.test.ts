// SaaS tenants (CONTRACT §3): the admin API behind TASKHOOK_ADMIN_TOKEN, tenant
// self-service (/v1/tenant), signing-secret rotation, and what is kept at rest:
// gateway keys only as SHA-256, upstream keys sealed to their tenant, re-sealable
// under a new encryption key by `taskhook rotate-encryption-key`.
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { TenantDirectory } from '../src/tenancy/directory.js';
import { rewrapAll } from '../src/tenancy/rewrap.js';
import { createSecretBox, keyId } from '../src/tenancy/secret-box.js';
import { startStack, type Stack } from './support/gateway.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, testEnv } from './support/env.js';
import type { CreatedTenant } from '../src/tenancy/store.js';

const ADMIN_TOKEN = 'admin_token_0123456789abcdef_0123456789';
const KEY_A = Buffer.alloc(32, 7); // the test stack's TASKHOOK_ENCRYPTION_KEY
const KEY_B = Buffer.alloc(32, 9);
const ROOT = path.resolve(import.meta.dirname, '..');

type Api = Stack['api'];
type Init = Parameters<Api>[1];

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');
const withKey = (s: Stack, key: string) => (p: string, init: Init = {}) =>
  s.api(p, { ...init, headers: { authorization: `Bearer ${key}`, ...init?.headers } });

function expectProblem(res: { status: number; headers: Headers; json: any; text: string }, status: number) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.json).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
}

type Created = CreatedTenant;

async function createTenant(s: Stack, body: Record<string, unknown>): Promise<Created> {
  const res = await withKey(s, ADMIN_TOKEN)('/v1/admin/tenants', { body });
  expect(res.status, res.text).toBe(201);
  return res.json;
}

/** Registers a watch on a fresh sim task for `key`'s tenant and waits for its first webhook at `receiver`. */
async function webhookFor(s: Stack, key: string, receiver: Receiver, task = s.upstream.createTask({ durationMs: 200 })) {
  const res = await withKey(s, key)('/v1/watches', { body: { task_id: task.task_id, callback_url: `${receiver.url}/hook` } });
  expect(res.status, res.text).toBe(201);
  const [hook] = (await receiver.waitFor((all) => all.some((r) => r.json?.watch_id === res.json.id), 20_000)).filter(
    (r) => r.json?.watch_id === res.json.id,
  );
  return hook!;
}

const verifies = (secret: string, hook: { body: string; headers: Record<string, unknown> }) => {
  try {
    new Webhook(secret).verify(hook.body, hook.headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
};

describe('without TASKHOOK_ADMIN_TOKEN', () => {
  let off: Stack;
  beforeAll(async () => {
    off = await startStack();
  });
  afterAll(async () => {
    await off?.close();
  });

  it('the admin API answers 404 on every route, whatever the credentials', async () => {
    for (const [method, p] of [
      ['POST', '/v1/admin/tenants'],
      ['GET', '/v1/admin/tenants'],
      ['POST', '/v1/admin/tenants/ten_default/disable'],
      ['GET', '/v1/admin'],
    ] as const) {
      for (const authorization of [undefined, `Bearer ${ADMIN_TOKEN}`, `Bearer ${TEST_API_KEY}`]) {
        const res = await off.api(p, { method, headers: authorization ? { authorization } : { authorization: '' }, body: method === 'POST' ? { name: 'x', upstream_api_key: 'sk_test' } : undefined });
        expectProblem(res, 404);
      }
    }
    expect((await off.db.sql`select count(*)::int as n from tenants`)[0]!.n).toBe(1);
  });
});

describe('with TASKHOOK_ADMIN_TOKEN', () => {
  let s: Stack;
  const admin = (p: string, init?: Init) => withKey(s, ADMIN_TOKEN)(p, init);
  beforeAll(async () => {
    s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('401 for a missing or wrong admin token, and a gateway key is not one; the admin token is not a gateway key', async () => {
    for (const authorization of ['', `Bearer ${ADMIN_TOKEN}x`, `Bearer ${ADMIN_TOKEN.slice(0, -1)}`, `Bearer ${TEST_API_KEY}`, ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`]) {
      const res = await s.api('/v1/admin/tenants', { headers: { authorization } });
      expectProblem(res, 401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    expectProblem(await admin('/v1/watches'), 401);
    expectProblem(await admin('/v1/tenant'), 401);
    // unknown admin routes are 404 behind the token, not a fall-through to the tenant API
    expectProblem(await admin('/v1/admin/nope'), 404);
    expectProblem(await s.api('/v1/admin/nope', { headers: { authorization: '' } }), 401);
  });

  it('422 for each invalid field when creating a tenant, and nothing is created', async () => {
    const ok = { name: 'acme', upstream_api_key: 'sk_test' };
    for (const body of [
      {},
      { upstream_api_key: 'sk_test' },
      { name: 'acme' },
      { ...ok, name: '' },
      { ...ok, name: '   ' },
      { ...ok, name: 'x'.repeat(101) },
      { ...ok, name: 'a\u0000b' },
      { ...ok, name: 42 },
      { ...ok, upstream_api_key: '' },
      { ...ok, upstream_api_key: 'sk test' },
      { ...ok, upstream_api_key: 'k'.repeat(513) },
      { ...ok, upstream_api_key: 'sk_\u00e9' },
      { ...ok, upstream_base_url: 'ftp://upstream.example' },
      { ...ok, upstream_base_url: 'not a url' },
      { ...ok, upstream_base_url: 'https://u:p@upstream.example' },
      { ...ok, upstream_base_url: 'https://upstream.example/?x=1' },
      { ...ok, upstream_base_url: null },
      { ...ok, api_key: 'thk_chosen_by_me_0123456789' },
    ]) {
      const res = await admin('/v1/admin/tenants', { body });
      expectProblem(res, 422);
    }
    expectProblem(await admin('/v1/admin/tenants', { body: '{"name":' }), 400);
    expectProblem(await admin('/v1/admin/tenants', { body: JSON.stringify(ok), headers: { 'content-type': 'text/plain' } }), 415);
    expect((await s.db.sql`select count(*)::int as n from tenants`)[0]!.n).toBe(1);
    // the limits are inclusive
    const edge = await createTenant(s, { name: 'n'.repeat(100), upstream_api_key: 'k'.repeat(512) });
    expect(edge.name).toBe('n'.repeat(100));
  });

  it('creates a tenant whose key works on /v1/watches; its key and secret are shown once, never listed', async () => {
    const t = await createTenant(s, { name: '  Acme Corp ', upstream_api_key: 'sk_test', upstream_base_url: `${s.upstream.url}/` });
    expect(t).toEqual({
      tenant_id: expect.stringMatching(/^ten_[0-9a-z]{26}$/),
      name: 'Acme Corp',
      api_key: expect.stringMatching(/^thk_[A-Za-z0-9_-]{32}$/),
      signing_secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
      upstream_base_url: s.upstream.url,
      created_at: expect.any(String),
    });
    const acme = withKey(s, t.api_key);
    const list = await acme('/v1/watches');
    expect(list.status, list.text).toBe(200);
    expect(list.json.data).toEqual([]);
    const reg = await acme('/v1/watches', { body: { task_id: 'acme-1', callback_url: `${s.receiver.url}/acme` } });
    expect(reg.status, reg.text).toBe(201);
    // …and the watch is the new tenant's, not the default tenant's
    expectProblem(await s.api(`/v1/watches/${reg.json.id}`), 404);
    await acme(`/v1/watches/${reg.json.id}`, { method: 'DELETE' });

    const all = await admin('/v1/admin/tenants');
    expect(all.status).toBe(200);
    const row = all.json.data.find((x: any) => x.tenant_id === t.tenant_id);
    expect(row).toEqual({ tenant_id: t.tenant_id, name: 'Acme Corp', upstream_base_url: s.upstream.url, created_at: t.created_at, disabled_at: null });
    expect(all.json.data.map((x: any) => x.tenant_id)).toContain('ten_default');
    for (const x of all.json.data) expect(Object.keys(x).sort()).toEqual(['created_at', 'disabled_at', 'name', 'tenant_id', 'upstream_base_url']);
    for (const secret of [t.api_key, t.signing_secret, 'sk_test']) expect(all.text).not.toContain(secret);

    const me = await acme('/v1/tenant');
    expect(me.status, me.text).toBe(200);
    expect(me.json).toEqual({
      tenant_id: t.tenant_id,
      name: 'Acme Corp',
      upstream_base_url: s.upstream.url,
      has_upstream_api_key: true,
      signing_secret_rotated_at: null,
      previous_secret_expires_at: null,
    });
    for (const secret of [t.api_key, t.signing_secret, 'sk_test']) expect(me.text).not.toContain(secret);
    // the default tenant sees itself, not Acme
    expect((await s.api('/v1/tenant')).json).toMatchObject({ tenant_id: 'ten_default', name: 'default', has_upstream_api_key: true });
  });

  it('no table holds a plaintext gateway key or anything of it but its SHA-256, nor a plaintext upstream key', async () => {
    const upstreamKey = `sk_live_${randomBytes(16).toString('hex')}`;
    const t = await createTenant(s, { name: 'at-rest', upstream_api_key: upstreamKey });
    // exercise the paths that write: a watch, a rotation, a re-keyed upstream
    const secondUpstreamKey = `sk_live_${randomBytes(16).toString('hex')}`;
    const tenant = withKey(s, t.api_key);
    expect((await tenant('/v1/watches', { body: { task_id: 'at-rest', callback_url: `${s.receiver.url}/r` } })).status).toBe(201);
    expect((await tenant('/v1/tenant/signing-secret/rotate', { method: 'POST' })).status).toBe(200);
    expect((await tenant('/v1/tenant', { method: 'PATCH', body: { upstream_api_key: secondUpstreamKey } })).status).toBe(200);

    const tables = await s.db.sql<{ schema: string; name: string }[]>`
      select table_schema as schema, table_name as name from information_schema.tables
       where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`;
    expect(tables.map((x) => x.name)).toEqual(expect.arrayContaining(['tenants', 'watches', 'deliveries', 'upstream_tasks']));
    let dump = '';
    for (const { schema, name } of tables) {
      const rows = await s.db.sql.unsafe(`select t::text as row from "${schema}"."${name}" t`);
      dump += rows.map((r) => r.row).join('\n') + '\n';
    }
    expect(dump).toContain(t.tenant_id);

    for (const apiKey of [t.api_key, TEST_API_KEY]) {
      const body = apiKey.replace(/^thk_/, '');
      for (const form of [apiKey, body, Buffer.from(apiKey).toString('base64'), Buffer.from(apiKey).toString('hex'), createHash('sha256').update(apiKey).digest('base64')]) {
        expect(dump).not.toContain(form);
      }
      const [row] = await s.db.sql`select count(*)::int as n from tenants where api_key_hash = ${sha256hex(apiKey)}`;
      expect(row!.n).toBe(1);
    }
    for (const key of [upstreamKey, secondUpstreamKey]) {
      for (const form of [key, key.replace(/^sk_live_/, ''), Buffer.from(key).toString('base64'), Buffer.from(key).toString('hex')]) {
        expect(dump).not.toContain(form);
      }
    }
    const [enc] = await s.db.sql<{ e: string }[]>`select upstream_api_key_enc as e from tenants where id = ${t.tenant_id}`;
    expect(enc!.e).toMatch(new RegExp(`^${keyId(KEY_A)}:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$`));
  });

  it('a ciphertext copied from tenant A’s row onto tenant B’s fails to open instead of yielding A’s key', async () => {
    const a = await createTenant(s, { name: 'a', upstream_api_key: 'sk_test' });
    const b = await createTenant(s, { name: 'b', upstream_api_key: 'sk_b_not_valid' });
    await s.db.sql`update tenants set upstream_api_key_enc = (select upstream_api_key_enc from tenants where id = ${a.tenant_id})
                    where id = ${b.tenant_id}`;

    // the directory the poller uses: B's key reads as an error, A's still opens
    const directory = new TenantDirectory(s.db.sql, createSecretBox([KEY_A]), { upstreamBaseUrl: s.upstream.url });
    const tb = await directory.get(b.tenant_id);
    expect(tb).toBeDefined();
    expect(() => tb!.upstreamApiKey).toThrow(/failed authentication/);
    expect((await directory.get(a.tenant_id))!.upstreamApiKey).toBe('sk_test');

    // the running gateway: B still authenticates and signs, but its tasks are never polled with A's key
    const bApi = withKey(s, b.api_key);
    expect((await bApi('/v1/tenant')).status).toBe(200);
    const task = s.upstream.createTask({ durationMs: 100 });
    const w = await bApi('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/b` } });
    expect(w.status, w.text).toBe(201);
    await new Promise((r) => setTimeout(r, 1500));
    expect(s.upstream.requests(task.task_id)).toBe(0);
    // (claimed and attempted, but the poll failed before any request: the key wouldn't open)
    expect((await bApi(`/v1/watches/${w.json.id}`)).json.status).toBe('watching');

    // B repairs its key itself
    const fixed = await bApi('/v1/tenant', { method: 'PATCH', body: { upstream_api_key: 'sk_b_new' } });
    expect(fixed.status, fixed.text).toBe(200);
    const fresh = new TenantDirectory(s.db.sql, createSecretBox([KEY_A]), { upstreamBaseUrl: s.upstream.url });
    expect((await fresh.get(b.tenant_id))!.upstreamApiKey).toBe('sk_b_new');
  });

  it('disabling a tenant: its key gets 401 at once, its tasks stop being polled, the admin sees when', async () => {
    const t = await createTenant(s, { name: 'to-disable', upstream_api_key: 'sk_test' });
    const api = withKey(s, t.api_key);
    const task = s.upstream.createTask({ durationMs: 120_000 });
    expect((await api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/d` } })).status).toBe(201);
    const until = Date.now() + 5000;
    while (s.upstream.requests(task.task_id) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(s.upstream.requests(task.task_id)).toBeGreaterThan(0);

    const res = await admin(`/v1/admin/tenants/${t.tenant_id}/disable`, { method: 'POST' });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ tenant_id: t.tenant_id, name: 'to-disable', disabled_at: expect.any(String) });
    expect(res.text).not.toContain(t.api_key);
    for (const [method, p] of [['GET', '/v1/watches'], ['GET', '/v1/tenant'], ['PATCH', '/v1/tenant'], ['POST', '/v1/tenant/signing-secret/rotate']] as const) {
      expectProblem(await api(p, { method, body: method === 'PATCH' ? { upstream_api_key: 'sk_x' } : undefined }), 401);
    }
    // disabling again keeps the first time; the list shows it
    const again = await admin(`/v1/admin/tenants/${t.tenant_id}/disable`, { method: 'POST' });
    expect(again.json.disabled_at).toBe(res.json.disabled_at);
    const listed = (await admin('/v1/admin/tenants')).json.data.find((x: any) => x.tenant_id === t.tenant_id);
    expect(listed.disabled_at).toBe(res.json.disabled_at);

    await new Promise((r) => setTimeout(r, 400)); // a poll already in flight may land
    const polls = s.upstream.requests(task.task_id);
    await new Promise((r) => setTimeout(r, 1500));
    expect(s.upstream.requests(task.task_id)).toBe(polls);

    expectProblem(await admin('/v1/admin/tenants/ten_00000000000000000000000000/disable', { method: 'POST' }), 404);
    expectProblem(await admin('/v1/admin/tenants/not-a-tenant/disable', { method: 'POST' }), 404);
  });

  it('PATCH /v1/tenant: a wrong upstream key fails watches as upstream_unauthorized; after PATCH a new watch completes', async () => {
    const t = await createTenant(s, { name: 'patchy', upstream_api_key: 'sk_wrong' });
    const api = withKey(s, t.api_key);
    const receiver = await startReceiver([t.signing_secret]);
    try {
      const failed = await webhookFor(s, t.api_key, receiver);
      expect(failed.verified, failed.verifyError).toBe(true);
      expect(failed.json).toMatchObject({ type: 'watch.failed', data: { status: 'failed', error: { code: 'upstream_unauthorized', type: 'gateway' } } });

      for (const body of [{}, { foo: 1 }, { upstream_api_key: 'a b' }, { upstream_api_key: '' }, { upstream_base_url: 'ftp://x' }, { upstream_base_url: 'http://x/#f' }, { upstream_api_key: null }]) {
        expectProblem(await api('/v1/tenant', { method: 'PATCH', body }), 422);
      }
      expectProblem(await api('/v1/tenant', { method: 'PATCH', body: '[]' }), 400);

      // a loopback upstream is refused (test/upstream-address.security.test.ts has every spelling)
      expectProblem(await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: 'http://127.0.0.1:9/base/' } }), 422);
      const moved = await api('/v1/tenant', { method: 'PATCH', body: { upstream_base_url: `${s.upstream.url}/base/` } });
      expect(moved.status, moved.text).toBe(200);
      expect(moved.json.upstream_base_url).toBe(`${s.upstream.url}/base`);
      const fixed = await api('/v1/tenant', { method: 'PATCH', body: { upstream_api_key: 'sk_test', upstream_base_url: null } });
      expect(fixed.status, fixed.text).toBe(200);
      expect(fixed.json).toMatchObject({ tenant_id: t.tenant_id, upstream_base_url: s.upstream.url, has_upstream_api_key: true });
      expect(fixed.text).not.toContain('sk_test');
      const [row] = await s.db.sql`select upstream_base_url from tenants where id = ${t.tenant_id}`;
      expect(row!.upstream_base_url).toBeNull();

      const done = await webhookFor(s, t.api_key, receiver);
      expect(done.verified, done.verifyError).toBe(true);
      expect(done.json.type).toBe('task.completed');
    } finally {
      await receiver.close();
    }
  });

  it('rotation: both secrets sign for 24 h, each verifies alone; a second rotation drops the oldest; after the window only the new one', async () => {
    const t = await createTenant(s, { name: 'rotator', upstream_api_key: 'sk_test' });
    const api = withKey(s, t.api_key);
    const receiver = await startReceiver([]);
    try {
      const s0 = t.signing_secret;
      const before = await webhookFor(s, t.api_key, receiver);
      expect(String(before.headers['webhook-signature']).split(' ')).toHaveLength(1);
      expect(verifies(s0, before)).toBe(true);

      const started = Date.now();
      const r1 = await api('/v1/tenant/signing-secret/rotate', { method: 'POST' });
      expect(r1.status, r1.text).toBe(200);
      expect(Object.keys(r1.json).sort()).toEqual(['previous_secret_expires_at', 'signing_secret']);
      const s1: string = r1.json.signing_secret;
      expect(s1).toMatch(/^whsec_/);
      expect(s1).not.toBe(s0);
      const expires = Date.parse(r1.json.previous_secret_expires_at);
      expect(expires).toBeGreaterThanOrEqual(started + 24 * 3600_000 - 1000);
      expect(expires).toBeLessThanOrEqual(Date.now() + 24 * 3600_000 + 1000);
      const view = (await api('/v1/tenant')).json;
      expect(view.previous_secret_expires_at).toBe(r1.json.previous_secret_expires_at);
      expect(Date.parse(view.signing_secret_rotated_at)).toBe(expires - 24 * 3600_000);
      expect(JSON.stringify(view)).not.toContain(s1.slice(6));

      const during = await webhookFor(s, t.api_key, receiver);
      expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
      expect(verifies(s0, during)).toBe(true);
      expect(verifies(s1, during)).toBe(true);
      expect(verifies(`whsec_${randomBytes(32).toString('base64')}`, during)).toBe(false);

      // rotating again inside the window: the one rotated out replaces the previous
      const r2 = await api('/v1/tenant/signing-secret/rotate', { method: 'POST' });
      const s2: string = r2.json.signing_secret;
      const twice = await webhookFor(s, t.api_key, receiver);
      expect(String(twice.headers['webhook-signature']).split(' ')).toHaveLength(2);
      expect(verifies(s2, twice)).toBe(true);
      expect(verifies(s1, twice)).toBe(true);
      expect(verifies(s0, twice)).toBe(false);

      // the 24 h pass; other processes' caches (5 s) catch up
      await s.db.sql`update tenants set previous_secret_expires_at = now() - interval '1 second' where id = ${t.tenant_id}`;
      await new Promise((r) => setTimeout(r, 5200));
      const after = await webhookFor(s, t.api_key, receiver);
      expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
      expect(verifies(s2, after)).toBe(true);
      expect(verifies(s1, after)).toBe(false);
      expect((await api('/v1/tenant')).json.previous_secret_expires_at).toBeNull();

      // other tenants are untouched: the default tenant's webhooks still verify with its own secret only
      const dflt = await webhookFor(s, TEST_API_KEY, s.receiver);
      expect(dflt.verified, dflt.verifyError).toBe(true);
      expect(String(dflt.headers['webhook-signature']).split(' ')).toHaveLength(1);
    } finally {
      await receiver.close();
    }
  });
});

describe('rotate-encryption-key', () => {
  let s: Stack;
  beforeAll(async () => {
    // API only: the key-B gateway started below does the polling
    s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN, TASKHOOK_ROLE: 'api' });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('re-seals every row under the new first key, skips rows already done, and a gateway holding only the new key polls with them', async () => {
    const created = [
      await createTenant(s, { name: 'r1', upstream_api_key: 'sk_test' }),
      await createTenant(s, { name: 'r2', upstream_api_key: 'sk_r2' }),
      await createTenant(s, { name: 'r3', upstream_api_key: 'sk_r3' }),
    ];
    const plain: Record<string, string> = { ten_default: 'sk_test', [created[0]!.tenant_id]: 'sk_test', [created[1]!.tenant_id]: 'sk_r2', [created[2]!.tenant_id]: 'sk_r3' };
    const rows = () => s.db.sql<{ id: string; enc: string }[]>`select id, upstream_api_key_enc as enc from tenants order by id`;
    for (const r of await rows()) expect(r.enc.split(':')[0]).toBe(keyId(KEY_A));

    const box = createSecretBox([KEY_B, KEY_A]);
    expect(box.currentKeyId).toBe(keyId(KEY_B));
    // an earlier run that was interrupted after one row
    const first = created[1]!.tenant_id;
    await s.db.sql`update tenants set upstream_api_key_enc = ${box.seal('sk_r2', first)} where id = ${first}`;

    expect(await rewrapAll(s.db.sql, box)).toEqual({ rewrapped: 3, skipped: 1, failed: [] });
    const onlyB = createSecretBox([KEY_B]);
    for (const r of await rows()) {
      expect(r.enc.split(':')[0]).toBe(keyId(KEY_B));
      expect(onlyB.open(r.enc, r.id)).toBe(plain[r.id]);
    }
    expect(await rewrapAll(s.db.sql, box)).toEqual({ rewrapped: 0, skipped: 4, failed: [] });

    // a row no configured key opens (here: sealed for another tenant) is reported and left as it was
    const bad = createSecretBox([KEY_A]).seal('sk_x', 'ten_elsewhere');
    await s.db.sql`update tenants set upstream_api_key_enc = ${bad} where id = ${created[2]!.tenant_id}`;
    expect(await rewrapAll(s.db.sql, box)).toEqual({
      rewrapped: 0,
      skipped: 3,
      failed: [{ tenant_id: created[2]!.tenant_id, error: expect.stringMatching(/failed authentication/) }],
    });
    expect((await rows()).find((r) => r.id === created[2]!.tenant_id)!.enc).toBe(bad);
    await s.db.sql`update tenants set upstream_api_key_enc = ${onlyB.seal('sk_r3', created[2]!.tenant_id)} where id = ${created[2]!.tenant_id}`;

    // the command, with a key C put before B
    const keyC = Buffer.alloc(32, 13);
    const env = testEnv(s.db.url, s.upstream.url, { TASKHOOK_ENCRYPTION_KEY: `${keyC.toString('base64')},${KEY_B.toString('base64')}` });
    const run = () =>
      promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/taskhook.js'), 'rotate-encryption-key'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
    expect((await run()).stdout).toBe(`4 upstream key(s) re-wrapped with key ${keyId(keyC)}, 0 already current\n`);
    expect((await run()).stdout).toBe(`0 upstream key(s) re-wrapped with key ${keyId(keyC)}, 4 already current\n`);

    // a gateway that holds only C (A and B retired) polls with the re-sealed keys
    const cfg = loadConfig(testEnv(s.db.url, s.upstream.url, { TASKHOOK_ENCRYPTION_KEY: keyC.toString('base64') }));
    const gw = await startGateway(cfg, createLogger('silent'), { idleMs: 50 });
    const receiver = await startReceiver([created[0]!.signing_secret]);
    try {
      const task = s.upstream.createTask({ durationMs: 200 });
      const res = await fetch(`${gw.url}/v1/watches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${created[0]!.api_key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ task_id: task.task_id, callback_url: `${receiver.url}/c` }),
      });
      expect(res.status).toBe(201);
      const [hook] = await receiver.waitFor((all) => all.length > 0, 20_000);
      expect(hook!.verified, hook!.verifyError).toBe(true);
      expect(hook!.json.type).toBe('task.completed');
    } finally {
      await receiver.close();
      await gw.stop();
    }
  });
});
