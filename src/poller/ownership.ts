// The tasks this worker owns, in memory, and how many it should own: a working cap that
// follows whether its polls start on time (capacity), and a fair share of all tasks
// among the live workers (balance). Pure bookkeeping over an injected clock; the poller
// does the I/O.
//
// Balance: every heartbeat reports how many tasks each worker owns, and every fifth one
// counts the unowned; a worker's share is (owned by all + unowned) / live workers. One that
// owns more than BALANCE_FACTOR × its share (+ BALANCE_SLACK) hands back the excess, latest
// due first with their due times, and claims nothing until it is under again. So a worker
// that joins gets its share from the hand-backs and from new registrations; when one
// leaves, its tasks are freed (takeover) and the survivors claim them within their caps.
import type { TaskState } from './decide.js';
import type { PreparedTiming } from '../durations/cache.js';
import type { ClaimedRow, Heartbeat } from './sql.js';
import { BALANCE_FACTOR, BALANCE_SLACK, CAPACITY_WINDOW_MS, LATE_MS } from './tuning.js';
import { nextCap, type CapacityState } from './capacity.js';

export interface Owned extends TaskState {
  id: number;
  /** the worker id it was claimed under: its writes are fenced by this */
  owner: number;
  polls: number;
  /** local ms when it is polled next */
  due: number;
  adoptedAt: number;
  /** local ms of its last durable write (claim counts as one) */
  writtenAt: number;
  /** polled since its last write: the next checkpoint writes it */
  dirty: boolean;
  busy: boolean;
  /** no longer owned: skip it wherever it still turns up */
  gone: boolean;
  /** this worker has parsed an answer of it since the claim (adaptive polling needs one) */
  parsed?: boolean;
  /** what the adaptive schedule reads of the last parsed answer (kind, age, progress); the answer itself is not kept */
  timing?: PreparedTiming;
}

/** Where the working cap starts (capacity.ts moves it). */
export const INITIAL_CAP = 50_000;

export class Ownership {
  private readonly map = new Map<number, Owned>();
  /**
   * One string per tenant id, however many of its tasks are owned: every claimed row brings
   * its own copy (≈ 48 B each). Emptied when nothing is owned (dropAll), so it never outgrows
   * the tenants this worker polls.
   */
  private readonly tenantIds = new Map<string, string>();
  private capacity: CapacityState = { cap: INITIAL_CAP, settled: null, cutAt: 0, lateRun: 0, probes: 0 };
  private limit = Number.POSITIVE_INFINITY;
  private fair = Number.POSITIVE_INFINITY;
  private lastUnowned = 0;
  private window = { started: 0, late: 0, lateMs: 0, since: 0 };

  constructor(
    private readonly now: () => number,
    /** the cap controller (capacity.ts; a test compares another) */
    private readonly decideCap: typeof nextCap = nextCap,
  ) {
    this.window.since = now();
  }

  get size(): number {
    return this.map.size;
  }

  adopt(r: ClaimedRow, owner: number): Owned {
    const at = this.now();
    let tenant = this.tenantIds.get(r.tenant_id);
    if (tenant === undefined) this.tenantIds.set(r.tenant_id, (tenant = r.tenant_id));
    // Every field is set here, the optional ones too: one object shape, all of it in-object
    // (a field added later moves to a separate properties array, ~+60 B per task).
    const t: Owned = {
      id: Number(r.id),
      owner,
      tenant_id: tenant,
      task_id: r.task_id,
      createdAt: at - r.age_ms,
      polls: r.polls,
      unauthorized_streak: r.unauthorized_streak,
      error_streak: r.error_streak,
      processing_seen: r.processing_seen,
      snapshot_hash: r.snapshot_hash,
      last_poll_error: r.last_poll_error,
      due: at + Math.max(0, r.due_in_ms),
      adoptedAt: at,
      writtenAt: at,
      dirty: false,
      busy: false,
      gone: false,
      parsed: false,
      timing: undefined,
    };
    const before = this.map.get(t.id);
    if (before) before.gone = true;
    this.map.set(t.id, t);
    return t;
  }

  get(id: number): Owned | undefined {
    return this.map.get(id);
  }

  drop(t: Owned): void {
    t.gone = true;
    if (this.map.get(t.id) === t) this.map.delete(t.id);
  }

  dropAll(): number {
    const n = this.map.size;
    for (const t of this.map.values()) t.gone = true;
    this.map.clear();
    this.tenantIds.clear();
    return n;
  }

  all(): Owned[] {
    return [...this.map.values()];
  }

  /** How many more this worker may claim now. */
  room(): number {
    return Math.min(this.capacity.cap, this.limit) - this.map.size;
  }

  written(t: Owned): void {
    t.dirty = false;
    t.writtenAt = this.now();
  }

  /**
   * Tasks polled since their last write that was at least `everyMs` ago, as a live view of
   * the owned ones (no array of them): one dropped or written meanwhile is not yielded.
   */
  *checkpointDue(everyMs: number): Generator<Owned, void, undefined> {
    const before = this.now() - everyMs;
    for (const t of this.map.values()) if (t.dirty && !t.busy && t.writtenAt <= before) yield t;
  }

  /** The working cap: how many tasks this worker may own by its measured capacity. */
  get cap(): number {
    return this.capacity.cap;
  }

  /** A poll starts: count it (and how late it started) towards the capacity window. */
  started(t: Owned): void {
    const at = this.now();
    const w = this.window;
    const late = at - Math.max(t.due, t.adoptedAt);
    w.started++;
    if (late > 0) w.lateMs += late;
    if (late > LATE_MS) w.late++;
    if (at - w.since < CAPACITY_WINDOW_MS) return;
    this.capacity = this.decideCap(this.capacity, { started: w.started, late: w.late, lateMs: w.lateMs, ms: at - w.since }, this.map.size, at);
    this.window = { started: 0, late: 0, lateMs: 0, since: at };
  }

  /** A heartbeat's view of the fleet: this worker's fair share. */
  heard(hb: Heartbeat): void {
    if (hb.unowned >= 0) this.lastUnowned = hb.unowned;
    if (hb.workers <= 1) {
      this.limit = this.fair = Number.POSITIVE_INFINITY;
      return;
    }
    this.fair = Math.ceil((hb.owned + this.lastUnowned) / hb.workers);
    this.limit = Math.ceil(this.fair * BALANCE_FACTOR) + BALANCE_SLACK;
  }

  /** The tasks to hand back (over the cap or the fair share), latest due first; none busy. */
  excess(): Owned[] {
    const keep = Math.min(this.capacity.cap, this.map.size > this.limit ? this.fair : Number.POSITIVE_INFINITY);
    const n = this.map.size - keep;
    if (n <= 0) return [];
    return [...this.map.values()].filter((t) => !t.busy).sort((a, b) => b.due - a.due).slice(0, n);
  }
}
