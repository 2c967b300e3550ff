// /docs works offline: the page and every asset it loads come from the gateway itself
// (swagger-ui-dist, pinned in package.json). Over HTTP: no outside host anywhere in the
// HTML, relative asset URLs, a CSP that allows nothing else, the assets served (gzipped
// when asked) byte for byte from the pinned package. In headless Chromium with every
// non-loopback request aborted: the page renders every operation of /openapi.json, asks
// for nothing outside, and logs no error; a screenshot goes to test-results/
// (DOCS_SCREENSHOT=1 also refreshes docs/api-docs.png).
import { copyFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { SKIP_BROWSER_TESTS, useChromium } from './support/browser.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SHOTS = path.join(ROOT, 'test-results');
const require = createRequire(import.meta.url);
const swaggerDir = path.dirname(require.resolve('swagger-ui-dist/package.json'));

let s: Stack;
let base: string;
beforeAll(async () => {
  s = await startStack();
  base = s.gateway.url!;
});
afterAll(async () => {
  await s?.close();
});

const isLoopback = (url: string) => {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'data:' || protocol === 'blob:') return true;
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
};

describe('/docs over HTTP', () => {
  it('names no outside host: every asset URL is relative, and the CSP allows only this origin', async () => {
    const res = await fetch(`${base}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/(src|href)\s*=\s*"\/\//i); // protocol-relative
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.sort()).toEqual(['data:,', 'docs/assets/init.js', 'docs/assets/swagger-ui-bundle.js', 'docs/assets/swagger-ui.css']);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/https?:/);
  });

  it('serves the pinned swagger-ui-dist byte for byte, gzipped when asked', async () => {
    const pinned = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['swagger-ui-dist'];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/); // an exact version, not a range
    expect((JSON.parse(readFileSync(path.join(swaggerDir, 'package.json'), 'utf8')) as { version: string }).version).toBe(pinned);
    for (const [name, type] of [['swagger-ui-bundle.js', 'text/javascript'], ['swagger-ui.css', 'text/css']] as const) {
      const file = readFileSync(path.join(swaggerDir, name));
      const plain = await fetch(`${base}/docs/assets/${name}`, { headers: { 'accept-encoding': 'identity' } });
      expect(plain.status).toBe(200);
      expect(plain.headers.get('content-type')).toContain(type);
      expect(Buffer.from(await plain.arrayBuffer()).equals(file)).toBe(true);
      // undici's request() hands over the bytes as sent (fetch would gunzip them)
      const gz = await request(`${base}/docs/assets/${name}`, { headers: { 'accept-encoding': 'gzip, deflate' } });
      expect(gz.headers['content-encoding']).toBe('gzip');
      const sent = Buffer.from(await gz.body.arrayBuffer());
      expect(sent.length).toBeLessThan(file.length / 2);
      expect(gunzipSync(sent).equals(file)).toBe(true);
    }
    const init = await (await fetch(`${base}/docs/assets/init.js`)).text();
    expect(init).toContain("url: 'openapi.json'");
    expect(init).toContain('validatorUrl: null'); // or Swagger UI sends the document to validator.swagger.io
    expect((await fetch(`${base}/docs/assets/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}/docs/assets/index.html`)).status).toBe(404);
  });
});

describe.skipIf(SKIP_BROWSER_TESTS)('/docs in headless Chromium with the network cut off', () => {
  const browser = useChromium(SHOTS);

  it('renders every operation of /openapi.json and asks nothing of any other host', async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { summary?: string }>>;
      webhooks: Record<string, unknown>;
    };
    const operations = Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path: p, summary: op.summary })));
    expect(operations.length).toBeGreaterThan(10);

    const context = await browser().newContext({ viewport: { width: 1280, height: 1000 } });
    const outside: string[] = [];
    // The network is cut: anything not on loopback is aborted (and remembered).
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (isLoopback(url)) return route.continue();
      outside.push(url);
      return route.abort('internetdisconnected');
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));

    await page.goto(`${base}/docs`);
    await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
    // one block per operation, and one per webhook (OpenAPI 3.1 `webhooks`)
    expect(await page.locator('.opblock').count()).toBe(operations.length + Object.keys(doc.webhooks).length);
    const text = (await page.locator('#swagger-ui').textContent()) ?? '';
    for (const op of operations) {
      expect(text, `${op.method} ${op.path}`).toContain(op.path);
      if (op.summary) expect(text, op.summary).toContain(op.summary);
    }
    expect(text).toContain('taskhook');
    for (const type of Object.keys(doc.webhooks)) expect(text, type).toContain(type);

    await page.screenshot({ path: path.join(SHOTS, 'docs-offline.png') });
    if (process.env.DOCS_SCREENSHOT) copyFileSync(path.join(SHOTS, 'docs-offline.png'), path.join(ROOT, 'docs/api-docs.png'));
    expect(outside).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  });
});
