// The dashboard (/dashboard), end to end: a real gateway, upstream and receiver; a real
// headless Chromium (playwright-core, Debian's /usr/bin/chromium: support/browser.ts) signs in, finds a
// delivered watch, filters, opens it and redelivers — with a screenshot of each step in
// test-results/. Without the browser: the session cookie's flags, CSRF refusals,
// wrong keys, tampered cookies and another tenant's watches (404, never shown).
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY } from './support/env.js';
import { waitForStatus } from './support/wait.js';
import { SKIP_BROWSER_TESTS, useChromium } from './support/browser.js';

const ADMIN_TOKEN = 'admin_token_0123456789abcdef_0123456789';
const ROOT = path.resolve(import.meta.dirname, '..');
const XSS = '</pre><script>alert(1)</script><img src=x onerror=alert(2)>';
const SHOTS = path.join(ROOT, 'test-results');

/** the one browser API the test evaluates in the page (tsconfig has no DOM lib) */
interface Window {
  getComputedStyle(el: unknown): { backgroundColor: string };
}

let s: Stack;
let base: string;
let delivered: { id: string; task_id: string };
let watching: { id: string; task_id: string };
let other: { key: string; tenantId: string; watchId: string };

/** A cookie jar over fetch, redirects not followed, so every Set-Cookie and Location is visible. */
class Client {
  readonly cookies = new Map<string, string>();
  setCookies: string[] = [];
  constructor(private readonly origin = base) {}

  async req(method: string, p: string, opts: { form?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (opts.form) {
      body = new URLSearchParams(opts.form).toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
      headers.origin ??= this.origin;
    }
    const res = await fetch(`${base}${p}`, { method, headers, body, redirect: 'manual' });
    this.setCookies = res.headers.getSetCookie();
    for (const line of this.setCookies) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const gone = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || attrs.some((a) => /expires=Thu, 01 Jan 1970/i.test(a));
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(eq + 1).trim());
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  csrfIn(html: string): string {
    const m = /name="_csrf" value="([^"]+)"/.exec(html);
    if (!m) throw new Error(`no CSRF field in ${html.slice(0, 300)}`);
    return m[1]!;
  }

  async signIn(key: string) {
    const page = await this.req('GET', '/dashboard/sign-in');
    expect(page.status).toBe(200);
    const res = await this.req('POST', '/dashboard/sign-in', { form: { _csrf: this.csrfIn(page.text), api_key: key } });
    expect(res.status, res.text.slice(0, 500)).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard');
    return res;
  }

  /** the CSRF token of the signed-in session, as a page's forms carry it */
  async csrf(): Promise<string> {
    const page = await this.req('GET', '/dashboard');
    expect(page.status).toBe(200);
    return this.csrfIn(page.text);
  }
}

async function register(key: string, taskId: string, metadata: Record<string, unknown> = {}) {
  const res = await s.api('/v1/watches', {
    body: { task_id: taskId, callback_url: `${s.receiver.url}/hook`, metadata },
    headers: { authorization: `Bearer ${key}` },
  });
  expect(res.status, res.text).toBe(201);
  return res.json as { id: string; task_id: string };
}

async function attemptsOf(id: string, key = TEST_API_KEY): Promise<number> {
  const res = await s.api(`/v1/watches/${id}/deliveries`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status, res.text).toBe(200);
  return res.json.data.length;
}

beforeAll(async () => {
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN });
  base = s.gateway.url!;
  delivered = await register(TEST_API_KEY, s.upstream.createTask({ capability: 'image', durationMs: 150 }).task_id, { order: 42 });
  watching = await register(TEST_API_KEY, s.upstream.createTask({ durationMs: 10 * 60_000 }).task_id, { note: XSS });
  const t = await s.api('/v1/admin/tenants', {
    body: { name: 'Other Co', upstream_api_key: 'sk_test', upstream_base_url: s.upstream.url },
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(t.status, t.text).toBe(201);
  const theirs = await register(t.json.api_key, s.upstream.createTask({ durationMs: 100 }).task_id);
  other = { key: t.json.api_key, tenantId: t.json.tenant_id, watchId: theirs.id };
  await waitForStatus(s, delivered.id, 'delivered');
});

