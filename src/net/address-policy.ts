// Outbound address policy (SSRF protection), for callbacks and tenants' upstreams.
//
// Owns the decision "may taskhook send a webhook (or a tenant's poll) to this
// address?": parsing TASKHOOK_ALLOW_PRIVATE_CALLBACKS / _UPSTREAMS, classifying IP addresses into public vs.
// named non-public ranges, and the registration-time check of a callback URL
// (CONTRACT §4: refused at registration with 422 and again at connect time —
// the connect-time half lives in pinned-agent.ts and uses this same policy).
//
// Callback URLs come from strangers, so anything that is not plainly public
// unicast is refused unless the operator allowed it explicitly.

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface PrivateAllowance {
  /** `true`: every non-public class is allowed (except cloud metadata, see AddressPolicy). */
  all: boolean;
  cidrs: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>;
  /** lower-case, no trailing dot */
  hostnames: string[];
}

const ACCEPTS =
  'expected true, false, or a comma list of CIDRs (e.g. 127.0.0.0/8, ::1/128), IP addresses or hostnames (e.g. localhost)';

// Letters, digits, '-' and '_' (seen in internal names), labels ≤ 63, total ≤ 253.
const HOSTNAME_RE =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

const BOOLEAN_LOOKALIKES = new Set(['yes', 'no', 'on', 'off', 'y', 'n', 'none', 'all']);

export function parseAllowPrivate(value: string): PrivateAllowance {
  const v = value.trim();
  const allowance: PrivateAllowance = { all: false, cidrs: [], hostnames: [] };
  if (v === '' || v.toLowerCase() === 'false') return allowance;
  if (v.toLowerCase() === 'true') return { ...allowance, all: true };

  for (const rawEntry of v.split(',')) {
    const entry = rawEntry.trim();
    if (entry === '') continue; // tolerate "a, b," — a stray comma is not a security question
    const slash = entry.indexOf('/');
    if (slash !== -1) {
      // Require a strict IP before the slash: ipaddr.js also accepts inet_aton
      // shorthands ("10/8"), which are too easy to misread in a security list.
      const addr = entry.slice(0, slash);
      const bits = entry.slice(slash + 1);
      if (isIP(addr) === 0 || !/^\d{1,3}$/.test(bits) || !ipaddr.isValidCIDR(entry)) {
        throw new Error(`invalid entry "${entry}": ${ACCEPTS}`);
      }
      allowance.cidrs.push(normaliseCidr(ipaddr.parseCIDR(entry)));
      continue;
    }
    if (isIP(entry) !== 0) {
      const ip = ipaddr.parse(entry);
      allowance.cidrs.push(normaliseCidr([ip, ip.kind() === 'ipv4' ? 32 : 128]));
      continue;
    }
    const host = entry.toLowerCase().replace(/\.$/, '');
    // "yes"/"on" are valid single-label hostnames, but whoever wrote them
    // almost certainly meant `true`: refuse rather than silently allow nothing.
    if (BOOLEAN_LOOKALIKES.has(host)) throw new Error(`invalid entry "${entry}": ${ACCEPTS}`);
    // A name whose last label is numeric would be read as an IPv4 address by
    // WHATWG URL, so it can never match a hostname — treat it as a typo.
    if (!HOSTNAME_RE.test(host) || /^[0-9]+$/.test(host.slice(host.lastIndexOf('.') + 1))) {
      throw new Error(`invalid entry "${entry}": ${ACCEPTS}`);
    }
    allowance.hostnames.push(host);
  }
  return allowance;
}

// "::ffff:10.0.0.0/104" means the same as "10.0.0.0/8"; addresses are compared
// after ipaddr.process() unwraps mapped IPv6, so unwrap ranges the same way.
function normaliseCidr([addr, bits]: [ipaddr.IPv4 | ipaddr.IPv6, number]): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (addr.kind() === 'ipv6' && bits >= 96) {
    const v6 = addr as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) return [v6.toIPv4Address(), bits - 96];
  }
  return [addr, bits];
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];
const cidr = (s: string): Cidr => ipaddr.parseCIDR(s);

