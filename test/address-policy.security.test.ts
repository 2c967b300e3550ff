// Tests for the callback address policy (src/net/address-policy.ts) and the
// pinned-lookup dispatcher (src/net/pinned-agent.ts).
//
// Every DNS answer here comes from a fake lookupAll, and every socket that is
// actually opened goes to a loopback server started by the test: nothing may
// dial a non-loopback address (the CI machine has no network, and such
// traffic is flagged).

import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Agent } from 'undici';
import {
  AddressPolicy,
  checkCallbackUrl,
  classifyIp,
  parseAllowPrivate,
} from '../src/net/address-policy.js';
import type { LookupAll } from '../src/net/address-policy.js';
import { createCallbackAgent, createPinnedLookup } from '../src/net/pinned-agent.js';

const denyAll = new AddressPolicy(parseAllowPrivate('false'));

/** Fake resolver: a fixed table; unknown names fail like getaddrinfo does. */
function fakeLookup(table: Record<string, string[]>): LookupAll & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (hostname: string) => {
    calls.push(hostname);
    const answers = table[hostname];
    if (answers === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    }
    return answers.map((address) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6 }));
  };
  return Object.assign(fn, { calls });
}

describe('classifyIp', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['100.64.0.1', 'carrier-grade-nat'],
    ['100.127.255.254', 'carrier-grade-nat'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['192.0.0.8', 'ietf-protocol'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['64:ff9b::808:808', 'nat64'],
    ['64:ff9b::a9fe:a9fe', 'nat64'],
    ['64:ff9b:1::1', 'nat64'],
    ['2002:7f00:1::', '6to4'],
    ['2001::1', 'teredo'],
    ['169.254.169.254', 'cloud-metadata'],
    ['fd00:ec2::254', 'cloud-metadata'],
    ['100.100.100.200', 'cloud-metadata'],
    // IPv4-mapped IPv6 is unwrapped before classifying
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'cloud-metadata'],
    ['::ffff:10.0.0.1', 'private'],
    // outside 2000::/3 is never a real destination (IPv4-compatible ::a.b.c.d)
    ['::7f00:1', 'reserved'],
    ['not-an-ip', 'invalid'],
    ['', 'invalid'],
    ['256.1.1.1', 'invalid'],
  ])('%s → %s', (ip, expected) => {
    expect(classifyIp(ip)).toBe(expected);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8'])(
    '%s is public',
    (ip) => {
      expect(classifyIp(ip)).toBe('public');
    },
  );
});

