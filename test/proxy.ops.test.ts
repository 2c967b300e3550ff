// Self-hosting behind a firewall: upstream polls through HTTP_PROXY (NO_PROXY
// bypasses it) and webhooks through TASKHOOK_CALLBACK_PROXY, against a real
// forward proxy on loopback (the npm package `proxy`, see support/forward-proxy.ts).
// The SSRF policy must hold through the proxy: a forbidden callback address is
// refused before the proxy is asked.
import { URL } from 'node:url';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { AddressPolicy, parseAllowPrivate } from '../src/net/address-policy.js';
import { createCallbackDispatcher } from '../src/net/callback-proxy.js';
import { startStack, type Stack } from './support/gateway.js';
import { freePort } from './support/process.js';
import { startForwardProxy, type ForwardProxy } from './support/forward-proxy.js';
import { waitForStatus } from './support/wait.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function stack(env: Record<string, string>, overrides: Parameters<typeof startStack>[1] = {}): Promise<Stack> {
  const s = await startStack(env, overrides);
  cleanup.push(() => s.close());
  return s;
}

async function proxy(opts: Parameters<typeof startForwardProxy>[0]): Promise<ForwardProxy> {
  const p = await startForwardProxy(opts);
  cleanup.push(() => p.stop());
  return p;
}

const portOf = (url: string) => Number(new URL(url).port);

async function watch(s: Stack, callbackUrl = `${s.receiver.url}/hook`) {
  const task = s.upstream.createTask({ durationMs: 200, processingAfterMs: 0 });
  const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: callbackUrl } });
  expect(res.status, res.text).toBe(201);
  return { task_id: task.task_id, id: res.json.id as string };
}

