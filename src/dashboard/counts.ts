// The per-status numbers at the top of the dashboard: one grouped count over the
// tenant's watches (the (tenant_id, id) index keeps it to the tenant's own rows).
import type { Sql } from '../db/client.js';
import { WATCH_STATUSES } from '../watches/store.js';

export type WatchStatus = (typeof WATCH_STATUSES)[number];
export type StatusCounts = Record<WatchStatus, number> & { total: number };

export async function statusCounts(sql: Sql, tenantId: string): Promise<StatusCounts> {
  const rows = await sql<{ status: string; n: number }[]>`
    select status, count(*)::int as n from watches where tenant_id = ${tenantId} group by status`;
  const counts = Object.fromEntries(WATCH_STATUSES.map((s) => [s, 0])) as StatusCounts;
  counts.total = 0;
  for (const r of rows) {
    if ((WATCH_STATUSES as readonly string[]).includes(r.status)) counts[r.status as WatchStatus] = r.n;
    counts.total += r.n;
  }
  return counts;
}
