// Human-readable output of the client commands: watches, attempts and tenants as a few
// aligned lines or a table. (`--json` prints the gateway's JSON instead.)
import type { WatchView } from '../watches/store.js';
import type { TenantSummary } from '../tenancy/store.js';

export type Watch = WatchView;

export interface Attempt {
  webhook_id: string;
  event_type: string;
  attempted_at: string;
  response_status: number | null;
  duration_ms: number;
  error: string | null;
}

// The admin API's tenant object (GET /v1/admin/tenants), as the server defines it.
export type { TenantSummary };

type Task = Record<string, unknown> & { status?: string; capability?: string; progress?: number | null; error?: { code?: string; message?: string } | null };

export const TERMINAL_WATCH_STATUSES = new Set(['delivered', 'undeliverable', 'cancelled']);

/** Columns padded to their widest cell; the last one is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** The result in a word or two: the URL field of a completed task, or its error. */
export function resultOf(task: Task | null | undefined): string | undefined {
  if (!task) return undefined;
  for (const k of ['audioUrl', 'imageUrl', 'videoUrl']) if (typeof task[k] === 'string') return `${k}=${task[k] as string}`;
  if (task.error && typeof task.error === 'object') return `error ${task.error.code ?? ''}: ${task.error.message ?? ''}`.trim();
  return undefined;
}

function taskPart(task: Task | null): string {
  if (!task) return 'task not polled yet';
  const pct = task.status === 'processing' && typeof task.progress === 'number' ? ` ${Math.round(task.progress * 100)}%` : '';
  return `task ${task.status ?? '?'}${pct}`;
}

function deliveryPart(w: Watch): string | undefined {
  const d = w.last_delivery;
  if (!d) return undefined;
  const http = d.last_response_status !== null ? `, HTTP ${d.last_response_status}` : '';
  const circuit = d.circuit_open_until ? `; callback URL's circuit open until ${d.circuit_open_until}` : '';
  return `webhook ${d.webhook_id} ${d.status} (${d.attempts} attempt${d.attempts === 1 ? '' : 's'}${http})${circuit}`;
}

/** Ended in anything but task.completed: never shown as a plain "delivered". */
const endedBadly = (w: Watch) => w.outcome !== null && w.outcome !== 'task.completed';

/** The status, with the outcome when it is not a completed task: "delivered (watch.failed)". */
function statusWord(w: Watch): string {
  return endedBadly(w) ? `${w.status} (${w.outcome})` : w.status;
}

/** ✓ delivered a completed task · ! delivered another outcome · ✗ not delivered. */
export function endMark(w: Watch): string {
  if (w.status !== 'delivered') return '✗';
  return endedBadly(w) ? '!' : '✓';
}

const pollErrorPart = (w: Watch) => (w.last_poll_error ? `polls failing since ${w.last_poll_error.at}: ${w.last_poll_error.message}` : undefined);

/** One line: where a watch is. The live line of `watch --wait`. */
export function statusLine(w: Watch): string {
  const parts = [w.id, statusWord(w), taskPart(w.task as Task | null), `${w.polls} poll${w.polls === 1 ? '' : 's'}`];
  if (w.eta) parts.push(`eta ${w.eta.p50} (p90 ${w.eta.p90})`);
  const pe = pollErrorPart(w);
  if (pe) parts.push(pe);
  const d = deliveryPart(w);
  if (d) parts.push(d);
  return parts.join(' · ');
}

export function watchDetails(w: Watch): string {
  const task = w.task as Task | null;
  const rows: Array<[string, string | undefined]> = [
    ['status', w.status],
    ['outcome', w.outcome ?? (w.status === 'cancelled' ? 'none (cancelled before the task ended)' : 'not decided yet')],
    ['polls failing', w.last_poll_error ? `${w.last_poll_error.message} (since ${w.last_poll_error.at})` : undefined],
    ['task', `${w.task_id}${task ? ` (${[task.status, task.capability].filter(Boolean).join(', ')})` : ' (not polled yet)'}`],
    ['result', resultOf(task)],
    ['callback', w.callback_url],
    ['events', w.events.join(', ')],
    ['metadata', Object.keys(w.metadata ?? {}).length ? JSON.stringify(w.metadata) : undefined],
    ['polls', String(w.polls)],
    ['next poll', w.next_poll_at ?? undefined],
    ['eta', w.eta ? `${w.eta.p50} (p90 ${w.eta.p90})` : undefined],
    ['last webhook', deliveryPart(w)?.replace(/^webhook /, '')],
    ['created', w.created_at],
    ['updated', w.updated_at],
  ];
  const shown = rows.filter((r): r is [string, string] => r[1] !== undefined);
  const width = Math.max(...shown.map(([k]) => k.length));
  return `${w.id}\n${shown.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')}\n`;
}

export function watchTable(watches: Watch[]): string {
  return table(
    ['ID', 'STATUS', 'OUTCOME', 'TASK', 'CALLBACK', 'UPDATED'],
    watches.map((w) => [w.id, w.last_poll_error ? `${w.status} (polls failing)` : w.status, w.outcome ?? '-', w.task_id, w.callback_url, w.updated_at]),
  );
}

export function attemptTable(attempts: Attempt[]): string {
  if (attempts.length === 0) return 'no delivery attempts yet\n';
  return table(
    ['ATTEMPTED', 'WEBHOOK', 'EVENT', 'HTTP', 'MS', 'ERROR'],
    attempts.map((a) => [a.attempted_at, a.webhook_id, a.event_type, a.response_status === null ? '-' : String(a.response_status), String(a.duration_ms), a.error ?? '']),
  );
}

export function tenantTable(tenants: TenantSummary[]): string {
  return table(
    ['ID', 'NAME', 'UPSTREAM', 'CREATED', 'DISABLED'],
    tenants.map((t) => [t.tenant_id, t.name, t.upstream_base_url, t.created_at, t.disabled_at ?? '-']),
  );
}

/** GET /v1/endpoints' object (src/api/openapi/schemas.ts, endpointSchema). */
export type { Endpoint } from '../api/openapi/schemas.js';
import type { Endpoint } from '../api/openapi/schemas.js';

/** The tenant's callback URLs and their health: failing ones first, as the API orders them. */
export function endpointTable(endpoints: Endpoint[]): string {
  return table(
    ['STATE', 'PENDING', 'NEXT TRY', 'URL', 'LAST ERROR'],
    endpoints.map((e) => [
      e.state === 'circuit_open' ? 'circuit open' : e.state,
      String(e.pending),
      e.circuit_open_until ?? e.next_attempt_at ?? '-',
      e.url,
      e.state === 'healthy' || !e.last_error ? '-' : e.last_error,
    ]),
  );
}
