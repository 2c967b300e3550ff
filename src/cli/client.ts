// The client commands: talk to a running gateway over its HTTP API with a tenant's
// key (or the admin token), print what it answered (human-readable, or its JSON with
// --json) and return the exit code.
import { usageError } from './errors.js';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CliError } from './errors.js';
import { call, HttpError, type Target } from './http.js';
import { attemptTable, statusLine, tenantTable, watchDetails, watchTable, type Attempt, type TenantSummary, type Watch } from './format.js';
import { waitForWatch } from './wait.js';

export interface Io {
  out: NodeJS.WriteStream;
  json: boolean;
}

const print = (io: Io, human: string, json: unknown) => io.out.write(io.json ? `${JSON.stringify(json, null, 2)}\n` : human);
const path = (id: string) => `/v1/watches/${encodeURIComponent(id)}`;

/** "30s", "5m", "1h", "250ms" or plain seconds → ms. */
export function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw usageError(`expected a duration like 30s, 5m or 1h (got ${JSON.stringify(text)})`);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms']);
}

export function jsonObject(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw usageError(`--metadata must be a JSON object, like '{"order":42}'`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw usageError(`--metadata must be a JSON object, like '{"order":42}'`);
  return v as Record<string, unknown>;
}

export async function watch(
  t: Target,
  io: Io,
  taskId: string,
  o: { callback: string; metadata?: string; events?: string; wait?: boolean; timeout?: string; interval?: string },
): Promise<number> {
  const body: Record<string, unknown> = { task_id: taskId, callback_url: o.callback };
  if (o.metadata !== undefined) body.metadata = jsonObject(o.metadata);
  if (o.events !== undefined) body.events = o.events.split(',').map((e) => e.trim()).filter(Boolean);
  const timeoutMs = o.timeout === undefined ? undefined : duration(o.timeout);
  const intervalMs = o.interval === undefined ? 500 : Math.max(100, duration(o.interval));
  const { status, json: w } = await call<Watch>(t, 'POST', '/v1/watches', body);
  if (!o.wait) {
    print(io, `${status === 201 ? 'registered' : 'already registered'} ${w.id}: task ${w.task_id} → ${w.callback_url} (${w.status})\n`, w);
    return 0;
  }
  if (!io.json) io.out.write(`${status === 201 ? 'registered' : 'already registered'} ${w.id}: task ${w.task_id} → ${w.callback_url}\n`);
  return waitForWatch(t, w, { intervalMs, timeoutMs, json: io.json, out: io.out });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** --body: inline JSON, or @file.json (@- for stdin); must be a JSON object. */
async function readBody(spec: string): Promise<Record<string, unknown>> {
  let text = spec;
  if (spec.startsWith('@')) {
    const file = spec.slice(1);
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      throw usageError(`--body ${spec}: cannot read ${file === '-' ? 'stdin' : file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw usageError(`--body must be a JSON object, inline or @file.json (${spec.startsWith('@') ? `${spec.slice(1)} is not JSON` : 'not JSON'})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw usageError('--body must be a JSON object, inline or @file.json');
  return v as Record<string, unknown>;
}

/** How long `submit` keeps retrying while the gateway answers 409 (the same key still in flight). */
const SUBMIT_IN_FLIGHT_RETRY_MS = 60_000;

export async function submit(
  t: Target,
  io: Io,
  upstreamPath: string,
  o: { body: string; callback: string; metadata?: string; events?: string; idempotencyKey?: string; wait?: boolean; timeout?: string; interval?: string },
): Promise<number> {
  const body: Record<string, unknown> = { submit: { path: upstreamPath, body: await readBody(o.body) }, callback_url: o.callback };
  if (o.metadata !== undefined) body.metadata = jsonObject(o.metadata);
  if (o.events !== undefined) body.events = o.events.split(',').map((e) => e.trim()).filter(Boolean);
  const timeoutMs = o.timeout === undefined ? undefined : duration(o.timeout);
  const intervalMs = o.interval === undefined ? 500 : Math.max(100, duration(o.interval));
  const key = o.idempotencyKey ?? randomUUID();
  // One key for every try of this command: a retry (409 while the first try is in flight)
  // can only ever get the first try's answer, never a second upstream task.
  const until = Date.now() + SUBMIT_IN_FLIGHT_RETRY_MS;
  let answer: { task_id: string; upstream: Record<string, unknown>; watch: Watch };
  for (;;) {
    try {
      answer = (await call<typeof answer>(t, 'POST', '/v1/tasks', body, 60_000, { 'idempotency-key': key })).json;
      break;
    } catch (err) {
      if (err instanceof HttpError && err.status === 409 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, Math.min(5, Number(err.retryAfter) || 1) * 1000));
        continue;
      }
      // the key lets the user ask again without risking a second upstream task
      if (err instanceof CliError) throw new CliError(`${err.message}; Idempotency-Key ${key} (retry with --idempotency-key ${key})`, err.exitCode);
      throw err;
    }
  }
  const w = answer.watch;
  const kind = [answer.upstream.capability, answer.upstream.action, answer.upstream.model].filter((x) => typeof x === 'string').join(' ');
  const line = `submitted ${upstreamPath} → task ${answer.task_id}${kind ? ` (${kind})` : ''}; watch ${w.id} → ${w.callback_url}`;
  if (!o.wait) {
    print(io, `${line} (${w.status})\n`, answer);
    return 0;
  }
  if (!io.json) io.out.write(`${line}\n`);
  return waitForWatch(t, w, { intervalMs, timeoutMs, json: io.json, out: io.out });
}

export async function list(t: Target, io: Io, o: { status?: string; taskId?: string; limit?: string; cursor?: string; all?: boolean }): Promise<number> {
  const limit = o.limit ?? '20';
  if (!/^\d+$/.test(limit)) throw usageError(`--limit must be a whole number (got ${JSON.stringify(limit)})`);
  const data: Watch[] = [];
  let cursor = o.cursor;
  let next: string | null = null;
  for (;;) {
    const q = new URLSearchParams({ limit });
    if (o.status) q.set('status', o.status);
    if (o.taskId) q.set('task_id', o.taskId);
    if (cursor) q.set('cursor', cursor);
    const page = (await call<{ data: Watch[]; next_cursor: string | null }>(t, 'GET', `/v1/watches?${q}`)).json;
    data.push(...page.data);
    next = page.next_cursor;
    if (!o.all || !next) break;
    cursor = next;
  }
  const more = next ? `more: taskhook list --cursor ${next}${o.status ? ` --status ${o.status}` : ''}\n` : '';
  print(io, data.length === 0 ? 'no watches\n' : watchTable(data) + more, { data, next_cursor: next });
  return 0;
}

export async function get(t: Target, io: Io, id: string, o: { deliveries?: boolean }): Promise<number> {
  const w = (await call<Watch>(t, 'GET', path(id))).json;
  if (!o.deliveries) {
    print(io, watchDetails(w), w);
    return 0;
  }
  const attempts = (await call<{ data: Attempt[] }>(t, 'GET', `${path(id)}/deliveries`)).json.data;
  print(io, `${watchDetails(w)}\n${attemptTable(attempts)}`, { ...w, deliveries: attempts });
  return 0;
}

export async function cancel(t: Target, io: Io, id: string): Promise<number> {
  const w = (await call<Watch>(t, 'DELETE', path(id))).json;
  print(io, w.status === 'cancelled' ? `cancelled ${w.id} (task ${w.task_id})\n` : `${w.id} had already ended ${w.status}; nothing to cancel\n`, w);
  return 0;
}

export async function redeliver(t: Target, io: Io, id: string): Promise<number> {
  const w = (await call<Watch>(t, 'POST', `${path(id)}/redeliver`)).json;
  const hook = w.last_delivery ? ` webhook ${w.last_delivery.webhook_id} (same webhook-id)` : '';
  print(io, `queued${hook} for redelivery to ${w.callback_url}\n  ${statusLine(w)}\n`, w);
  return 0;
}

export async function tenantCreate(
  t: Target,
  io: Io,
  name: string,
  o: { upstreamKey: string; upstreamUrl?: string; apiRate?: string; maxWatches?: string; maxPolls?: string },
): Promise<number> {
  const num = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (v === 'unlimited') return null;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw usageError(`${flag} must be a positive number or "unlimited" (got ${JSON.stringify(v)})`);
    return n;
  };
  const limits = Object.fromEntries(
    Object.entries({ api_rate_per_s: num('--api-rate', o.apiRate), max_active_watches: num('--max-watches', o.maxWatches), max_polls_per_s: num('--max-polls', o.maxPolls) }).filter(
      ([, v]) => v !== undefined,
    ),
  );
  const body: Record<string, unknown> = { name, upstream_api_key: o.upstreamKey };
  if (o.upstreamUrl) body.upstream_base_url = o.upstreamUrl;
  if (Object.keys(limits).length) body.limits = limits;
  const c = (await call<{ tenant_id: string; name: string; api_key: string; signing_secret: string }>(t, 'POST', '/v1/admin/tenants', body)).json;
  print(
    io,
    `created tenant ${c.tenant_id} (${c.name}); its credentials are shown once, store them now:\n  TASKHOOK_API_KEY=${c.api_key}\n  TASKHOOK_SIGNING_SECRET=${c.signing_secret}\n`,
    c,
  );
  return 0;
}

export async function tenantList(t: Target, io: Io): Promise<number> {
  const { data } = (await call<{ data: TenantSummary[] }>(t, 'GET', '/v1/admin/tenants')).json;
  print(io, data.length === 0 ? 'no tenants\n' : tenantTable(data), { data });
  return 0;
}

export async function tenantDisable(t: Target, io: Io, id: string): Promise<number> {
  const s = (await call<TenantSummary>(t, 'POST', `/v1/admin/tenants/${encodeURIComponent(id)}/disable`)).json;
  print(io, `disabled ${s.tenant_id} (${s.name}) at ${s.disabled_at}: its key no longer works and its tasks are no longer polled\n`, s);
  return 0;
}

export async function rotateSecret(t: Target, io: Io): Promise<number> {
  const r = (await call<{ signing_secret: string; previous_secret_expires_at: string }>(t, 'POST', '/v1/tenant/signing-secret/rotate')).json;
  print(
    io,
    `new signing secret (shown once, store it now):\n  TASKHOOK_SIGNING_SECRET=${r.signing_secret}\nwebhooks carry signatures by both the new and the previous secret until ${r.previous_secret_expires_at}\n`,
    r,
  );
  return 0;
}

