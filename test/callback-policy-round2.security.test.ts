// Issue 12, finding 5 (callbacks): port 0 was accepted, and a hostname listed in
// TASKHOOK_ALLOW_PRIVATE_CALLBACKS was trusted for any address it resolved to, cloud
// metadata included. Now: port 0 is refused, and metadata addresses are allowed only when
// the address itself is listed.
import { describe, expect, it } from 'vitest';
import { AddressPolicy, checkCallbackUrl, parseAllowPrivate, type LookupAll } from '../src/net/address-policy.js';
import { createPinnedLookup } from '../src/net/pinned-agent.js';

const lookup: LookupAll = async (host) => {
  const table: Record<string, string[]> = {
    'public.test': ['8.8.8.8'],
    'hooks.internal': ['10.0.0.7'],
    'meta.internal': ['169.254.169.254'],
    'meta6.internal': ['fd00:ec2::254'],
    'alibaba.internal': ['100.100.100.200'],
    'mapped-meta.internal': ['::ffff:169.254.169.254'],
  };
  const a = table[host.toLowerCase().replace(/\.$/, '')];
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

describe('callback port 0', () => {
  const open = new AddressPolicy(parseAllowPrivate('true'));
  it.each(['http://public.test:0/', 'https://8.8.8.8:0/hook', 'http://public.test:00/', 'http://public.test:000000/x'])('%s → refused', async (url) => {
    expect(await checkCallbackUrl(url, open, lookup)).toEqual({ ok: false, reason: 'callback_url must not use port 0.' });
  });
  it.each(['http://public.test:1/', 'http://public.test/', 'https://public.test:65535/'])('%s → accepted', async (url) => {
    expect((await checkCallbackUrl(url, open, lookup)).ok).toBe(true);
  });
});

describe('an allowed hostname that resolves to a metadata address', () => {
  const byName = new AddressPolicy(parseAllowPrivate('hooks.internal, meta.internal, meta6.internal, alibaba.internal, mapped-meta.internal'));

  it.each(['http://meta.internal/', 'http://META.internal./', 'http://meta6.internal/', 'http://alibaba.internal/', 'http://mapped-meta.internal/'])(
    '%s is refused at registration',
    async (url) => {
      const r = await checkCallbackUrl(url, byName, lookup);
      expect(r).toMatchObject({ ok: false, reason: expect.stringContaining('a cloud metadata address') });
    },
  );

  it('a listed name resolving to a private (non-metadata) address is still allowed', async () => {
    expect((await checkCallbackUrl('http://hooks.internal/', byName, lookup)).ok).toBe(true);
  });

  it('is refused at connect time too (the pinned lookup)', async () => {
    const pinned = createPinnedLookup(byName, lookup);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => pinned('meta.internal', { all: true }, (e) => resolve(e)));
    expect(err).toMatchObject({ code: 'ERR_CALLBACK_ADDRESS_FORBIDDEN' });
  });

  it('listing the address itself is what allows it', async () => {
    const listed = new AddressPolicy(parseAllowPrivate('meta.internal, 169.254.169.254/32'));
    expect((await checkCallbackUrl('http://meta.internal/', listed, lookup)).ok).toBe(true);
    expect(listed.isAllowedIp('169.254.169.254', 'meta.internal')).toBe(true);
    expect(byName.isAllowedIp('169.254.169.254', 'meta.internal')).toBe(false);
  });
});
