// Speaks the upstream Tasks API (CONTRACT §1): one GET per poll over a keep-alive
// undici pool, every answer classified so the poller never sees a raw exception.
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { parseRetryAfter } from './schedule.js';

export const TERMINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);
const KNOWN_STATUSES = new Set(['pending', 'processing', ...TERMINAL_STATUSES]);
const MAX_BODY_BYTES = 1 << 20;

export type PollResult =
  | { kind: 'task'; status: string; body: Record<string, unknown>; raw: string }
  | { kind: 'unauthorized' }
  | { kind: 'not_found' }
  | { kind: 'rate_limited'; retryAfterMs: number | undefined }
  | { kind: 'error'; message: string };

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
}

export class UpstreamClient {
  private readonly agent: Dispatcher;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(opts: UpstreamClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    const pool = {
      connections: opts.connections ?? 64,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.timeoutMs },
    };
    const p = opts.proxy;
    this.agent =
      p?.httpProxy || p?.httpsProxy
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
  }

  async fetchTask(baseUrl: string, apiKey: string | undefined, taskId: string): Promise<PollResult> {
    const url = `${baseUrl}/api/v2/tasks/${encodeURIComponent(taskId)}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    try {
      const res = await request(url, {
        method: 'GET',
        headers,
        dispatcher: this.agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await readCapped(res.body, MAX_BODY_BYTES);
      switch (res.statusCode) {
        case 200:
          return parseTask(text, taskId);
        case 401:
          return { kind: 'unauthorized' };
        case 404:
          return { kind: 'not_found' };
        case 429:
          return { kind: 'rate_limited', retryAfterMs: parseRetryAfter(res.headers['retry-after'], this.now()) };
        default:
          return { kind: 'error', message: `upstream answered HTTP ${res.statusCode}` };
      }
    } catch (err) {
      return { kind: 'error', message: describeError(err) };
    }
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