// Checked before ipaddr's own range(): either ipaddr doesn't name them, or
// names them too coarsely (169.254.169.254 is "linkLocal", but the reason
// shown to a user should say what it really is).
const EXPLICIT_V4: Array<[string, Cidr[]]> = [
  ['cloud-metadata', [cidr('169.254.169.254/32'), cidr('100.100.100.200/32')]],
  ['documentation', [cidr('192.0.2.0/24'), cidr('198.51.100.0/24'), cidr('203.0.113.0/24')]],
  ['benchmarking', [cidr('198.18.0.0/15')]],
  ['ietf-protocol', [cidr('192.0.0.0/24')]],
];
const EXPLICIT_V6: Array<[string, Cidr[]]> = [
  ['cloud-metadata', [cidr('fd00:ec2::254/128')]],
  ['documentation', [cidr('2001:db8::/32'), cidr('3fff::/20')]],
  ['nat64', [cidr('64:ff9b::/96'), cidr('64:ff9b:1::/48')]],
];
// Only 2000::/3 is allocated as global unicast; anything else that ipaddr
// calls "unicast" (e.g. IPv4-compatible ::a.b.c.d) is not a real destination.
const GLOBAL_UNICAST_V6 = cidr('2000::/3');

const IPADDR_NAMES: Record<string, string> = {
  linkLocal: 'link-local',
  carrierGradeNat: 'carrier-grade-nat',
  uniqueLocal: 'unique-local',
  rfc6052: 'nat64',
  rfc6145: 'ipv4-translated',
  deprecatedSiteLocal: 'site-local',
};

function matchesAny(addr: ipaddr.IPv4 | ipaddr.IPv6, ranges: Cidr[]): boolean {
  return ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}

/** Parses and normalises (IPv4-mapped IPv6 → IPv4); undefined if not an IP. */
function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return ipaddr.process(ip);
  } catch {
    return undefined;
  }
}

function classifyParsed(addr: ipaddr.IPv4 | ipaddr.IPv6): string {
  for (const [name, ranges] of addr.kind() === 'ipv4' ? EXPLICIT_V4 : EXPLICIT_V6) {
    if (matchesAny(addr, ranges)) return name;
  }
  const range: string = addr.range();
  if (range === 'unicast') {
    if (addr.kind() === 'ipv6' && !matchesAny(addr, [GLOBAL_UNICAST_V6])) return 'reserved';
    return 'public';
  }
  // Remaining ipaddr names (as112, amt, orchid2, …) are special-purpose
  // infrastructure, never a webhook receiver: fold them into "reserved".
  if (['unspecified', 'broadcast', 'multicast', 'loopback', 'private', '6to4', 'teredo', 'benchmarking'].includes(range)) {
    return range;
  }
  return IPADDR_NAMES[range] ?? 'reserved';
}

/**
 * 'public' for public unicast; otherwise the range name: loopback, private,
 * link-local, carrier-grade-nat, multicast, unique-local, unspecified,
 * broadcast, reserved, documentation, benchmarking, ietf-protocol,
 * cloud-metadata, nat64, 6to4, teredo, ipv4-translated, site-local — or
 * 'invalid' when `ip` is not an IP address.
 */
export function classifyIp(ip: string): 'public' | string {
  const addr = parseIp(ip);
  return addr === undefined ? 'invalid' : classifyParsed(addr);
}

const DESCRIPTIONS: Record<string, string> = {
  loopback: 'a loopback address',
  private: 'a private (RFC 1918) address',
  'link-local': 'a link-local address',
  'carrier-grade-nat': 'a carrier-grade NAT (100.64.0.0/10) address',
  multicast: 'a multicast address',
  'unique-local': 'a unique-local (private IPv6) address',
  unspecified: 'an unspecified address',
  broadcast: 'a broadcast address',
  reserved: 'a reserved address',
  documentation: 'a documentation-only address',
  benchmarking: 'a benchmarking address',
  'ietf-protocol': 'an IETF protocol assignment address',
  'cloud-metadata': 'a cloud metadata address',
  nat64: 'a NAT64 address',
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
  'ipv4-translated': 'an IPv4-translated address',
  'site-local': 'a site-local address',
  invalid: 'an invalid address',
};

/** "a loopback address" etc., for user-facing reasons. */
export function describeAddressClass(cls: string): string {
  return DESCRIPTIONS[cls] ?? `a non-public (${cls}) address`;
}

export class AddressPolicy {
  readonly #allow: PrivateAllowance;
  readonly #hostnames: ReadonlySet<string>;

  constructor(allow: PrivateAllowance) {
    this.#allow = allow;
    this.#hostnames = new Set(allow.hostnames.map(normaliseHostname));
  }

