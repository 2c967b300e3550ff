// The learner: every few seconds, one process folds the tasks that finished since the
// watermark into their kinds' histograms — one read, one upsert, one watermark move per
// round, never anything in the poll loop. Several workers take turns on the watermark
// row (SKIP LOCKED), so each task is folded once whoever finished it.
import type { Sql } from '../db/client.js';
import { periodic, type Periodic } from '../engine/periodic.js';
import { repeatingWarn, type Logger } from '../log.js';
import { learn } from './drift.js';
import { decodeHistogram, emptyHistogram, encodeHistogram, type Decay, type Sample } from './histogram.js';
import { kindKey, observe, type Kind } from './samples.js';
import { durationSql } from './sql.js';
import { DECAY, LEARN_BATCH, LEARN_EVERY_MS, LEARN_SETTLE_MS, MAX_KINDS_PER_TENANT } from './tuning.js';

export interface LearnerOptions {
  sql: Sql;
  log: Logger;
  /** TASKHOOK_POLL_SCALE: the gap a completion without completed_at is spread over */
  pollScale?: number;
  intervalMs?: number;
  batch?: number;
  settleMs?: number;
  /** per folded task: its kind and how many polls it took (the requests-per-task metric) */
  onFolded?: (tenantId: string, kind: Kind, polls: number) => void;
  /** after each fold that changed something (the cache refreshes at once) */
  onChanged?: () => void;
  decay?: Decay;
}

export interface FoldResult {
  /** terminal snapshots read */
  read: number;
  /** of them, observations folded */
  folded: number;
  kinds: number;
  /** another process held the watermark */
  skipped: boolean;
}

/** One round: fold what finished since the watermark (≤ batch rows). */
export async function learnOnce(o: LearnerOptions): Promise<FoldResult> {
  const q = durationSql(o.sql);
  await q.ensureWatermark();
  const result = (await o.sql.begin(async (tx) => {
    const t = tx as unknown as Sql;
    const [w] = await q.lockWatermark(t);
    if (!w) return { read: 0, folded: 0, kinds: 0, skipped: true };
    const limit = o.batch ?? LEARN_BATCH;
    const settle = o.settleMs ?? LEARN_SETTLE_MS;
    const rows = await q.finishedSince(t, w, settle, limit);
    const nowMs = w.now.getTime();
    const byKind = new Map<string, { tenant: string; kind: Kind; samples: Sample[] }>();
    let folded = 0;
    for (const r of rows) {
      const obs = observe(r.snapshot, r.status, r.seen_at, r.polls, o.pollScale ?? 1);
      if (!obs) continue;
      folded++;
      o.onFolded?.(r.tenant_id, obs.kind, r.polls);
      const key = kindKey(r.tenant_id, obs.kind);
      let e = byKind.get(key);
      if (!e) byKind.set(key, (e = { tenant: r.tenant_id, kind: obs.kind, samples: [] }));
      e.samples.push({ ...obs.sample, agoMs: nowMs - r.seen_at });
    }
    if (byKind.size > 0) {
      const entries = [...byKind.values()];
      const keys = entries.map((e) => ({ tenant: e.tenant, ...e.kind }));
      const stored = new Map((await q.kinds(t, keys)).map((d) => [kindKey(d.tenant_id, d), d]));
      const counts = new Map((await q.kindCounts(t, [...new Set(keys.map((k) => k.tenant))])).map((c) => [c.tenant_id, c.n]));
      const upserts = [];
      for (const e of entries) {
        const key = kindKey(e.tenant, e.kind);
        const old = stored.get(key);
        if (!old) {
          // upstream's strings name the kinds: a tenant's table stays bounded however many it invents
          const n = counts.get(e.tenant) ?? 0;
          if (n >= MAX_KINDS_PER_TENANT) continue;
          counts.set(e.tenant, n + 1);
        }
        const h = learn(old ? decodeHistogram(old.histogram) : emptyHistogram(), e.samples, old ? nowMs - old.updated_at : 0, o.decay ?? DECAY);
        upserts.push({ tenant: e.tenant, ...e.kind, histogram: encodeHistogram(h), added: e.samples.length });
      }
      if (upserts.length > 0) await q.upsert(t, upserts);
    }
    const last = rows[rows.length - 1];
    if (rows.length === limit && last) await q.moveWatermark(t, { at: last.seen_at_exact, tenant: last.tenant_id, task: last.task_id });
    else await q.moveWatermark(t, { horizonMs: settle });
    return { read: rows.length, folded, kinds: byKind.size, skipped: false };
  })) as FoldResult;
  if (result.kinds > 0) o.onChanged?.();
  return result;
}

export type Learner = Periodic;

export function createLearner(o: LearnerOptions): Learner {
  const every = o.intervalMs ?? LEARN_EVERY_MS;
  const foldFailed = repeatingWarn(o.log, 'duration learner: fold failed; retrying next round');
  return periodic(async () => {
    try {
      const r = await learnOnce(o);
      // a full batch means a backlog (first start, a burst): go on at once
      if (r.read === (o.batch ?? LEARN_BATCH)) return 0;
    } catch (err) {
      foldFailed(err);
    }
    return every;
  });
}
