// `taskhook doctor`: checks a deployment's surroundings from where it runs — the
// database and its migrations, the upstream with the configured key (through the
// configured proxy), the clock against the database — and summarises what the
// callback policy lets through. Prints one line per check; any ✗ means exit 1.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { pendingMigrations } from './db/migrate.js';
import type { PrivateAllowance } from './net/address-policy.js';
import { UpstreamClient } from './upstream/client.js';

export type CheckStatus = 'ok' | 'fail' | 'skip';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

/** Database clock vs ours beyond this fails: leases, retries and webhook timestamps mix both clocks. */
export const MAX_CLOCK_SKEW_MS = 2000;
const STEP_TIMEOUT_MS = 15_000;

export interface DoctorOptions {
  log?: (msg: string) => void;
  now?: () => number;
}

export async function runDoctor(cfg: Config, opts: DoctorOptions = {}): Promise<Check[]> {
  const now = opts.now ?? Date.now;
  const checks: Check[] = [];
  let db: Database | undefined;
  try {
    db = await withTimeout(openDatabase(cfg, opts.log ?? (() => {}), { max: 2 }), STEP_TIMEOUT_MS, 'opening the database');
    const [row] = await withTimeout(db.sql<{ v: string }[]>`select current_setting('server_version') as v`, STEP_TIMEOUT_MS, 'connecting');
    checks.push({ name: 'database', status: 'ok', detail: `PostgreSQL ${row?.v ?? '?'} at ${where(db.url)}` });
  } catch (err) {
    checks.push({ name: 'database', status: 'fail', detail: `unreachable: ${message(err)}` });
    await db?.close().catch(() => {});
    db = undefined;
  }

  try {
    if (!db) {
      checks.push({ name: 'migrations', status: 'skip', detail: 'not checked: no database connection' });
      checks.push({ name: 'clock skew', status: 'skip', detail: 'not checked: no database connection' });
    } else {
      checks.push(await migrationsCheck(db));
      checks.push(await clockCheck(db, now));
    }
  } finally {
    await db?.close().catch(() => {});
  }

  checks.push(await upstreamCheck(cfg));
  checks.push({ name: 'callbacks', status: 'ok', detail: describeAllowance(cfg.allowPrivateCallbacks) });
  checks.push(await proxiesCheck(cfg));
  return checks;
}

async function migrationsCheck(db: Database): Promise<Check> {
  try {
    const pending = await withTimeout(pendingMigrations(db.sql), STEP_TIMEOUT_MS, 'reading migrations');
    return pending === 0
      ? { name: 'migrations', status: 'ok', detail: 'all applied' }
      : { name: 'migrations', status: 'fail', detail: `${pending} migration(s) pending: run \`taskhook migrate\`` };
  } catch (err) {
    return { name: 'migrations', status: 'fail', detail: message(err) };
  }
}

async function clockCheck(db: Database, now: () => number): Promise<Check> {
  try {
    const before = now();
    const [row] = await withTimeout(db.sql<{ t: Date }[]>`select now() as t`, STEP_TIMEOUT_MS, 'reading the database clock');
    const after = now();
    // Compare with the middle of the round trip: the query ran somewhere in it.
    const skew = Math.round(row!.t.getTime() - (before + after) / 2);
    const shown = `${skew >= 0 ? '+' : ''}${skew} ms`;
    return Math.abs(skew) > MAX_CLOCK_SKEW_MS
      ? { name: 'clock skew', status: 'fail', detail: `database clock is ${shown} off ours (limit ±${MAX_CLOCK_SKEW_MS / 1000} s): sync both with NTP` }
      : { name: 'clock skew', status: 'ok', detail: `${shown} against the database (limit ±${MAX_CLOCK_SKEW_MS / 1000} s)` };
  } catch (err) {
    return { name: 'clock skew', status: 'fail', detail: message(err) };
  }
}