  /**
   * True when `ip` is public, or allowed by the operator: by CIDR, by the
   * hostname it was resolved from, or by `all`. Invalid strings are never
   * allowed. `all` deliberately still excludes cloud metadata — "allow my
   * private network" should not hand instance credentials to a stranger's
   * callback; list 169.254.169.254/32 explicitly if that is really wanted.
   */
  isAllowedIp(ip: string, hostname?: string): boolean {
    const addr = parseIp(ip);
    if (addr === undefined) return false;
    const cls = classifyParsed(addr);
    if (cls === 'public') return true;
    if (matchesAny(addr, this.#allow.cidrs)) return true;
    // Cloud metadata is allowed only by listing the address (CIDR) itself: an allowed
    // *name* that resolves there (a stale record, or a name the tenant controls) is not
    // a reason to hand out instance credentials.
    if (cls === 'cloud-metadata') return false;
    if (hostname !== undefined && this.#hostnames.has(normaliseHostname(hostname))) return true;
    return this.#allow.all;
  }
}

function normaliseHostname(h: string): string {
  return h.toLowerCase().replace(/\.$/, '');
}

export type LookupAll = (hostname: string) => Promise<Array<{ address: string; family: 4 | 6 }>>;

/** Every address the system resolver returns, in resolver order. */
export const systemLookupAll: LookupAll = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export const MAX_CALLBACK_URL_LENGTH = 2048;

// getaddrinfo can hang for a long time on a broken resolver; a registration
// request should not. (The lookup itself can't be cancelled; we stop waiting.)
const REGISTRATION_LOOKUP_TIMEOUT_MS = 5000;

/** Strips the brackets WHATWG URL keeps around IPv6 hostnames. */
export function unbracketHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

export type UrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * Registration-time check of a callback URL. Resolves the host and refuses
 * if ANY address is not allowed: the connect-time check only dials allowed
 * addresses, so a mixed answer would otherwise register fine and then fail
 * (or worse, succeed only sometimes) at delivery.
 */
export function checkCallbackUrl(raw: string, policy: AddressPolicy, lookupAll: LookupAll = systemLookupAll): Promise<UrlCheck> {
  return checkOutboundUrl(raw, policy, lookupAll, 'callback_url');
}

/**
 * The check of an outbound URL a stranger chose (a callback URL, a tenant's upstream
 * base URL), named by `field` in its reasons: http(s), no credentials, a real port, and
 * every address the host resolves to allowed by `policy`.
 */
export async function checkOutboundUrl(raw: string, policy: AddressPolicy, lookupAll: LookupAll, field: string): Promise<UrlCheck> {
  if (raw.length > MAX_CALLBACK_URL_LENGTH) {
    return { ok: false, reason: `${field} must be at most ${MAX_CALLBACK_URL_LENGTH} characters.` };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: `${field} is not a valid absolute URL.` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, reason: `${field} must use http or https.` };
  }
  if (url.username !== '' || url.password !== '') {
    return { ok: false, reason: `${field} must not contain a username or password.` };
  }
  if (url.hostname === '') {
    return { ok: false, reason: `${field} must have a host.` };
  }
  // Port 0 can't be connected to; some stacks read it as "any port". (WHATWG URL keeps
  // ":0" and drops ":00" spellings to "0" too.)
  if (url.port === '0') {
    return { ok: false, reason: `${field} must not use port 0.` };
  }

  // WHATWG URL has already canonicalised IPv4 shorthands (2130706433,
  // 0x7f000001, 0177.0.0.1, 127.1 → 127.0.0.1) and IPv6 spellings.
  const host = unbracketHost(url.hostname);
  if (isIP(host) !== 0) {
    return policy.isAllowedIp(host) ? { ok: true, url } : refuse(field, host);
  }

  let answers: Array<{ address: string; family: 4 | 6 }>;
  try {
    answers = await withTimeout(lookupAll(host), REGISTRATION_LOOKUP_TIMEOUT_MS);
  } catch {
    return { ok: false, reason: `${field} host does not resolve.` };
  }
  if (answers.length === 0) return { ok: false, reason: `${field} host does not resolve.` };
  for (const { address } of answers) {
    if (!policy.isAllowedIp(address, host)) return refuse(field, address);
  }
  return { ok: true, url };
}

function refuse(field: string, address: string): { ok: false; reason: string } {
  return {
    ok: false,
    reason: `${field} resolves to ${describeAddressClass(classifyIp(address))} (${address}), which is not allowed.`,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('lookup timed out')), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