describe('checkCallbackUrl', () => {
  const lookup = fakeLookup({
    localhost: ['127.0.0.1', '::1'],
    'public.test': ['8.8.8.8', '2606:4700::1111'],
    'mixed.test': ['8.8.8.8', '::1'],
    'mixed-v4.test': ['1.1.1.1', '10.0.0.5'],
    'empty.test': [],
  });

  it.each([
    ['http://127.0.0.1/', 'a loopback address (127.0.0.1)'],
    ['http://[::1]/', 'a loopback address (::1)'],
    ['http://0.0.0.0/', 'an unspecified address (0.0.0.0)'],
    ['http://localhost/', 'a loopback address (127.0.0.1)'],
    ['http://LOCALHOST/', 'a loopback address (127.0.0.1)'],
    ['http://169.254.169.254/latest/meta-data/', 'a cloud metadata address (169.254.169.254)'],
    ['http://[fd00:ec2::254]/', 'a cloud metadata address (fd00:ec2::254)'],
    ['http://2130706433/', 'a loopback address (127.0.0.1)'],
    ['http://0x7f000001/', 'a loopback address (127.0.0.1)'],
    ['http://0177.0.0.1/', 'a loopback address (127.0.0.1)'],
    ['http://127.1/', 'a loopback address (127.0.0.1)'],
    ['http://[::ffff:7f00:1]/', 'a loopback address (::ffff:7f00:1)'],
    ['http://[::ffff:169.254.169.254]/', 'a cloud metadata address'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'a NAT64 address'],
    ['http://[2002:7f00:1::]/', 'a 6to4 address'],
    ['http://100.64.0.1/', 'a carrier-grade NAT'],
    ['http://224.0.0.1/', 'a multicast address (224.0.0.1)'],
    ['http://[fe80::1]/', 'a link-local address (fe80::1)'],
    ['https://10.1.2.3:8443/hook', 'a private (RFC 1918) address (10.1.2.3)'],
    ['http://mixed.test/', 'a loopback address (::1)'],
    ['http://mixed-v4.test/', 'a private (RFC 1918) address (10.0.0.5)'],
    ['http://user@public.test/', 'must not contain a username or password'],
    ['http://user:pw@public.test/', 'must not contain a username or password'],
    ['file:///etc/passwd', 'must use http or https'],
    ['gopher://public.test:70/_x', 'must use http or https'],
    ['ftp://public.test/', 'must use http or https'],
    [`https://public.test/${'a'.repeat(2048)}`, 'at most 2048 characters'],
    ['not a url', 'not a valid absolute URL'],
    ['/relative/path', 'not a valid absolute URL'],
    ['http://nxdomain.test/', 'callback_url host does not resolve'],
    ['http://empty.test/', 'callback_url host does not resolve'],
  ])('refuses %s', async (raw, reason) => {
    const r = await checkCallbackUrl(raw, denyAll, lookup);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain(reason);
      expect(r.reason.startsWith('callback_url')).toBe(true);
    }
  });

  it.each([
    'https://public.test/hooks/taskhook?x=1',
    'http://public.test:8080/',
    'https://8.8.8.8/',
    'https://[2606:4700::1111]/',
  ])('accepts %s', async (raw) => {
    const r = await checkCallbackUrl(raw, denyAll, lookup);
    expect(r).toMatchObject({ ok: true });
    if (r.ok) expect(r.url.href).toBe(new URL(raw).href);
  });

  it('accepts a URL of exactly 2048 characters', async () => {
    const prefix = 'https://public.test/';
    const raw = prefix + 'a'.repeat(2048 - prefix.length);
    expect(raw.length).toBe(2048);
    expect((await checkCallbackUrl(raw, denyAll, lookup)).ok).toBe(true);
  });

  it('never resolves IP literals', async () => {
    const l = fakeLookup({});
    await checkCallbackUrl('http://127.0.0.1/', denyAll, l);
    await checkCallbackUrl('https://8.8.8.8/', denyAll, l);
    expect(l.calls).toEqual([]);
  });

  it('honours allowances: hostname and CIDR', async () => {
    const byHost = new AddressPolicy(parseAllowPrivate('localhost'));
    expect((await checkCallbackUrl('http://localhost:3000/', byHost, lookup)).ok).toBe(true);
    // the hostname allowance is for that name, not for the addresses it resolves to
    expect((await checkCallbackUrl('http://127.0.0.1:3000/', byHost, lookup)).ok).toBe(false);

    const byCidr = new AddressPolicy(parseAllowPrivate('127.0.0.0/8'));
    expect((await checkCallbackUrl('http://127.0.0.1:3000/', byCidr, lookup)).ok).toBe(true);
    expect((await checkCallbackUrl('http://127.1/', byCidr, lookup)).ok).toBe(true);
    // localhost also answers ::1, which 127.0.0.0/8 does not cover
    expect((await checkCallbackUrl('http://localhost/', byCidr, lookup)).ok).toBe(false);
  });
});

describe('parseAllowPrivate', () => {
  it.each(['false', 'FALSE', '', '  '])('%j allows nothing', (v) => {
    expect(parseAllowPrivate(v)).toEqual({ all: false, cidrs: [], hostnames: [] });
  });

  it.each(['true', 'TRUE', ' true '])('%j allows all', (v) => {
    expect(parseAllowPrivate(v)).toEqual({ all: true, cidrs: [], hostnames: [] });
  });

  it('parses a list of CIDRs, bare IPs and hostnames', () => {
    const a = parseAllowPrivate('127.0.0.0/8, ::1/128,localhost , Receiver.Internal., 10.1.2.3, fd00::1,');
    expect(a.all).toBe(false);
    expect(a.cidrs.map(([ip, bits]) => `${ip.toString()}/${bits}`)).toEqual([
      '127.0.0.0/8',
      '::1/128',
      '10.1.2.3/32',
      'fd00::1/128',
    ]);
    expect(a.hostnames).toEqual(['localhost', 'receiver.internal']);
  });

  it.each(['yes', 'on', 'localhost,all', '10.0.0.0/33', '10/8', '127.0.0.1/abc', 'foo bar', 'http://x', '300.1.1.1', 'a..b', '-x.test', '*.internal'])(
    'rejects %j',
    (v) => {
      expect(() => parseAllowPrivate(v)).toThrow(/expected true, false, or a comma list of CIDRs/);
    },
  );
});