describe('upstream polls through HTTP_PROXY', () => {
  it('polls only through the proxy: they stop while it is down and resume when it is back', async () => {
    const port = await freePort();
    const s = await stack({ HTTP_PROXY: `http://127.0.0.1:${port}` });
    const simTarget = `CONNECT 127.0.0.1:${portOf(s.upstream.url)}`;
    const p = await proxy({ port, connectPorts: [portOf(s.upstream.url)] });

    const first = await watch(s);
    await waitForStatus(s, first.id, 'delivered');
    expect(s.upstream.requests(first.task_id)).toBeGreaterThan(0);
    expect(p.requests()).toContain(simTarget);

    // Proxy gone: the tunnel dies with it and nothing reaches upstream any more.
    await p.stop();
    const second = await watch(s);
    await new Promise((r) => setTimeout(r, 1500)); // first poll is due after ~100 ms, then every 150-300 ms
    expect(s.upstream.requests(second.task_id)).toBe(0);
    expect((await s.api(`/v1/watches/${second.id}`)).json.status).toBe('watching');

    // Back on the same port: polling recovers by itself, through the new proxy.
    const again = await proxy({ port, connectPorts: [portOf(s.upstream.url)] });
    await waitForStatus(s, second.id, 'delivered', 30_000);
    expect(again.requests()).toContain(simTarget);
    expect(s.receiver.received.map((r) => r.json.watch_id).sort()).toEqual([first.id, second.id].sort());
  });

  it('NO_PROXY=127.0.0.1 polls directly, the proxy sees nothing', async () => {
    const port = await freePort();
    const s = await stack({ HTTP_PROXY: `http://127.0.0.1:${port}`, NO_PROXY: '127.0.0.1' });
    const p = await proxy({ port, connectPorts: [portOf(s.upstream.url)] });
    const w = await watch(s);
    await waitForStatus(s, w.id, 'delivered');
    expect(s.upstream.requests(w.task_id)).toBeGreaterThan(0);
    expect(p.requests()).toEqual([]);
  });

  it('reads the lowercase variables too (they win, as with curl) and refuses a malformed proxy URL', () => {
    const cfg = loadConfig({ http_proxy: 'http://a.internal:3128', HTTP_PROXY: 'http://b.internal:3128', HTTPS_PROXY: 'http://c.internal:3128', no_proxy: 'localhost' });
    expect(cfg.upstreamProxy).toEqual({ httpProxy: 'http://a.internal:3128', httpsProxy: 'http://c.internal:3128', noProxy: 'localhost' });
    expect(loadConfig({}).upstreamProxy).toEqual({ httpProxy: undefined, httpsProxy: undefined, noProxy: undefined });
    // one line naming the variable, without echoing a value that may hold credentials
    expect(() => loadConfig({ TASKHOOK_CALLBACK_PROXY: 'ftp://user:hunter2@proxy' })).toThrow(/^invalid TASKHOOK_CALLBACK_PROXY: expected a proxy URL[^(]*$/);
    expect(() => loadConfig({ HTTPS_PROXY: 'proxy:3128' })).toThrow(/^invalid HTTPS_PROXY: /);
  });
});

describe('webhooks through TASKHOOK_CALLBACK_PROXY', () => {
  const auth = { user: 'alice', password: 's3cretproxy' };

  it('delivers through the proxy; its credentials go to the proxy only', async () => {
    const port = await freePort();
    const s = await stack({
      TASKHOOK_CALLBACK_PROXY: `http://${auth.user}:${auth.password}@127.0.0.1:${port}`,
      TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.1/32',
    });
    const p = await proxy({ port, connectPorts: [portOf(s.receiver.url)], basicAuth: auth });
    const w = await watch(s);
    await waitForStatus(s, w.id, 'delivered');

    expect(p.requests()).toEqual([`CONNECT 127.0.0.1:${portOf(s.receiver.url)}`]); // upstream polls stay direct
    const [hook] = s.receiver.received;
    expect(hook?.verified).toBe(true);
    const basic = Buffer.from(`${auth.user}:${auth.password}`).toString('base64');
    const seen = JSON.stringify(hook?.headers) + hook?.body;
    expect(hook?.headers['proxy-authorization']).toBeUndefined();
    expect(seen).not.toContain(auth.password);
    expect(seen).not.toContain(basic);
  });

  it('still refuses a forbidden address, before the proxy is asked (DNS rebinding to 127.0.0.2)', async () => {
    const port = await freePort();
    let answer = '127.0.0.1';
    const s = await stack(
      { TASKHOOK_CALLBACK_PROXY: `http://127.0.0.1:${port}`, TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.1/32' },
      {
        lookupAll: async (host) => {
          if (host === 'hook.test') return [{ address: answer, family: 4 }];
          throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
        },
      },
    );
    const receiverPort = portOf(s.receiver.url);
    const p = await proxy({ port, connectPorts: [receiverPort] });

    // The literal is refused at registration, proxy or not.
    const task = s.upstream.createTask({ durationMs: 0 });
    const literal = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `http://127.0.0.2:${receiverPort}/hook` } });
    expect(literal.status).toBe(422);

    // A name that is 127.0.0.1 at registration and 127.0.0.2 at delivery.
    const w = await watch(s, `http://hook.test:${receiverPort}/hook`);
    answer = '127.0.0.2';
    await waitForStatus(s, w.id, 'undeliverable', 30_000);
    const attempts = (await s.api(`/v1/watches/${w.id}/deliveries`)).json.data as Array<{ error: string | null }>;
    expect(attempts.length).toBeGreaterThan(0);
    for (const a of attempts) expect(a.error).toMatch(/forbidden addresses: 127\.0\.0\.2/);
    expect(p.requests()).toEqual([]);
    expect(s.receiver.received).toEqual([]);
  });

  it('the proxied dispatcher vets IP literals and every resolved address on each request', async () => {
    const port = await freePort();
    const { startReceiver } = await import('./support/receiver.js');
    const receiver = await startReceiver([]);
    cleanup.push(() => receiver.close());
    const receiverPort = portOf(receiver.url);
    const p = await proxy({ port, connectPorts: [receiverPort] });
    const d = createCallbackDispatcher({
      policy: new AddressPolicy(parseAllowPrivate('127.0.0.1/32')),
      connectTimeoutMs: 2000,
      proxyUrl: p.url,
      lookupAll: async (host) =>
        host === 'mixed.test'
          ? [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }]
          : [{ address: '127.0.0.1', family: 4 }],
    });
    cleanup.push(() => d.destroy());

    const ok = await request(`http://127.0.0.1:${receiverPort}/ok`, { method: 'POST', body: '{}', dispatcher: d });
    expect(ok.statusCode).toBe(204);
    await ok.body.dump();
    // The proxy would pick either address of a mixed answer: one forbidden address refuses the request.
    for (const url of [`http://127.0.0.2:${receiverPort}/no`, `http://mixed.test:${receiverPort}/no`, `http://[::ffff:127.0.0.2]:${receiverPort}/no`]) {
      await expect(request(url, { method: 'POST', body: '{}', dispatcher: d })).rejects.toMatchObject({ code: 'ERR_CALLBACK_ADDRESS_FORBIDDEN' });
    }
    expect(p.requests()).toEqual([`CONNECT 127.0.0.1:${receiverPort}`]);
    expect(receiver.received.map((r) => r.path)).toEqual(['/ok']);
  });
});
