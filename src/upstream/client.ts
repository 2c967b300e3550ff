// Speaks the upstream Tasks API (CONTRACT §1): one GET per poll over a keep-alive
// undici pool, every answer classified so the poller never sees a raw exception.
//
// With `addresses` (the gateway always passes them) every connection this client makes
// goes through the upstream address policy (./address-guard.ts): direct connections via
// the pinned agent of src/net/pinned-agent.ts, proxied ones vetted before dispatch. Any
// request sent through `this.agent` — polls, and whatever else is added here — is covered.
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { systemLookupAll } from '../net/address-policy.js';
import { vettingDispatcher } from '../net/callback-proxy.js';
import { createCallbackAgent } from '../net/pinned-agent.js';
import { isDotSegment, trustedOrigins, type UpstreamAddressRules } from './address-guard.js';
import { parseRetryAfter } from './schedule.js';
import { snapshotHashBytes } from '../poller/snapshot-hash.js';

export { checkUpstreamBaseUrl, type UpstreamAddressRules } from './address-guard.js';

export const TERMINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);
const KNOWN_STATUSES = new Set(['pending', 'processing', ...TERMINAL_STATUSES]);
const MAX_BODY_BYTES = 1 << 20;

export type PollResult =
  /** `hash`: snapshot-hash.ts over the answer's bytes, as received */
  | { kind: 'task'; status: string; body: Record<string, unknown>; raw: string; hash?: number }
  | { kind: 'unauthorized' }
  | { kind: 'not_found' }
  | { kind: 'rate_limited'; retryAfterMs: number | undefined }
  | { kind: 'error'; message: string };

/** A 200 with the same bytes as the snapshot stored last (see fetchTask). */
export interface Unchanged {
  kind: 'unchanged';
}
const UNCHANGED: Unchanged = Object.freeze({ kind: 'unchanged' as const });

/**
 * What a submit (POST of a generation request) came to, before any decision: the
 * answer as it came (body capped), or why there is none and whether the request can
 * have reached upstream at all (`sent: false` only when the connection never opened).
 */
export type SubmitResult =
  /** `text` null: the status came but the body did not (cut off, too large, too slow): `readError` says why */
  | { kind: 'answer'; status: number; text: string | null; readError?: string; retryAfter: string | undefined }
  | { kind: 'no_answer'; sent: boolean; message: string };

export interface SubmitRequest {
  /** the path under the base URL, already checked by src/submit/path.ts */
  path: string;
  /** the JSON text to POST */
  body: string;
  userAgent: string;
  timeoutMs: number;
  /** answers larger than this are a failure to read, not a truncation */
  maxAnswerBytes: number;
}

/** Errors raised before a connection exists: the request cannot have reached upstream. */
const NOT_CONNECTED_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** True when `err` certainly happened before any byte of the request was sent. */
export function failedBeforeSending(err: unknown): boolean {
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (code && NOT_CONNECTED_CODES.has(code)) return true;
  // the address policy refusing the upstream's resolved address (src/net/): at lookup, so before connecting
  const name = e?.cause?.name ?? e?.name ?? '';
  return /AddressForbidden/.test(name) || /ADDRESS_FORBIDDEN/.test(code ?? '');
}

export interface UpstreamProxy {
  httpsProxy?: string | undefined;
  httpProxy?: string | undefined;
  /** comma/space list of hosts (and host:port) to reach directly, as curl reads NO_PROXY */
  noProxy?: string | undefined;
}

export interface UpstreamClientOptions {
  timeoutMs?: number;
  connections?: number;
  now?: () => number;
  /** from config (HTTPS_PROXY / HTTP_PROXY / NO_PROXY); none set → direct connections */
  proxy?: UpstreamProxy;
  /** the upstream address policy; unset → no policy (the doctor, which only dials UPSTREAM_BASE_URL) */
  addresses?: UpstreamAddressRules;
}

export class UpstreamClient {
  /** the one dispatcher every request of this client goes through (address policy included) */
  readonly agent: Dispatcher;
  /** connections per upstream origin: the poller runs at most this many polls of one origin at once */
  readonly connections: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  /** per base URL: its origin and path prefix (parsed once, not per poll) */
  private readonly bases = new Map<string, { origin: string; prefix: string } | null>();
  /** per API key: the poll's request headers (built once, not per poll) */
  private readonly pollHeaders = new Map<string, string[]>();

