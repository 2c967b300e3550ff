// The CLI's side of the HTTP API: one request helper that turns every way a call can
// fail (no key, gateway unreachable, a problem+json answer) into a one-line CliError.
// Client commands need nothing but a URL and a key: no config, no database.
import { CliError, usageError } from './errors.js';

export interface Target {
  /** base URL, e.g. http://127.0.0.1:8080 (a path prefix is kept) */
  url: string;
  /** bearer token: the tenant's gateway key or the admin token */
  token: string | undefined;
  kind: 'tenant' | 'admin';
}

export interface Answer<T> {
  status: number;
  json: T;
}

export function baseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(`--url / TASKHOOK_URL must be an http(s) URL (got ${JSON.stringify(url)})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usageError(`--url / TASKHOOK_URL must be an http(s) URL (got ${JSON.stringify(url)})`);
  return u.href.replace(/\/+$/, '');
}

export function bearer(t: Target): string {
  if (!t.token) {
    throw usageError(
      t.kind === 'admin'
        ? 'no admin token: set TASKHOOK_ADMIN_TOKEN or pass --admin-token'
        : 'no gateway key: set TASKHOOK_API_KEY or pass --api-key',
    );
  }
  return `Bearer ${t.token}`;
}

/** Why fetch() threw, in a few words: the cause's code (ECONNREFUSED, ENOTFOUND, …) if there is one. */
export function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  // undici's own codes say less than its message ("other side closed")
  if (cause?.code && !(cause.code.startsWith('UND_ERR') && cause.message)) return cause.code;
  if ((err as Error).name === 'TimeoutError') return 'timed out';
  return cause?.message ?? (err as Error).message ?? String(err);
}

/** The problem+json `detail` of an error answer, else its status. */
export function problemDetail(status: number, text: string): string {
  try {
    const p = JSON.parse(text) as { detail?: unknown; title?: unknown };
    if (typeof p.detail === 'string' && p.detail) return `${p.detail} (HTTP ${status})`;
    if (typeof p.title === 'string' && p.title) return `${p.title} (HTTP ${status})`;
  } catch {
    // not JSON: a proxy's error page, say
  }
  return `the gateway answered HTTP ${status}`;
}

/** An error answer of the gateway: the one line, and its status (for a caller that retries some). */
export class HttpError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly retryAfter: string | null,
  ) {
    super(message);
  }
}

export async function call<T = unknown>(
  t: Target,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
  extraHeaders: Record<string, string> = {},
): Promise<Answer<T>> {
  const base = baseUrl(t.url);
  const headers: Record<string, string> = { ...extraHeaders, authorization: bearer(t), accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new CliError(`cannot reach the gateway at ${base}: ${networkReason(err)}`);
  }
  const text = await res.text();
  if (res.status < 200 || res.status > 299) throw new HttpError(problemDetail(res.status, text), res.status, res.headers.get('retry-after'));
  try {
    return { status: res.status, json: JSON.parse(text) as T };
  } catch {
    throw new CliError(`the gateway answered HTTP ${res.status} with a body that is not JSON`);
  }
}