/** One GET of a task id that cannot exist: 404 means reachable and the key accepted; 401 means the key is not. */
async function upstreamCheck(cfg: Config): Promise<Check> {
  const client = new UpstreamClient({ timeoutMs: cfg.upstreamTimeoutMs, connections: 1, proxy: cfg.upstreamProxy });
  const base = cfg.upstreamBaseUrl;
  try {
    const r = await client.fetchTask(base, cfg.upstreamApiKey, `taskhook-doctor-${randomBytes(6).toString('hex')}`);
    const keyless = cfg.upstreamApiKey === undefined;
    switch (r.kind) {
      case 'not_found':
      case 'task':
        return { name: 'upstream', status: 'ok', detail: `${base} reachable${keyless ? '' : ', key accepted'}` };
      case 'unauthorized':
        return keyless
          ? { name: 'upstream', status: 'ok', detail: `${base} reachable; UPSTREAM_API_KEY not set, no key checked` }
          : { name: 'upstream', status: 'fail', detail: `upstream rejected the key (HTTP 401 from ${base})` };
      case 'rate_limited':
        return { name: 'upstream', status: 'fail', detail: `${base} answered 429 (rate limited): key not verified, try again` };
      case 'error':
        return { name: 'upstream', status: 'fail', detail: `${base}: ${r.message}` };
    }
  } finally {
    await client.destroy().catch(() => {});
  }
}

export function describeAllowance(a: PrivateAllowance): string {
  if (a.all) return 'public addresses and every private range (cloud metadata still refused unless listed)';
  const listed = [...a.cidrs.map(([addr, bits]) => `${addr.toString()}/${bits}`), ...a.hostnames];
  return listed.length === 0
    ? 'public addresses only (loopback, private, link-local, metadata refused)'
    : `public addresses, plus private: ${listed.join(', ')}`;
}

async function proxiesCheck(cfg: Config): Promise<Check> {
  const p = cfg.upstreamProxy;
  const parts: string[] = [];
  if (p.httpsProxy) parts.push(`upstream https via ${redact(p.httpsProxy)}`);
  if (p.httpProxy) parts.push(`upstream http${p.httpsProxy ? '' : '(s)'} via ${redact(p.httpProxy)}`);
  if (parts.length > 0 && p.noProxy) parts.push(`except NO_PROXY ${p.noProxy}`);
  if (!cfg.callbackProxy) {
    parts.push('callbacks direct');
    return { name: 'proxies', status: 'ok', detail: parts.join('; ') };
  }
  const shown = redact(cfg.callbackProxy);
  try {
    await tcpProbe(cfg.callbackProxy, 5000);
    parts.push(`callbacks via ${shown} (reachable)`);
    return { name: 'proxies', status: 'ok', detail: parts.join('; ') };
  } catch (err) {
    parts.push(`callback proxy ${shown} unreachable: ${message(err)}`);
    return { name: 'proxies', status: 'fail', detail: parts.join('; ') };
  }
}

function tcpProbe(url: string, timeoutMs: number): Promise<void> {
  const u = new URL(url);
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error('timed out'));
    });
    socket.once('error', reject);
  });
}

/** scheme://host:port of a URL, without credentials or path. */
function redact(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

/** host:port/dbname of a connection string, without credentials. */
function where(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname}`;
}

function message(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const text = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  return typeof e?.code === 'string' && !text.includes(e.code) ? `${e.code}: ${text}` : text;
}

function withTimeout<T>(p: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([Promise.resolve(p), timeout]).finally(() => clearTimeout(timer));
}

const MARK: Record<CheckStatus, string> = { ok: '✓', fail: '✗', skip: '–' };

/** The table `taskhook doctor` prints. */
export function formatChecks(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const failed = checks.filter((c) => c.status === 'fail').length;
  const lines = checks.map((c) => `  ${MARK[c.status]} ${c.name.padEnd(width)}  ${c.detail}`);
  lines.push(failed === 0 ? 'all checks passed' : `${failed} check(s) failed`);
  return `taskhook doctor\n${lines.join('\n')}\n`;
}