  constructor(opts: UpstreamClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.connections = opts.connections ?? 64;
    const pool = {
      connections: this.connections,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.timeoutMs },
    };
    const p = opts.proxy;
    const rules = opts.addresses;
    const proxied = Boolean(p?.httpProxy || p?.httpsProxy);
    if (rules && !proxied) {
      this.agent = createCallbackAgent({
        kind: 'upstream',
        policy: rules.policy,
        lookupAll: rules.lookupAll,
        trusted: trustedOrigins(rules),
        connectTimeoutMs: this.timeoutMs,
        connections: pool.connections,
        keepAliveTimeoutMs: pool.keepAliveTimeout,
      });
      return;
    }
    const base: Dispatcher =
      p && proxied
        ? new EnvHttpProxyAgent({
            ...pool,
            // Explicit '' rather than undefined: EnvHttpProxyAgent would otherwise fall
            // back to process.env, and the config is the only reader of the environment.
            httpProxy: p.httpProxy ?? '',
            httpsProxy: p.httpsProxy ?? '',
            noProxy: p.noProxy ?? '',
            // the connect timeout for the hop to the proxy itself
            proxyTls: { timeout: this.timeoutMs },
          })
        : new Agent(pool);
    // Through a proxy we don't dial, so the host is vetted before each request (the proxy
    // resolves again after us; the README's Security section says so).
    this.agent = rules
      ? vettingDispatcher(base, {
          policy: rules.policy,
          lookupAll: rules.lookupAll ?? systemLookupAll,
          timeoutMs: this.timeoutMs,
          kind: 'upstream',
          skip: trustedOrigins(rules),
        })
      : base;
  }

  /**
   * One poll. With `unchangedHash` (the hash of the snapshot stored last, a non-terminal
   * one), a 200 whose raw bytes hash the same is `unchanged` — not even parsed.
   */
  async fetchTask(baseUrl: string, apiKey: string | undefined, taskId: string): Promise<PollResult>;
  async fetchTask(baseUrl: string, apiKey: string | undefined, taskId: string, unchangedHash: number | undefined): Promise<PollResult | Unchanged>;
  async fetchTask(baseUrl: string, apiKey: string | undefined, taskId: string, unchangedHash?: number): Promise<PollResult | Unchanged> {
    // Refused at registration too (422); a row written before that rule must not rewrite the path.
    if (isDotSegment(taskId)) return { kind: 'error', message: `task_id ${JSON.stringify(taskId)} is a path segment, not a task id` };
    const base = this.base(baseUrl);
    if (!base) return { kind: 'error', message: `upstream base URL ${JSON.stringify(baseUrl)} is not a URL` };
    let res: RawAnswer;
    try {
      res = await getCapped(this.agent, base.origin, `${base.prefix}/api/v2/tasks/${encodeURIComponent(taskId)}`, this.headersFor(apiKey), this.timeoutMs, MAX_BODY_BYTES);
    } catch (err) {
      return { kind: 'error', message: describeError(err) };
    }
    switch (res.status) {
      case 200: {
        // hashed as bytes, before decoding: an unchanged answer is neither decoded nor parsed
        const hash = snapshotHashBytes(res.body);
        if (unchangedHash !== undefined && hash === unchangedHash) return UNCHANGED;
        const parsed = parseTask(res.body.toString('utf8'), taskId);
        if (parsed.kind === 'task') parsed.hash = hash;
        return parsed;
      }
      case 401:
        return { kind: 'unauthorized' };
      case 404:
        return { kind: 'not_found' };
      case 429:
        return { kind: 'rate_limited', retryAfterMs: parseRetryAfter(res.retryAfter, this.now()) };
      default:
        return { kind: 'error', message: `upstream answered HTTP ${res.status}` };
    }
  }

  /** The origin a poll of `baseUrl` goes to (the string itself when it is not a URL). */
  originOf(baseUrl: string): string {
    return this.base(baseUrl)?.origin ?? baseUrl;
  }

  private base(baseUrl: string): { origin: string; prefix: string } | null {
    let b = this.bases.get(baseUrl);
    if (b === undefined) {
      try {
        const u = new URL(baseUrl);
        b = { origin: u.origin, prefix: u.pathname.replace(/\/+$/, '') };
      } catch {
        b = null;
      }
      if (this.bases.size > 10_000) this.bases.clear();
      this.bases.set(baseUrl, b);
    }
    return b;
  }

  private headersFor(apiKey: string | undefined): string[] {
    const key = apiKey ?? '';
    let h = this.pollHeaders.get(key);
    if (!h) {
      h = apiKey ? ['accept', 'application/json', 'authorization', `Bearer ${apiKey}`] : ['accept', 'application/json'];
      if (this.pollHeaders.size > 10_000) this.pollHeaders.clear();
      this.pollHeaders.set(key, h);
    }
    return h;
  }

  /**
   * POSTs a generation request (a submit through taskhook, POST /v1/tasks) to
   * `{baseUrl}{path}` over the same pool, proxy and connection policy as the polls.
   * Sends exactly content-type, authorization (the tenant's upstream key) and
   * user-agent: nothing of the client's request but the body.
   */
  async submitTask(baseUrl: string, apiKey: string | undefined, r: SubmitRequest): Promise<SubmitResult> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': r.userAgent };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${baseUrl}${r.path}`, {
        method: 'POST',
        headers,
        body: r.body,
        dispatcher: this.agent,
        headersTimeout: r.timeoutMs,
        bodyTimeout: r.timeoutMs,
        signal: AbortSignal.timeout(r.timeoutMs),
      });
    } catch (err) {
      return { kind: 'no_answer', sent: !failedBeforeSending(err), message: describeError(err) };
    }
    const ra = res.headers['retry-after'];
    const retryAfter = Array.isArray(ra) ? ra[0] : ra;
    try {
      return { kind: 'answer', status: res.statusCode, text: await readCapped(res.body, r.maxAnswerBytes), retryAfter };
    } catch (err) {
      return { kind: 'answer', status: res.statusCode, text: null, readError: describeError(err), retryAfter };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  destroy(): Promise<void> {
    return this.agent.destroy();
  }
}

