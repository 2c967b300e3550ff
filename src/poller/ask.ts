// Asking upstream about one owned task, or why not: the tenant gone, its upstream paused
// (a breaker per tenant: a 429 or a run of errors), or over its polls/s. Records what the
// poll came to (metrics, the poll-error log, the tenant's upstream health); the decision
// is decide.ts's.
import type { Sql } from '../db/client.js';
import type { DurationCache } from '../durations/cache.js';
import { Breaker, overranDeadline } from '../engine/breaker.js';
import { TokenBuckets } from '../engine/token-bucket.js';
import type { Logger } from '../log.js';
import type { Metrics, PollOutcome } from '../metrics.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import { TERMINAL_STATUSES, type PollResult, type UpstreamClient } from '../upstream/client.js';
import type { Answer } from './decide.js';
import type { Owned } from './ownership.js';
import { PollErrorLog, pollErrorOf } from './poll-error.js';
import { deferTenant } from './sql.js';

export interface AskOptions {
  sql: Sql;
  tenants: TenantDirectory;
  upstream: UpstreamClient;
  log: Logger;
  metrics?: Metrics | undefined;
  durations?: Pick<DurationCache, 'prepare'> | undefined;
  pollScale?: number | undefined;
  /** the upstream request deadline (a failure that overran it by far: this process was paused) */
  requestTimeoutMs?: number | undefined;
  random: () => number;
  now: () => number;
}

const pollOutcome = (r: PollResult | { kind: 'unchanged' }): PollOutcome =>
  r.kind === 'unchanged' ? 'running' : r.kind === 'task' ? (TERMINAL_STATUSES.has(r.status) ? 'terminal' : 'running') : r.kind;

export function createAsker(o: AskOptions): (task: Owned) => Promise<Answer> {
  const { log, metrics, now, random } = o;
  const scale = o.pollScale ?? 1;
  const pollBuckets = new TokenBuckets();
  const breaker = new Breaker({ threshold: 5, baseOpenMs: 5_000 * scale, maxOpenMs: 300_000 });
  const pollErrors = new PollErrorLog(log, now);

  async function trackUpstreamHealth(tenantId: string, result: PollResult | { kind: 'unchanged' }) {
    const defer = async (ms: number) => {
      const moved = await deferTenant(o.sql, tenantId, ms);
      log.warn({ tenant: tenantId, pause_ms: Math.round(ms), tasks: moved }, 'pausing polls for tenant');
    };
    if (result.kind === 'rate_limited') {
      const ms = result.retryAfterMs ?? 5_000 * scale;
      if (breaker.block(tenantId, now(), ms)) await defer(ms);
    } else if (result.kind === 'error') {
      const ms = breaker.failure(tenantId, now());
      if (ms > 0) await defer(ms);
    } else {
      breaker.success(tenantId);
    }
  }

  return async function ask(task: Owned): Promise<Answer> {
    const cached = o.tenants.peek(task.tenant_id);
    const tenant = cached !== null ? cached : await o.tenants.get(task.tenant_id);
    if (!tenant) {
      metrics?.poll('skipped');
      return { kind: 'no_tenant' };
    }
    const paused = breaker.openFor(task.tenant_id, now());
    if (paused > 0) {
      metrics?.poll('throttled');
      return { kind: 'throttled', retryAfterMs: paused };
    }
    const rate = tenant.limits.maxPollsPerS;
    if (rate !== null) {
      const waitMs = pollBuckets.take(task.tenant_id, rate, Math.max(1, rate), now());
      if (waitMs > 0) {
        metrics?.poll('throttled');
        return { kind: 'throttled', retryAfterMs: waitMs + random() * 1000 };
      }
    }
    const asked = now();
    log.debug({ task_id: task.task_id, worker: task.owner }, 'polling');
    // Adaptive polling needs the answer's kind, age and progress: until this worker has parsed
    // one (a task just adopted), an answer equal to the stored one is parsed once all the same.
    const knownHash = o.durations && !task.parsed ? undefined : (task.snapshot_hash ?? undefined);
    const result = await o.upstream.fetchTask(tenant.upstreamBaseUrl, tenant.upstreamApiKey, task.task_id, knownHash);
    if (result.kind === 'task') {
      task.parsed = true;
      task.timing = o.durations?.prepare(task.tenant_id, result.body);
    }
    task.polls++;
    metrics?.poll(pollOutcome(result));
    if (result.kind === 'unchanged') {
      breaker.success(task.tenant_id);
      return result;
    }
    const failed = pollErrorOf(result);
    if (failed !== null) pollErrors.failed(task.tenant_id, task.task_id, failed);
    // (a failure that overran its deadline: this process was paused, which says nothing about upstream)
    const wePaused = o.requestTimeoutMs !== undefined && overranDeadline(now() - asked, o.requestTimeoutMs);
    if (!(wePaused && result.kind === 'error')) await trackUpstreamHealth(task.tenant_id, result);
    return result;
  };
}
