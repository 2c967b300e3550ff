// Failed-authentication throttling per client address (issue 12: 3,000 wrong admin
// tokens in 2.3 s, 3,000 wrong tenant keys in 3.1 s, 300 dashboard sign-ins in 1.5 s,
// never a 429).
//
// One bucket per client address, shared by every credential the gateway checks (admin
// token, gateway keys on /v1, dashboard sign-in, the metrics token): `limit` failures,
// refilled evenly over `windowMs` (default 10 a minute: a burst of 10, then one every
// 6 s). A failure takes a token; while the bucket is empty every request from that
// address that presents a credential is answered 429 with Retry-After *before* the
// credential is looked at, so a right guess is not revealed either. Requests from other
// addresses are not affected; successes cost nothing.
//
// The address is the socket's peer, or — when that peer is a proxy listed in
// TASKHOOK_TRUSTED_PROXIES — the nearest untrusted X-Forwarded-For hop. IPv6 clients are
// counted per /64 (one host can hold a whole /64). State is per process, bounded, the
// least recently touched address evicted first.
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import ipaddr from 'ipaddr.js';
import { parseDuration } from '../duration.js';
import { TooManyRequests } from './errors.js';

export interface AuthThrottleSettings {
  /** failures allowed in a burst, and refilled over windowMs */
  limit: number;
  windowMs: number;
}

export const DEFAULT_AUTH_THROTTLE = '10/1m';

/** "10/1m" → { limit: 10, windowMs: 60000 }; "off" → undefined. Throws with what is expected. */
export function parseAuthThrottle(text: string): AuthThrottleSettings | undefined {
  const v = text.trim().toLowerCase();
  if (v === 'off') return undefined;
  const m = /^(\d{1,6})\s*\/\s*(\S+)$/.exec(v);
  const windowMs = m ? parseDuration(m[2]!) : undefined;
  const limit = m ? Number(m[1]) : 0;
  if (!m || windowMs === undefined || windowMs <= 0 || limit < 1) {
    throw new Error('expected failures/duration like 10/1m (10 failed attempts a minute per client address), or off');
  }
  return { limit, windowMs };
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** TASKHOOK_TRUSTED_PROXIES: a comma list of IPs and CIDRs. Throws with what is expected. */
export function parseTrustedProxies(text: string): Cidr[] {
  const out: Cidr[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    try {
      if (entry.includes('/')) out.push(ipaddr.parseCIDR(entry));
      else {
        const ip = ipaddr.process(entry);
        out.push([ip, ip.kind() === 'ipv4' ? 32 : 128]);
      }
    } catch {
      throw new Error(`invalid entry "${entry}": expected a comma list of IP addresses and CIDRs (e.g. 10.0.0.0/8, fd00::/8)`);
    }
  }
  return out;
}

function parseIp(s: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return ipaddr.process(s.trim().replace(/^\[|\]$/g, ''));
  } catch {
    return undefined;
  }
}

/** The bucket key of an address: IPv4 as is (mapped IPv6 unwrapped), IPv6 by its /64. */
export function addressKey(ip: string): string {
  const a = parseIp(ip);
  if (!a) return ip;
  if (a.kind() === 'ipv4') return a.toString();
  const parts = (a as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`;
}

export interface AuthThrottleOptions extends AuthThrottleSettings {
  trustedProxies?: Cidr[];
  now?: () => number;
  /** addresses remembered at once; the least recently touched is dropped first */
  maxKeys?: number;
}

export class AuthThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(private readonly o: AuthThrottleOptions) {
    this.now = o.now ?? Date.now;
    this.maxKeys = o.maxKeys ?? 100_000;
  }

  /** The client address this request is counted under. */
  clientKey(c: Context): string {
    const peer = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket?.remoteAddress ?? 'unknown';
    return addressKey(this.clientIp(peer, c.req.header('x-forwarded-for')));
  }

  private clientIp(peer: string, forwarded: string | undefined): string {
    const trusted = this.o.trustedProxies ?? [];
    const isTrusted = (ip: string) => {
      const a = parseIp(ip);
      return a !== undefined && trusted.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));
    };
    if (trusted.length === 0 || !isTrusted(peer) || !forwarded) return peer;
    // right to left: the first hop our own proxies did not add is the client
    const hops = forwarded.split(',').map((h) => h.trim()).filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (parseIp(hop) === undefined) return peer; // garbage in the header: count the proxy, not a made-up name
      if (!isTrusted(hop)) return hop;
    }
    return hops[0] ?? peer;
  }

  private refill(key: string): { tokens: number; at: number } {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is least recently touched first
      b.tokens = Math.min(this.o.limit, b.tokens + ((now - b.at) * this.o.limit) / this.o.windowMs);
      b.at = now;
    } else {
      b = { tokens: this.o.limit, at: now };
      while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }

  /** ms until this address may try again; 0 = now. */
  retryAfterMs(key: string): number {
    const b = this.refill(key);
    if (b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * this.o.windowMs) / this.o.limit);
  }

  /** Records one failed authentication of this address. */
  failed(key: string): void {
    const b = this.refill(key);
    b.tokens = Math.max(0, b.tokens - 1);
  }

  /**
   * Before a credential check: throws 429 (problem+json at the API's edge) while this
   * address is throttled, else takes its token up front — so a burst of concurrent
   * guesses can't all pass before the first failure is counted. `succeeded` gives it back.
   */
  begin(key: string): void {
    this.open(key);
    this.failed(key);
  }

  /** Throws 429 while this address is throttled; takes nothing (a check that joins one already begun). */
  open(key: string): void {
    const wait = this.retryAfterMs(key);
    if (wait > 0) throw throttled(wait, this.o);
  }

  /** The check begun by `begin` passed: its token is returned. */
  succeeded(key: string): void {
    const b = this.refill(key);
    b.tokens = Math.min(this.o.limit, b.tokens + 1);
  }
}

export function throttled(waitMs: number, o: AuthThrottleSettings) {
  return TooManyRequests(
    `too many failed authentication attempts from this address (at most ${o.limit} per ${Math.round(o.windowMs / 1000)} s); retry after ${Math.ceil(waitMs / 1000)} s`,
    waitMs,
  );
}

/**
 * Around one credential check: 429 while the client's address is throttled (before the
 * credential is looked at), and a failure counted when `check` says no. Requests that
 * present no credential at all are not counted (nothing is being guessed).
 */
export async function throttledAuth<T>(
  throttle: AuthThrottle | undefined,
  c: Context,
  presented: boolean,
  check: () => Promise<T | undefined> | T | undefined,
  /**
   * true: the same credential is already being checked (a concurrent request of the same
   * client joins that lookup): one guess, not another — no token is taken, so a client's
   * concurrent requests with a right key are not refused while its first lookup runs.
   */
  joins?: () => boolean,
): Promise<T | undefined> {
  const key = throttle && presented ? throttle.clientKey(c) : undefined;
  if (key === undefined) return check();
  if (joins?.()) {
    throttle!.open(key);
    return check();
  }
  throttle!.begin(key);
  const ok = await check(); // a throw (database down) keeps the token: rare, and refills
  if (ok !== undefined) throttle!.succeeded(key);
  return ok;
}
