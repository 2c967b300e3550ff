// Runs items off a timer heap when they fall due, at most `maxInFlight` at once (a run may
// give its slot back early: a poll once upstream has answered, while its write waits): the
// poller's in-memory schedule of the tasks it owns. An item is skipped when it surfaces
// `gone` (removed lazily), and looked at again a moment later while still `busy` (its own
// run rescheduled it and has not quite returned). Sleeps until the next item is due (at
// most 250 ms), or until a slot frees up or an earlier item is scheduled.
//
// Lanes (optional): items of one lane — the poller's: one upstream origin — run at most
// `lanes.max` at once, the size of the HTTP client's connection pool to that origin. The
// rest wait here, in a per-lane queue in the order they fell due, instead of inside the
// HTTP client: a request queued in undici holds its request, handler and promises for as
// long as it waits, which at saturation (1,024 in flight over 64 connections: ~40 ms) is
// longer than the young generation lives, so every poll's objects were promoted and
// collected by full GCs. A waiting item costs one array slot; the next one of a lane starts
// the moment one of its runs releases its slot.
import { TimerHeap } from './timer-heap.js';

export interface Schedulable {
  due: number;
  gone: boolean;
  busy: boolean;
}

export interface HeapDispatchOptions<T> {
  maxInFlight: number;
  now: () => number;
  /** false: start nothing (this worker may not act now); looked at every 50 ms */
  active: () => boolean;
  /** `release()` frees the item's slot before the run ends (idempotent; the end frees it anyway) */
  run: (item: T, release: () => void) => Promise<void>;
  /** at most `max` runs at once per lane `of(item)` (e.g. per upstream origin) */
  lanes?: { of: (item: T) => string; max: number };
}

interface Lane<T> {
  key: string;
  inFlight: number;
  /** items that fell due while the lane was full, oldest first from `head` */
  waiting: T[];
  head: number;
  /** in `ready` (has waiting items and, since its last run ended, a free slot) */
  ready: boolean;
}

/** Past this many lanes, one that goes idle is forgotten (lanes are origins: normally a few). */
const KEEP_LANES = 1_000;

export class HeapDispatcher<T extends Schedulable> {
  private readonly heap = new TimerHeap<T>();
  private readonly lanes = new Map<string, Lane<T>>();
  /** lanes with waiting items and a free slot: they go before the heap (their items fell due earlier) */
  private readonly ready: Lane<T>[] = [];
  private running = false;
  private nextWake = Number.POSITIVE_INFINITY;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  inFlight = 0;

  constructor(private readonly o: HeapDispatchOptions<T>) {}

  /** `item` is due at `at` (local ms). */
  schedule(item: T, at: number): void {
    item.due = at;
    this.heap.push(at, item);
    if (at < this.nextWake) this.wake();
  }

  /** Items waiting in lanes (due, their lane full). */
  get waiting(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.waiting.length - l.head;
    return n;
  }

  clear(): void {
    this.heap.clear();
    for (const l of this.lanes.values()) {
      l.waiting.length = 0;
      l.head = 0;
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.dispatch();
  }

  /** No new runs; → when the loop has ended (runs in flight go on: see inFlight). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private slotFreed(lane: Lane<T> | undefined): void {
    this.inFlight--;
    let wake = this.inFlight === this.o.maxInFlight - 1;
    if (lane) {
      lane.inFlight--;
      if (lane.head < lane.waiting.length) {
        if (!lane.ready) {
          lane.ready = true;
          this.ready.push(lane);
        }
        wake = true;
      } else if (lane.inFlight === 0 && this.lanes.size > KEEP_LANES) this.lanes.delete(lane.key);
    }
    if (wake) this.wake();
  }

  private laneFor(key: string): Lane<T> {
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { key, inFlight: 0, waiting: [], head: 0, ready: false }));
    return lane;
  }

  /** The next waiting item of a lane with a free slot, if any. */
  private nextWaiting(): { item: T; lane: Lane<T> } | undefined {
    const max = this.o.lanes!.max;
    while (this.ready.length > 0) {
      const lane = this.ready[this.ready.length - 1]!;
      if (lane.inFlight >= max || lane.head >= lane.waiting.length) {
        this.ready.pop();
        lane.ready = false;
        continue;
      }
      const item = lane.waiting[lane.head]!;
      lane.waiting[lane.head++] = undefined as unknown as T;
      if (lane.head === lane.waiting.length) {
        lane.waiting.length = 0;
        lane.head = 0;
      } else if (lane.head >= 1_024 && lane.head * 2 >= lane.waiting.length) {
        lane.waiting.splice(0, lane.head);
        lane.head = 0;
      }
      if (item.gone) continue;
      return { item, lane };
    }
    return undefined;
  }

  private begin(item: T, lane: Lane<T> | undefined): void {
    this.inFlight++;
    if (lane) lane.inFlight++;
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.slotFreed(lane);
    };
    void this.o.run(item, release).finally(release);
  }

  private async dispatch(): Promise<void> {
    const { heap, o } = this;
    const lanes = o.lanes;
    while (this.running) {
      const active = o.active();
      if (active) {
        const t = o.now();
        while (this.inFlight < o.maxInFlight) {
          if (lanes && this.ready.length > 0) {
            const w = this.nextWaiting();
            if (w) {
              this.begin(w.item, w.lane);
              continue;
            }
          }
          const item = heap.popDue(t);
          if (!item) break;
          if (item.gone) continue;
          if (item.busy) {
            heap.push(t + 1, item);
            continue;
          }
          if (!lanes) {
            this.begin(item, undefined);
            continue;
          }
          const lane = this.laneFor(lanes.of(item));
          if (lane.inFlight >= lanes.max) {
            lane.waiting.push(item);
            continue;
          }
          this.begin(item, lane);
        }
      }
      const next = heap.peekDue();
      const ms = !active ? 50 : this.inFlight >= o.maxInFlight ? 1_000 : next === undefined ? 250 : Math.min(250, Math.max(1, next - o.now()));
      this.nextWake = o.now() + ms;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        const self = this;
        function done() {
          clearTimeout(timer);
          self.wakeUp = undefined;
          resolve();
        }
        this.wakeUp = done;
      });
    }
  }
}
