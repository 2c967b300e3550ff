// Connect-time half of the outbound address policy: an undici dispatcher for
// webhook delivery (and, with `kind: 'upstream'`, for tenants' upstream polls —
// src/upstream/client.ts) whose sockets can only ever reach vetted addresses.
//
// Owns: the pinned DNS lookup handed to net/tls.connect, the IP-literal check
// wrapped around undici's connector, and the ERR_CALLBACK_ADDRESS_FORBIDDEN
// error. The registration-time check (checkCallbackUrl) is not enough on its
// own: DNS answers change between registration and delivery (DNS rebinding),
// so the address is vetted again here, at the one place that dials.
//
// Why a custom `lookup` and not "resolve, check, then connect to the name":
// net.connect would resolve the name a second time, and that second answer is
// the one that gets dialled. Here the lookup *is* the check — net.connect only
// ever sees addresses the policy allowed, so there is no window to rebind.
//
// Redirects are not followed (CONTRACT §4): undici's request()/fetch-less
// dispatch does not follow them unless the redirect interceptor is composed
// in, which this module deliberately does not do. A 3xx is just a non-2xx
// response to the deliverer. Don't add the interceptor: a redirect would be a
// way to steer a delivery to an unvetted URL.

import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import type { AddressPolicy, LookupAll } from './address-policy.js';
import { classifyIp, systemLookupAll, unbracketHost } from './address-policy.js';

export const ERR_CALLBACK_ADDRESS_FORBIDDEN = 'ERR_CALLBACK_ADDRESS_FORBIDDEN';
export const ERR_UPSTREAM_ADDRESS_FORBIDDEN = 'ERR_UPSTREAM_ADDRESS_FORBIDDEN';

/** Who is dialling: named in the error, so a delivery log and a poll error say which policy refused. */
export type OutboundKind = 'callback' | 'upstream';

export class CallbackAddressForbiddenError extends Error {
  readonly code: string;
  /** the refused addresses, for delivery logs */
  readonly addresses: string[];

  constructor(hostname: string, addresses: string[], kind: OutboundKind = 'callback') {
    const detail = addresses.map((a) => `${a} (${classifyIp(a)})`).join(', ');
    super(
      addresses.length === 0
        ? `${kind} host ${hostname} resolved to no addresses that may be connected to`
        : `${kind} host ${hostname} resolves only to forbidden addresses: ${detail}`,
    );
    this.name = 'CallbackAddressForbiddenError';
    this.code = kind === 'callback' ? ERR_CALLBACK_ADDRESS_FORBIDDEN : ERR_UPSTREAM_ADDRESS_FORBIDDEN;
    this.addresses = addresses;
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for net.connect/tls.connect that resolves through `lookupAll`
 * and answers with allowed addresses only. Node calls it with
 * `options.all === true` when autoSelectFamily (happy eyeballs, default on in
 * Node 20) is active and expects an array; otherwise one address + family.
 */
export function createPinnedLookup(policy: AddressPolicy, lookupAll: LookupAll = systemLookupAll, kind: OutboundKind = 'callback') {
  return function pinnedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
    const wantFamily = familyOf(options.family);
    lookupAll(hostname).then(
      (answers) => {
        const seen = new Set<string>();
        const allowed: LookupAddress[] = [];
        const refused: string[] = [];
        for (const { address, family } of answers) {
          if (seen.has(address)) continue;
          seen.add(address);
          if (wantFamily !== 0 && family !== wantFamily) continue;
          if (policy.isAllowedIp(address, hostname)) allowed.push({ address, family });
          else refused.push(address);
        }
        const first = allowed[0];
        if (first === undefined) {
          callback(new CallbackAddressForbiddenError(hostname, refused, kind), options.all === true ? [] : '');
          return;
        }
        if (options.all === true) callback(null, allowed);
        else callback(null, first.address, first.family);
      },
      (err: unknown) => {
        // Keep resolver errors (ENOTFOUND, EAI_AGAIN…) as they are: the
        // deliverer treats them as retryable, unlike a forbidden address.
        const e: NodeJS.ErrnoException = err instanceof Error ? err : new Error(String(err));
        callback(e, options.all === true ? [] : '');
      },
    );
  };
}

function familyOf(f: LookupOptions['family']): 0 | 4 | 6 {
  if (f === 4 || f === 'IPv4') return 4;
  if (f === 6 || f === 'IPv6') return 6;
  return 0;
}

/** What undici hands a connector: enough to tell which origin is being dialled. */
export interface ConnectTarget {
  protocol: string;
  hostname: string;
  port: string;
}

export interface CallbackAgentOptions {
  policy: AddressPolicy;
  lookupAll?: LookupAll;
  connectTimeoutMs: number;
  connections?: number;
  keepAliveTimeoutMs?: number;
  /** names the policy in errors; default 'callback' */
  kind?: OutboundKind;
  /**
   * Origins the operator configured themselves (the deployment's UPSTREAM_BASE_URL):
   * dialled with the system resolver, no policy. Tenants' targets never are.
   */
  trusted?: (target: ConnectTarget) => boolean;
}

/** The undici dispatcher every webhook delivery (and every tenant-chosen upstream poll) must go through. */
export function createCallbackAgent(opts: CallbackAgentOptions): Agent {
  const { policy } = opts;
  const kind = opts.kind ?? 'callback';
  const connector = buildConnector({
    timeout: opts.connectTimeoutMs,
    lookup: createPinnedLookup(policy, opts.lookupAll ?? systemLookupAll, kind),
  });
  const plain = opts.trusted ? buildConnector({ timeout: opts.connectTimeoutMs }) : connector;

  // Node skips `lookup` entirely when the host is an IP literal, so the
  // pinned lookup never sees http://127.0.0.1/ — check literals here.
  // (undici already strips the [] from IPv6 hostnames; unbracket anyway.)
  const guarded: buildConnector.connector = (options, callback) => {
    if (opts.trusted?.({ protocol: options.protocol, hostname: options.hostname, port: String(options.port ?? '') })) {
      plain(options, callback);
      return;
    }
    const host = unbracketHost(options.hostname);
    if (isIP(host) !== 0 && !policy.isAllowedIp(host)) {
      const err = new CallbackAddressForbiddenError(host, [host], kind);
      // undici expects the callback asynchronously, like a real connect.
      process.nextTick(() => callback(err, null));
      return;
    }
    connector(options, callback);
  };

  return new Agent({
    connect: guarded,
    ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
    ...(opts.keepAliveTimeoutMs !== undefined ? { keepAliveTimeout: opts.keepAliveTimeoutMs } : {}),
  });
}