describe('AddressPolicy', () => {
  it('an allowance of exactly 127.0.0.0/8 allows 127.x only', () => {
    const p = new AddressPolicy(parseAllowPrivate('127.0.0.0/8'));
    expect(p.isAllowedIp('127.0.0.1')).toBe(true);
    expect(p.isAllowedIp('127.9.9.9')).toBe(true);
    expect(p.isAllowedIp('::ffff:127.0.0.1')).toBe(true);
    expect(p.isAllowedIp('10.0.0.1')).toBe(false);
    expect(p.isAllowedIp('::1')).toBe(false);
    expect(p.isAllowedIp('169.254.169.254')).toBe(false);
    expect(p.isAllowedIp('8.8.8.8')).toBe(true); // public is always fine
    expect(p.isAllowedIp('garbage')).toBe(false);
  });

  it('hostname allowances apply to that hostname only', () => {
    const p = new AddressPolicy(parseAllowPrivate('receiver.internal'));
    expect(p.isAllowedIp('10.0.0.7', 'receiver.internal')).toBe(true);
    expect(p.isAllowedIp('10.0.0.7', 'RECEIVER.internal.')).toBe(true);
    expect(p.isAllowedIp('10.0.0.7', 'other.internal')).toBe(false);
    expect(p.isAllowedIp('10.0.0.7')).toBe(false);
  });

  it('`true` allows private ranges but still not cloud metadata unless listed', () => {
    const all = new AddressPolicy(parseAllowPrivate('true'));
    expect(all.isAllowedIp('10.0.0.1')).toBe(true);
    expect(all.isAllowedIp('::1')).toBe(true);
    expect(all.isAllowedIp('169.254.169.254')).toBe(false);
    expect(all.isAllowedIp('nope')).toBe(false);
    const listed = new AddressPolicy(parseAllowPrivate('169.254.169.254'));
    expect(listed.isAllowedIp('169.254.169.254')).toBe(true);
  });
});

describe('createPinnedLookup (both net.connect call shapes)', () => {
  const policy = new AddressPolicy(parseAllowPrivate('127.0.0.1/32'));
  const pinned = createPinnedLookup(policy, fakeLookup({ 'hook.test': ['127.0.0.2', '::1', '127.0.0.1'] }));

  function call(options: { all?: boolean; family?: number }) {
    return new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }>(
      (resolve) => pinned('hook.test', options, (err, address, family) => resolve({ err, address, family })),
    );
  }

  it('all: true → array of allowed addresses only', async () => {
    const r = await call({ all: true });
    expect(r.err).toBeNull();
    expect(r.address).toEqual([{ address: '127.0.0.1', family: 4 }]);
  });

  it('without all → one allowed address and its family', async () => {
    const r = await call({});
    expect(r.err).toBeNull();
    expect(r.address).toBe('127.0.0.1');
    expect(r.family).toBe(4);
  });

  it('family filter that leaves nothing allowed → forbidden error', async () => {
    const r = await call({ family: 6 });
    expect(r.err?.code).toBe('ERR_CALLBACK_ADDRESS_FORBIDDEN');
  });

  it('resolver errors pass through unchanged', async () => {
    const p = createPinnedLookup(policy, fakeLookup({}));
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => p('nx.test', {}, (e) => resolve(e)));
    expect(err?.code).toBe('ENOTFOUND');
  });
});

// ---- real sockets, loopback only -------------------------------------------

interface TestServer {
  server: Server;
  port: number;
  connections: number;
  requests: number;
}

function listen(host: string, port: number, name: string): Promise<TestServer> {
  return new Promise((resolve, reject) => {
    const server = createServer((_req, res) => {
      ts.requests++;
      res.end(name);
    });
    const ts: TestServer = { server, port: 0, connections: 0, requests: 0 };
    server.on('connection', () => ts.connections++);
    server.once('error', reject);
    server.listen(port, host, () => {
      ts.port = (server.address() as AddressInfo).port;
      resolve(ts);
    });
  });
}

