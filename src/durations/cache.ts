// Every process's copy of what was learned: the kinds' curves, refreshed from
// task_durations every few seconds (only the rows changed since the last read), so
// the poller asks memory, never the database, and every process schedules alike.
// Also answers the watch's ETA and the per-kind gauges.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sql } from '../db/client.js';
import { repeatingWarn, type Logger } from '../log.js';
import type { AdaptiveTiming, AdaptiveTuning } from '../upstream/schedule.js';
import { TERMINAL_STATUSES } from '../upstream/client.js';
import { curveOf, decodeHistogram, fold, timeWhenSurvival, survivalAt, type Curve, type Decay, type Histogram } from './histogram.js';
import { createdAtMs, kindKey, kindOf, progressOf, type Kind } from './samples.js';
import { durationSql } from './sql.js';
import { CACHE_REFRESH_MS, DECAY } from './tuning.js';

export interface Eta {
  p50: string;
  p90: string;
}

interface Entry {
  tenant: string;
  kind: Kind;
  histogram: Histogram;
  updatedAt: number;
  curve: Curve;
  samples: number;
}

export interface DurationCacheOptions {
  sql: Sql;
  log: Logger;
  /** the adaptive tuning, or undefined with TASKHOOK_POLL_STRATEGY=fixed (then timing() is always undefined) */
  tuning: AdaptiveTuning | undefined;
  refreshMs?: number;
  now?: () => number;
  decay?: Decay;
}

/** What timing() reads of one answer (DurationCache.prepare). */
export interface PreparedTiming {
  created: number | null;
  key: string | undefined;
  progress: number | null;
}

/** Upstream answers that carry a created_at, a kind and a known distribution. */
export class DurationCache {
  private readonly entries = new Map<string, Entry>();
  private readMs = 0;
  private lastDecayMs = 0;
  private running = false;
  private ac = new AbortController();
  private done: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly o: DurationCacheOptions) {
    this.now = o.now ?? Date.now;
  }

  /** What the schedule needs for this answer; undefined → the fixed cadence decides. */
  timing(tenantId: string, body: Record<string, unknown> | undefined): AdaptiveTiming | undefined {
    return this.timingFor(this.prepare(tenantId, body));
  }

  /**
   * The half of timing() that depends on the answer only (its created_at, kind, progress):
   * computed once per changed answer and kept with the task (the poller), not per poll.
   */
  prepare(tenantId: string, body: Record<string, unknown> | undefined): PreparedTiming | undefined {
    if (!this.o.tuning || !body) return undefined;
    const kind = kindOf(body);
    return { created: createdAtMs(body) ?? null, key: kind ? kindKey(tenantId, kind) : undefined, progress: progressOf(body) };
  }

  /** timing() from a prepared answer: the clock and the learned curve of its kind as of now. */
  timingFor(p: PreparedTiming | undefined): AdaptiveTiming | undefined {
    const tuning = this.o.tuning;
    if (!tuning || !p) return undefined;
    return {
      taskAgeMs: p.created === null ? null : this.now() - p.created,
      progress: p.progress,
      curve: p.key === undefined ? undefined : this.entries.get(p.key)?.curve,
      tuning,
    };
  }

  /** The predicted completion of a running task (p50 and p90 of its kind, given its age), else null. */
  eta(tenantId: string, body: Record<string, unknown> | null | undefined): Eta | null {
    if (!body || typeof body.status !== 'string' || TERMINAL_STATUSES.has(body.status)) return null;
    const created = createdAtMs(body);
    const kind = kindOf(body);
    const e = kind && this.entries.get(kindKey(tenantId, kind));
    if (created === undefined || !e || e.curve.events < (this.o.tuning?.minEvents ?? 20)) return null;
    const age = Math.max(0, (this.now() - created) / 1000);
    const alive = survivalAt(e.curve, age);
    if (!(alive > 0)) return null;
    const p50 = timeWhenSurvival(e.curve, alive * 0.5);
    const p90 = timeWhenSurvival(e.curve, alive * 0.1);
    if (p50 === undefined || p90 === undefined) return null;
    const iso = (s: number) => new Date(created + Math.max(s, age) * 1000).toISOString();
    return { p50: iso(p50), p90: iso(p90) };
  }

  /** The learned kinds (for the per-kind gauges): median and p90 in seconds. */
  kinds(): { tenant: string; kind: Kind; median: number | undefined; p90: number | undefined; events: number }[] {
    return [...this.entries.values()].map((e) => ({
      tenant: e.tenant,
      kind: e.kind,
      median: timeWhenSurvival(e.curve, 0.5),
      p90: timeWhenSurvival(e.curve, 0.1),
      events: e.curve.events,
    }));
  }

  /** Reads the rows changed since the last refresh; every minute also fades quiet kinds in memory. */
  async refresh(): Promise<void> {
    const started = this.now();
    // a little overlap: rows committed late with an earlier updated_at are read again, harmlessly
    const rows = await durationSql(this.o.sql).changedSince(Math.max(0, this.readMs - 10_000));
    for (const r of rows) {
      const key = kindKey(r.tenant_id, r);
      const had = this.entries.get(key);
      if (had && had.updatedAt >= r.updated_at) continue;
      const histogram = decodeHistogram(r.histogram);
      this.entries.set(key, {
        tenant: r.tenant_id,
        kind: { capability: r.capability, action: r.action, model: r.model },
        histogram,
        updatedAt: r.updated_at,
        curve: curveOf(fold(histogram, [], started - r.updated_at, this.o.decay ?? DECAY)),
        samples: r.samples,
      });
    }
    this.readMs = started;
    if (started - this.lastDecayMs > 12 * (this.o.refreshMs ?? CACHE_REFRESH_MS)) {
      this.lastDecayMs = started;
      for (const e of this.entries.values()) e.curve = curveOf(fold(e.histogram, [], started - e.updatedAt, this.o.decay ?? DECAY));
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.ac = new AbortController();
    const refreshFailed = repeatingWarn(this.o.log, 'duration cache: refresh failed; keeping what it has');
    this.done = (async () => {
      while (this.running) {
        await this.refresh().catch(refreshFailed);
        await sleep(this.o.refreshMs ?? CACHE_REFRESH_MS, undefined, { signal: this.ac.signal, ref: false }).catch(() => {});
      }
    })();
  }

  /** Refresh now (the learner in this process just wrote). */
  poke(): void {
    void this.refresh().catch(() => {});
  }

  async stop(): Promise<void> {
    this.running = false;
    this.ac.abort();
    await this.done;
  }
}