afterAll(async () => {
  await s?.close();
});

describe('dashboard over HTTP', () => {
  it('sends signed-out visitors to the sign-in page, whose form is CSRF-protected too', async () => {
    const c = new Client();
    for (const p of ['/dashboard', `/dashboard/watches/${delivered.id}`]) {
      const res = await c.req('GET', p);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/dashboard/sign-in');
    }
    const page = await c.req('GET', '/dashboard/sign-in');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*frame-ancestors 'none'/);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const preCookie = c.setCookies.find((l) => l.startsWith('taskhook_sign_in='));
    expect(preCookie).toMatch(/HttpOnly/i);
    expect(preCookie).toMatch(/SameSite=Strict/i);
    // the right key, but without the form's token: refused
    const bare = await c.req('POST', '/dashboard/sign-in', { form: { api_key: TEST_API_KEY } });
    expect(bare.status).toBe(403);
    expect(c.cookies.has('taskhook_session')).toBe(false);
  });

  it('refuses a wrong key with a message and no session', async () => {
    const c = new Client();
    const page = await c.req('GET', '/dashboard/sign-in');
    for (const key of ['thk_wrong_key_0123456789abcdef', `${TEST_API_KEY}x`, 'x'.repeat(600), '<script>alert(1)</script>']) {
      const res = await c.req('POST', '/dashboard/sign-in', { form: { _csrf: c.csrfIn(page.text), api_key: key } });
      expect(res.status).toBe(401);
      expect(res.text).toContain('That gateway key is not valid');
      expect(res.text).not.toContain('<script>alert');
      expect(c.cookies.has('taskhook_session')).toBe(false);
    }
  });

  it('signs in with a sealed HttpOnly SameSite=Strict cookie that never holds the key', async () => {
    const c = new Client();
    await c.signIn(TEST_API_KEY);
    const line = c.setCookies.find((l) => l.startsWith('taskhook_session='))!;
    expect(line).toBeDefined();
    expect(line).toMatch(/; HttpOnly/i);
    expect(line).toMatch(/; SameSite=Strict/i);
    expect(line).toMatch(/; Path=\/dashboard/i);
    expect(line).toMatch(/; Max-Age=43200/i);
    expect(line).not.toMatch(/; Secure/i); // plain http here
    const value = decodeURIComponent(c.cookies.get('taskhook_session')!);
    expect(value).not.toContain(TEST_API_KEY);
    expect(value).not.toContain('ten_default'); // sealed, not just signed
    expect((await c.req('GET', '/dashboard')).status).toBe(200);

    // behind a TLS-terminating proxy the cookie is Secure
    const tls = new Client();
    const page = await tls.req('GET', '/dashboard/sign-in', { headers: { 'x-forwarded-proto': 'https' } });
    await tls.req('POST', '/dashboard/sign-in', { form: { _csrf: tls.csrfIn(page.text), api_key: TEST_API_KEY }, headers: { 'x-forwarded-proto': 'https' } });
    expect(tls.setCookies.find((l) => l.startsWith('taskhook_session='))).toMatch(/; Secure/i);
  });

  it('rejects a tampered or foreign session cookie', async () => {
    const c = new Client();
    await c.signIn(TEST_API_KEY);
    const value = decodeURIComponent(c.cookies.get('taskhook_session')!);
    const parts = value.split(':');
    const data = Buffer.from(parts[3]!, 'base64');
    data[0]! ^= 1;
    parts[3] = data.toString('base64');
    for (const forged of [parts.join(':'), 'ten_default', value.slice(0, -4), '']) {
      c.cookies.set('taskhook_session', encodeURIComponent(forged));
      const res = await c.req('GET', '/dashboard');
      expect(res.status, forged).toBe(303);
      expect(res.headers.get('location')).toBe('/dashboard/sign-in');
    }
  });

  it('refuses every POST without the session’s CSRF token or from another origin (403), changing nothing', async () => {
    const c = new Client();
    await c.signIn(TEST_API_KEY);
    const token = await c.csrf();
    const before = await attemptsOf(delivered.id);
    const p = `/dashboard/watches/${delivered.id}/redeliver`;
    const refused = [
      await c.req('POST', p, { form: {} }),
      await c.req('POST', p, { form: { _csrf: 'not-the-token' } }),
      await c.req('POST', p, { form: { _csrf: `${token}x` } }),
      await c.req('POST', p, { form: { _csrf: token }, headers: { origin: 'https://evil.example' } }),
      await c.req('POST', p, { form: { _csrf: token }, headers: { origin: 'null' } }),
      await c.req('POST', p, { form: { _csrf: token }, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } }),
      // a token in JSON is not a form: not accepted either
      await c.req('POST', p, { headers: { 'content-type': 'application/json', origin: base }, form: undefined }),
      await c.req('POST', `/dashboard/watches/${watching.id}/cancel`, { form: { _csrf: 'nope' } }),
      await c.req('POST', '/dashboard/sign-out', { form: {} }),
    ];
    for (const r of refused) {
      expect(r.status, r.text.slice(0, 300)).toBe(403);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    }
    // another session's token is not this session's
    const d = new Client();
    await d.signIn(TEST_API_KEY);
    expect((await c.req('POST', p, { form: { _csrf: await d.csrf() } })).status).toBe(403);
    // oversized form
    expect((await c.req('POST', p, { form: { _csrf: token, pad: 'x'.repeat(20_000) } })).status).toBe(413);

    expect(await attemptsOf(delivered.id)).toBe(before);
    expect((await s.api(`/v1/watches/${watching.id}`)).json.status).toBe('watching');
    expect((await c.req('GET', '/dashboard')).status).toBe(200); // still signed in
  });

  it('shows a tenant only its own watches: another tenant’s id is a 404 for reads and actions', async () => {
    const a = new Client();
    await a.signIn(TEST_API_KEY);
    const token = await a.csrf();
    const list = await a.req('GET', '/dashboard');
    expect(list.text).toContain(delivered.id);
    expect(list.text).not.toContain(other.watchId);
    expect((await a.req('GET', `/dashboard/watches/${other.watchId}`)).status).toBe(404);
    expect((await a.req('GET', '/dashboard/watches/wat_not-a-watch')).status).toBe(404);
    const before = await attemptsOf(other.watchId, other.key);
    for (const action of ['redeliver', 'cancel']) {
      const res = await a.req('POST', `/dashboard/watches/${other.watchId}/${action}`, { form: { _csrf: token } });
      expect(res.status, action).toBe(404);
    }
    const theirs = await s.api(`/v1/watches/${other.watchId}`, { headers: { authorization: `Bearer ${other.key}` } });
    expect(theirs.json.status).not.toBe('cancelled');
    expect(await attemptsOf(other.watchId, other.key)).toBe(before);

    // the other tenant sees its watch and not ours; disabling it ends its session at once
    const b = new Client();
    await b.signIn(other.key);
    const page = await b.req('GET', `/dashboard/watches/${other.watchId}`);
    expect(page.status).toBe(200);
    expect((await b.req('GET', `/dashboard/watches/${delivered.id}`)).status).toBe(404);
    const off = await s.api(`/v1/admin/tenants/${other.tenantId}/disable`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(off.status, off.text).toBe(200);
    const after = await b.req('GET', '/dashboard');
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toBe('/dashboard/sign-in');
  });

  it('never shows a watch that ended in task.failed or watch.failed as a plain green delivered; shows failing polls', async () => {
    // a tenant of its own, so the browser test's counts stay as they are
    const t = await s.api('/v1/admin/tenants', {
      body: { name: 'Outcomes Co', upstream_api_key: 'sk_test', upstream_base_url: s.upstream.url },
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(t.status, t.text).toBe(201);
    const key: string = t.json.api_key;
    const mine = { headers: { authorization: `Bearer ${key}` } };
    const ok = await register(key, s.upstream.createTask({ durationMs: 100 }).task_id);
    const failed = await register(key, s.upstream.createTask({ outcome: 'failed', durationMs: 100 }).task_id);
    const gaveUp = await register(key, 'not-known-upstream-0001'); // 404 past the grace → watch.failed
    const down = s.upstream.createTask({ durationMs: 600_000 });
    s.upstream.store.setOverride(down.task_id, { status: 500 });
    const failing = await register(key, down.task_id);
    const status = async (id: string) => (await s.api(`/v1/watches/${id}`, mine)).json;
    for (const deadline = Date.now() + 15_000; ; ) {
      const [a, b, c, d] = await Promise.all([ok.id, failed.id, gaveUp.id, failing.id].map(status));
      if (a.status === 'delivered' && b.status === 'delivered' && c.status === 'delivered' && d.last_poll_error) break;
      if (Date.now() > deadline) throw new Error(`not there yet: ${JSON.stringify([a, b, c, d].map((w) => [w.status, w.last_poll_error]))}`);
      if (Date.now() > deadline) throw new Error('no poll error');
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = new Client();
    await c.signIn(key);
    const list = (await c.req('GET', '/dashboard')).text;
    const rowOf = (id: string) => list.slice(list.indexOf(`data-watch-id="${id}"`), list.indexOf('</tr>', list.indexOf(`data-watch-id="${id}"`)));
    for (const [id, outcome] of [[failed.id, 'task.failed'], [gaveUp.id, 'watch.failed']] as const) {
      expect(rowOf(id)).toContain('class="badge s-delivered ended-badly"');
      expect(rowOf(id)).toContain(`class="badge o-bad" data-testid="outcome">${outcome}<`);
      const page = (await c.req('GET', `/dashboard/watches/${id}`)).text;
      expect(page).toContain('ended-badly');
      expect(page).toContain(`<dt>outcome</dt><dd class="mono">${outcome}</dd>`);
    }
    expect(rowOf(ok.id)).toContain('class="badge s-delivered" data-testid="status"');
    expect(rowOf(ok.id)).toContain('class="badge o-ok" data-testid="outcome">task.completed<');
    expect(rowOf(failing.id)).toContain('title="upstream answered HTTP 500" data-testid="poll-error">polls failing<');
    const page = (await c.req('GET', `/dashboard/watches/${failing.id}`)).text;
    expect(page).toMatch(/data-testid="poll-error-detail"><span class="http-bad">upstream answered HTTP 500<\/span>/);
    s.upstream.store.setOverride(down.task_id, undefined);
    await s.api(`/v1/watches/${failing.id}`, { method: 'DELETE', ...mine });
  });

  it('escapes what clients put in a watch', async () => {
    const c = new Client();
    await c.signIn(TEST_API_KEY);
    const page = await c.req('GET', `/dashboard/watches/${watching.id}`);
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('<script>');
    expect(page.text).not.toContain('<img');
    expect(page.text).toContain('&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('validates list filters instead of failing', async () => {
    const c = new Client();
    await c.signIn(TEST_API_KEY);
    for (const q of ['status=bogus', 'task_id=%3Cscript%3E', 'cursor=%27%20or%201%3D1', `task_id=${'x'.repeat(300)}`]) {
      const res = await c.req('GET', `/dashboard?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.text).toContain('Ignored:');
      expect(res.text).not.toContain('<script>');
    }
  });
});

describe.skipIf(SKIP_BROWSER_TESTS)('dashboard in headless Chromium', () => {
  const browser = useChromium(SHOTS);

  it('signs in, finds the delivered watch, filters, opens it, redelivers and sees the new attempt', async () => {
    const context = await browser().newContext({ viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const problems: string[] = [];
    // A style or anything else refused by the CSP shows up as a console error; so would a script error.
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `dashboard-${name}.png`) });

    // signed out → the sign-in page
    await page.goto(`${base}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in');
    await shot('1-sign-in');
    await page.fill('#api_key', 'thk_wrong_key_0123456789abcdef');
    await page.getByRole('button', { name: 'Sign in' }).click();
    expect(await page.getByTestId('sign-in-error').textContent()).toContain('not valid');
    await page.fill('#api_key', TEST_API_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/dashboard`);

    // the table: our delivered watch, the counts; styles applied under the CSP nonce
    const row = page.locator(`[data-watch-id="${delivered.id}"]`);
    expect(await row.locator('.badge').first().textContent()).toBe('delivered');
    expect(await row.textContent()).toContain(delivered.task_id);
    expect(await page.getByTestId('count-delivered').locator('.n').textContent()).toBe('1');
    expect(await page.getByTestId('count-watching').locator('.n').textContent()).toBe('1');
    expect(await page.getByTestId('count-all').locator('.n').textContent()).toBe('2');
    expect(await page.locator('header').evaluate((e) => (globalThis as unknown as Window).getComputedStyle(e).backgroundColor)).toBe('rgb(36, 41, 47)');
    expect(await page.locator('body').textContent()).not.toContain(other.watchId);
    await shot('2-watches');

    // status filter, then search by task_id
    await page.selectOption('select[name=status]', 'watching');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/status=watching/);
    expect(await page.getByTestId('watch-row').count()).toBe(1);
    expect(await page.locator(`[data-watch-id="${watching.id}"]`).count()).toBe(1);
    await page.selectOption('select[name=status]', '');
    await page.fill('input[name=task_id]', delivered.task_id);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/task_id=/);
    expect(await page.getByTestId('watch-row').count()).toBe(1);
    expect(await page.locator(`[data-watch-id="${delivered.id}"]`).count()).toBe(1);
    await shot('3-search');

    // the watch page: snapshot and one attempt
    await page.getByRole('link', { name: delivered.id }).click();
    await page.waitForURL(`${base}/dashboard/watches/${delivered.id}`);
    const snapshot = await page.getByTestId('snapshot').textContent();
    expect(JSON.parse(snapshot!)).toMatchObject({ task_id: delivered.task_id, status: 'completed', capability: 'image' });
    expect(await page.getByTestId('attempt').count()).toBe(1);
    expect(await page.getByTestId('attempt').first().textContent()).toContain('204');
    await shot('4-watch');

    // redeliver: a flash, then (once the deliverer has sent it) a second attempt, with the receiver's answer
    s.receiver.replies.push({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"received":true}' });
    await page.getByTestId('redeliver').click();
    await page.waitForURL(`${base}/dashboard/watches/${delivered.id}`);
    expect(await page.getByTestId('flash').textContent()).toContain('Redelivery queued');
    const until = Date.now() + 10_000;
    while ((await page.getByTestId('attempt').count()) < 2) {
      if (Date.now() > until) throw new Error('the redelivery did not show up within 10 s');
      await page.reload();
    }
    expect(await page.getByTestId('attempt').count()).toBe(2);
    const second = await page.getByTestId('attempt').nth(1).textContent();
    expect(second).toContain('200');
    expect(second).toContain('{"received":true}');
    await shot('5-redelivered');
    expect(s.receiver.received.filter((r) => r.json?.watch_id === delivered.id)).toHaveLength(2);
    // DASHBOARD_DOCS_SCREENSHOT=1 refreshes the README's screenshot (docs/dashboard.png) from this run.
    if (process.env.DASHBOARD_DOCS_SCREENSHOT) {
      mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
      copyFileSync(path.join(SHOTS, 'dashboard-5-redelivered.png'), path.join(ROOT, 'docs/dashboard.png'));
    }

    // sign out: back to the sign-in page, and the dashboard is closed again
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/dashboard/sign-in`);
    expect(await page.getByTestId('flash').textContent()).toContain('signed out');
    await page.goto(`${base}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in');
    expect(problems).toEqual([]);
    await context.close();
  });
});
