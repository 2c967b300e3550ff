// Runs items off a timer heap when they fall due, at most `maxInFlight` at once (a run may
// give its slot back early: a poll once upstream has answered, while its write waits): the
// poller's in-memory schedule of the tasks it owns. An item is skipped when it surfaces
// `gone` (removed lazily), and looked at again a moment later while still `busy` (its own
// run rescheduled it and has not quite returned). Sleeps until the next item is due (at
// most 250 ms), or until a slot frees up or an earlier item is scheduled.
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
}

export class HeapDispatcher<T extends Schedulable> {
  private readonly heap = new TimerHeap<T>();
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

  clear(): void {
    this.heap.clear();
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

  private slotFreed(): void {
    this.inFlight--;
    if (this.inFlight === this.o.maxInFlight - 1) this.wake();
  }

  private async dispatch(): Promise<void> {
    const { heap, o } = this;
    while (this.running) {
      const active = o.active();
      if (active) {
        const t = o.now();
        while (this.inFlight < o.maxInFlight) {
          const item = heap.popDue(t);
          if (!item) break;
          if (item.gone) continue;
          if (item.busy) {
            heap.push(t + 1, item);
            continue;
          }
          this.inFlight++;
          let held = true;
          const release = () => {
            if (!held) return;
            held = false;
            this.slotFreed();
          };
          void o.run(item, release).finally(release);
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