describe('createCallbackAgent (loopback only)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function server(host = '127.0.0.1', port = 0, name = 'one'): Promise<TestServer> {
    const s = await listen(host, port, name);
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          s.server.closeAllConnections();
          s.server.close(() => resolve());
        }),
    );
    return s;
  }

  function agent(allow: string, table: Record<string, string[]>): Agent {
    const a = createCallbackAgent({
      policy: new AddressPolicy(parseAllowPrivate(allow)),
      lookupAll: fakeLookup(table),
      connectTimeoutMs: 2000,
    });
    cleanup.push(() => a.destroy());
    return a;
  }

  async function get(url: string, dispatcher: Agent): Promise<string> {
    const res = await request(url, { dispatcher });
    return res.body.text();
  }

  it('(a) reaches an allowed address resolved from a hostname', async () => {
    const s = await server();
    const a = agent('127.0.0.0/8', { 'hook.test': ['127.0.0.1'] });
    expect(await get(`http://hook.test:${s.port}/`, a)).toBe('one');
    expect(s.requests).toBe(1);
  });

  it('(a′) a hostname allowance works at connect time too', async () => {
    const s = await server();
    const a = agent('hook.test', { 'hook.test': ['127.0.0.1'] });
    expect(await get(`http://hook.test:${s.port}/`, a)).toBe('one');
  });

  it('(b) deny-all: hostname resolving to loopback is refused before connecting', async () => {
    const s = await server();
    const a = agent('false', { 'hook.test': ['127.0.0.1'] });
    await expect(get(`http://hook.test:${s.port}/`, a)).rejects.toMatchObject({
      code: 'ERR_CALLBACK_ADDRESS_FORBIDDEN',
    });
    expect(s.connections).toBe(0);
  });

  it.each(['127.0.0.1', '[::ffff:127.0.0.1]'])('(c) deny-all: IP literal %s is refused', async (host) => {
    const s = await server();
    const a = agent('false', {});
    await expect(get(`http://${host}:${s.port}/`, a)).rejects.toMatchObject({
      code: 'ERR_CALLBACK_ADDRESS_FORBIDDEN',
    });
    expect(s.connections).toBe(0);
  });

  it('(c′) an allowed IP literal connects', async () => {
    const s = await server();
    const a = agent('127.0.0.1', {});
    expect(await get(`http://127.0.0.1:${s.port}/`, a)).toBe('one');
  });

  // (d) The decoy listens on 127.0.0.2 — same port — and is listed FIRST in
  // the DNS answer, so a dispatcher that dialled the raw answer would land on
  // it. Only 127.0.0.1/32 is allowed: the request must reach the real server
  // and the decoy must never see a connection.
  it('(d) a disallowed address in the answer is never dialled', async (ctx) => {
    const real = await server('127.0.0.1', 0, 'real');
    let decoy: TestServer;
    try {
      decoy = await server('127.0.0.2', real.port, 'decoy');
    } catch {
      ctx.skip(); // no 127.0.0.0/8 beyond .1 on this host (e.g. macOS)
      return;
    }
    const a = agent('127.0.0.1/32', { 'hook.test': ['127.0.0.2', '127.0.0.1'] });
    for (let i = 0; i < 3; i++) {
      expect(await get(`http://hook.test:${real.port}/?i=${i}`, a)).toBe('real');
    }
    expect(decoy.connections).toBe(0);

    // Sanity check of the setup: without pinning, the decoy is what answers.
    const open = agent('127.0.0.0/8', { 'hook.test': ['127.0.0.2', '127.0.0.1'] });
    expect(await get(`http://hook.test:${real.port}/`, open)).toBe('decoy');
    expect(decoy.connections).toBe(1);
  });

  it('(d′) an answer with only disallowed addresses fails without dialling', async (ctx) => {
    const real = await server('127.0.0.1', 0, 'real');
    let decoy: TestServer;
    try {
      decoy = await server('127.0.0.2', real.port, 'decoy');
    } catch {
      ctx.skip();
      return;
    }
    const a = agent('127.0.0.1/32', { 'hook.test': ['127.0.0.2'] });
    await expect(get(`http://hook.test:${real.port}/`, a)).rejects.toMatchObject({
      code: 'ERR_CALLBACK_ADDRESS_FORBIDDEN',
    });
    expect(decoy.connections).toBe(0);
    expect(real.connections).toBe(0);
  });

  it('does not follow redirects', async () => {
    const target = await server('127.0.0.1', 0, 'target');
    const redirector = await listen('127.0.0.1', 0, 'x');
    redirector.server.removeAllListeners('request');
    redirector.server.on('request', (_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${target.port}/` }).end();
    });
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          redirector.server.closeAllConnections();
          redirector.server.close(() => resolve());
        }),
    );
    const a = agent('127.0.0.1', {});
    const res = await request(`http://127.0.0.1:${redirector.port}/`, { dispatcher: a });
    await res.body.dump();
    expect(res.statusCode).toBe(302);
    expect(target.requests).toBe(0);
  });
});