function parseTask(text: string, taskId: string): PollResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: 'error', message: 'upstream answered malformed JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { kind: 'error', message: 'upstream answered a non-object body' };
  }
  const status = (body as Record<string, unknown>).status;
  if (typeof status !== 'string' || !KNOWN_STATUSES.has(status)) {
    return { kind: 'error', message: `upstream answered an unknown status ${JSON.stringify(status)}` };
  }
  const id = (body as Record<string, unknown>).task_id;
  if (id !== undefined && id !== taskId) {
    return { kind: 'error', message: 'upstream answered for a different task_id' };
  }
  return { kind: 'task', status, body: body as Record<string, unknown>, raw: text };
}

interface RawAnswer {
  status: number;
  retryAfter: string | undefined;
  body: Buffer;
}

class TimedOut extends Error {
  override name = 'TimeoutError';
}

/**
 * One GET as a raw undici dispatch: the status, Retry-After and at most `limit` bytes of
 * body (a larger body is an error, not a truncation), with no response stream, request
 * signal or timer of its own — the per-poll cost that mattered (bench/README.md). The
 * deadline: undici's headers and body timeouts, plus `timeoutMs` from the start checked on
 * every chunk (a body trickling in under the idle timeout still ends in time).
 */
function getCapped(agent: Dispatcher, origin: string, path: string, headers: string[], timeoutMs: number, limit: number): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let status = 0;
    let retryAfter: string | undefined;
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      reject(err);
    };
    agent.dispatch(
      { origin, path, method: 'GET', headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
      {
        onRequestStart() {},
        onResponseStart(_controller, statusCode, h) {
          status = statusCode;
          const ra = h['retry-after'];
          retryAfter = Array.isArray(ra) ? ra[0] : ra;
        },
        onResponseData(controller, chunk) {
          size += chunk.length;
          if (size > limit) {
            fail(new Error(`body larger than ${limit} bytes`));
            controller.abort(new Error('body too large'));
            return;
          }
          if (performance.now() - started > timeoutMs) {
            fail(new TimedOut('timed out'));
            controller.abort(new TimedOut('timed out'));
            return;
          }
          if (first === undefined) first = chunk;
          else (chunks ??= [first]).push(chunk);
        },
        onResponseEnd() {
          if (done) return;
          done = true;
          resolve({ status, retryAfter, body: chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)) });
        },
        onResponseError(_controller, err) {
          fail(err);
        },
      },
    );
  });
}

/** Reads at most `limit` bytes of a body; a larger body is an error, not a truncation. */
export async function readCapped(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new Error(`body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function describeError(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT') return 'timed out';
  const code = e?.code ?? e?.cause?.code;
  const message = e?.message ?? e?.cause?.message ?? String(err);
  return code ? `${code}: ${message}` : message;
}
