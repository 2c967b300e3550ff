// Issue 12, finding 4: sign-out didn't end the session — the old cookie kept working for
// its 12 h lifetime. Now sign-out revokes the session id in the database, so every copy
// of the cookie (another tab, a stolen copy, another gateway process) stops working.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { SESSION_COOKIE, SESSION_TTL_S } from '../src/dashboard/session.js';
import { createSecretBox } from '../src/tenancy/secret-box.js';
import { hashApiKey } from '../src/tenancy/keys.js';
import { dashboardClient, signIn, type DashboardClient } from './support/dashboard-client.js';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY, testEnv } from './support/env.js';

let s: Stack;
let other: Gateway; // a second API process of the same deployment
beforeAll(async () => {
  s = await startStack();
  const cfg = loadConfig(testEnv(s.db.url, s.upstream.url, { TASKHOOK_ROLE: 'api' }));
  other = await startGateway(cfg, createLogger(cfg.logLevel));
});
afterAll(async () => {
  await other?.stop();
  await s?.close();
});

const signedIn = async (c: DashboardClient) => (await c.get('/dashboard')).status === 200;
const revocations = async () => (await s.db.sql<{ n: number }[]>`select count(*)::int as n from dashboard_session_revocations`)[0]!.n;

describe('sign-out ends the session for every copy of the cookie', () => {
  it('a copied cookie is refused after the original signs out, on this process and on another', async () => {
    const a = await signIn(s.gateway.url!, TEST_API_KEY);
    const copy = a.clone();
    const elsewhere = dashboardClient(other.url!, {}, new Map(a.cookies));
    expect(await signedIn(copy)).toBe(true);
    expect(await signedIn(elsewhere)).toBe(true);

    const out = await a.post('/dashboard/sign-out', { _csrf: a.csrf! });
    expect(out.status).toBe(303);
    expect(out.location).toBe('/dashboard/sign-in');
    expect(a.cookies.has(SESSION_COOKIE)).toBe(false);

    for (const c of [copy, elsewhere]) {
      const page = await c.get('/dashboard');
      expect(page.status).toBe(303);
      expect(page.location).toBe('/dashboard/sign-in');
      expect((await c.get('/dashboard/sign-in')).status).toBe(200); // the sign-in form, not a redirect into the dashboard
    }
  });

  it('a POST with the revoked cookie and its CSRF token is refused (403) and changes nothing', async () => {
    const reg = await s.api('/v1/watches', { body: { task_id: `sess-${Date.now()}`, callback_url: `${s.receiver.url}/hook` } });
    expect(reg.status).toBe(201);
    const a = await signIn(s.gateway.url!, TEST_API_KEY);
    const copy = a.clone();
    await a.post('/dashboard/sign-out', { _csrf: a.csrf! });
    const cancel = await copy.post(`/dashboard/watches/${reg.json.id}/cancel`, { _csrf: copy.csrf! });
    expect(cancel.status).toBe(403);
    expect(cancel.text).toContain('Signed out');
    expect((await s.api(`/v1/watches/${reg.json.id}`)).json.status).toBe('watching');
  });

  it('signing out one session leaves the tenant’s other sessions alone; a new sign-in works', async () => {
    const one = await signIn(s.gateway.url!, TEST_API_KEY);
    const two = await signIn(s.gateway.url!, TEST_API_KEY);
    await one.post('/dashboard/sign-out', { _csrf: one.csrf! });
    expect(await signedIn(two)).toBe(true);
    const again = await signIn(s.gateway.url!, TEST_API_KEY);
    expect(await signedIn(again)).toBe(true);
  });

  it('signing out twice (a second tab with the same cookie) is harmless', async () => {
    const a = await signIn(s.gateway.url!, TEST_API_KEY);
    const tab = a.clone();
    expect((await a.post('/dashboard/sign-out', { _csrf: a.csrf! })).status).toBe(303);
    const second = await tab.post('/dashboard/sign-out', { _csrf: tab.csrf! });
    expect(second.status).toBe(403); // already signed out
  });

  it('a cookie sealed before session ids existed is not accepted (it could not be revoked)', async () => {
    const box = createSecretBox([Buffer.alloc(32, 7)]); // the test stack's TASKHOOK_ENCRYPTION_KEY
    const [row] = await s.db.sql<{ id: string }[]>`select id from tenants where api_key_hash = ${hashApiKey(TEST_API_KEY)}`;
    const claims = { t: row!.id, k: hashApiKey(TEST_API_KEY).slice(0, 16), c: 'csrf', e: Math.floor(Date.now() / 1000) + 3600 };
    const old = box.seal(JSON.stringify(claims), 'taskhook:dashboard-session:v1');
    const c = dashboardClient(s.gateway.url!, {}, new Map([[SESSION_COOKIE, old]]));
    expect((await c.get('/dashboard')).status).toBe(303);
    // the same claims with a session id are (the format is right; only the id was missing)
    const withId = box.seal(JSON.stringify({ ...claims, s: 'sid-test' }), 'taskhook:dashboard-session:v1');
    expect((await dashboardClient(s.gateway.url!, {}, new Map([[SESSION_COOKIE, withId]])).get('/dashboard')).status).toBe(200);
  });

  it('revocations of sessions that have expired anyway are swept at the next sign-out', async () => {
    await s.db.sql`insert into dashboard_session_revocations (session_id, expires_at) values ('long-gone', now() - interval '1 hour')`;
    const before = await revocations();
    const a = await signIn(s.gateway.url!, TEST_API_KEY);
    await a.post('/dashboard/sign-out', { _csrf: a.csrf! });
    expect(await s.db.sql`select 1 from dashboard_session_revocations where session_id = 'long-gone'`).toHaveLength(0);
    expect(await revocations()).toBe(before); // one swept, one added
    const [r] = await s.db.sql<{ left_s: number }[]>`select extract(epoch from expires_at - now())::int as left_s from dashboard_session_revocations order by expires_at desc limit 1`;
    expect(r!.left_s).toBeGreaterThan(SESSION_TTL_S - 120);
  });
});
