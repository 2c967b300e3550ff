// What one finished task tells about its kind's durations: pure, from the upstream
// answer as stored in task_snapshots. Also what the poller and the API read off a
// live answer (the kind, created_at, progress). Upstream strings are not ours: long
// or missing kind fields are not learned from.
import { BASE_MIN_MS, BASE_SPREAD_MS } from '../upstream/schedule.js';
import type { Sample } from './histogram.js';
import { MAX_KIND_FIELD } from './tuning.js';

export interface Kind {
  capability: string;
  action: string;
  model: string;
}

export const kindKey = (tenantId: string, k: Kind): string => `${tenantId}\u0000${k.capability}\u0000${k.action}\u0000${k.model}`;

const field = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= MAX_KIND_FIELD ? v : undefined);
/** Unix seconds (fractional allowed) → ms, or undefined. */
const epochMs = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v * 1000 : undefined);

export function kindOf(body: Record<string, unknown>): Kind | undefined {
  const capability = field(body.capability);
  const action = field(body.action);
  const model = field(body.model);
  return capability && action && model ? { capability, action, model } : undefined;
}

export const createdAtMs = (body: Record<string, unknown>): number | undefined => epochMs(body.created_at);

export function progressOf(body: Record<string, unknown>): number | null {
  const p = body.progress;
  return body.status === 'processing' && typeof p === 'number' && Number.isFinite(p) && p >= 0 && p <= 1 ? p : null;
}

export interface Observation {
  kind: Kind;
  sample: Sample;
  /** polls the task took (task_snapshots.polls) */
  polls: number;
}

/**
 * One terminal snapshot as a sample of its kind, or undefined when it says nothing
 * about durations (no kind, no created_at, not terminal):
 * - completed with completed_at: its duration, exactly;
 * - completed without it: ended somewhere between the previous poll and the one that
 *   saw it (`seenAtMs`), interval-censored over the fixed cadence's longest gap;
 * - failed / cancelled: still had not completed when it ended — right-censored there.
 */
export function observe(raw: string, status: string, seenAtMs: number, polls: number, scale = 1): Observation | undefined {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const kind = kindOf(b);
  const created = createdAtMs(b);
  if (!kind || created === undefined) return undefined;
  const completed = epochMs(b.completed_at);
  const endS = ((completed ?? seenAtMs) - created) / 1000;
  if (!(endS >= 0)) return undefined;
  switch (status) {
    case 'completed':
      if (completed !== undefined) return { kind, polls, sample: { kind: 'completed', s: endS } };
      return { kind, polls, sample: { kind: 'completed', s: endS, lo: Math.max(0, endS - ((BASE_MIN_MS + BASE_SPREAD_MS) / 1000) * scale) } };
    case 'failed':
    case 'cancelled':
      return { kind, polls, sample: { kind: 'censored', s: endS } };
    default:
      return undefined;
  }
}
