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
    const tuning = this.o.tuning;
    if (!tuning || !body) return undefined;
    // what the answer says is read once per answer: an unchanged answer keeps its object
    let read = this.read.get(body);
    if (!read || read.tenantId !== tenantId) {
      const kind = kindOf(body);
      read = { tenantId, key: kind && kindKey(tenantId, kind), created: createdAtMs(body), progress: progressOf(body) };
      this.read.set(body, read);
    }
    return {
      taskAgeMs: read.created === undefined ? null : this.now() - read.created,
      progress: read.progress,
      curve: read.key === undefined ? undefined : this.entries.get(read.key)?.curve,
      tuning,
    };
  }
  private readonly read = new WeakMap<object, { tenantId: string; key: string | undefined; created: number | undefined; progress: number | null }>();

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
