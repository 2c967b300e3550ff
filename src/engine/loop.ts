// The claim-and-work loop shared by the poller and the deliverer: claim up to the
// free capacity, work each item concurrently, sleep when idle (or until woken),
// back off when the database is unreachable, and drain within a deadline on stop.
//
// Pacing (measured in bench/, see its README): a claim that comes back partly full
// means the queue is drained to "now", so the loop pauses `paceMs` to let a batch
// gather rather than claiming rows one at a time; an empty claim sleeps until the next
// row falls due (`nextDueMs`), at most `idleMs`; and a full loop refills only once
// a share of its slots is free, so claims stay batches under saturation too.
import { setTimeout as sleep } from 'node:timers/promises';

export interface LoopOptions<T> {
  name: string;
  claim(limit: number): Promise<T[]>;
  work(item: T): Promise<void>;
  /** Hand back the leases of work still running when the stop deadline passes. */
  release?(items: T[]): Promise<void>;
  /** ms until the next row falls due (≤ 0: due now; null: nothing scheduled) */
  nextDueMs?(): Promise<number | null>;
  maxInFlight: number;
  batchSize: number;
  idleMs: number;
  /** the pause after a partly full claim (default 15 ms) */
  paceMs?: number;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export class ClaimLoop<T> {
  private running = false;
  private inFlight = new Map<Promise<void>, T>();
  private wakeUp: (() => void) | undefined;
  private done: Promise<void> | undefined;
  /** false while the last claim failed (database unreachable); read by /readyz. */
  healthy = true;

  constructor(private readonly o: LoopOptions<T>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.done = this.run();
  }

  /** stop() was called: work not yet started should hand itself back rather than begin. */
  get stopping(): boolean {
    return !this.running;
  }

  /** Cut the idle sleep short: new work was just written by this process. */
  wake(): void {
    this.wakeUp?.();
  }

  /**
   * Stop claiming; let in-flight work finish up to deadlineMs, then hand back the
   * leases of whatever is still running so another process can take it at once
   * (its late writes are fenced off by the lease token). Returns whether all finished.
   */
  async stop(deadlineMs: number): Promise<boolean> {
    this.running = false;
    this.wake();
    await this.done;
    const all = Promise.all(this.inFlight.keys()).then(() => true);
    const finished = await Promise.race([all, sleep(deadlineMs, false, { ref: false })]);
    if (!finished && this.o.release) {
      const left = [...this.inFlight.values()];
      await this.o.release(left).catch((err: unknown) => this.o.log.warn({ err: String(err), engine: this.o.name }, 'could not hand back leases; they will expire'));
    }
    return finished;
  }

  private async run(): Promise<void> {
    let failures = 0;
    const paceMs = this.o.paceMs ?? 15;
    // Refill at a quarter of a batch free: under saturation, claims of ~25 rows, not of 1.
    const refillAt = Math.max(1, Math.floor(Math.min(this.o.batchSize, this.o.maxInFlight) / 4));
    while (this.running) {
      const free = this.o.maxInFlight - this.inFlight.size;
      if (free < refillAt) {
        await Promise.race(this.inFlight.keys());
        continue;
      }
      const asked = Math.min(free, this.o.batchSize);
      let items: T[];
      try {
        items = await this.o.claim(asked);
        failures = 0;
        this.healthy = true;
      } catch (err) {
        failures++;
        this.healthy = false;
        if (failures === 1 || failures % 20 === 0) this.o.log.warn({ err: String(err), engine: this.o.name }, 'claim failed; backing off');
        await this.idle(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
        continue;
      }
      for (const item of items) {
        const p: Promise<void> = this.o
          .work(item)
          .catch((err: unknown) => this.o.log.error({ err: String(err), engine: this.o.name }, 'work failed; its lease will expire and it will be retried'))
          .finally(() => this.inFlight.delete(p));
        this.inFlight.set(p, item);
      }
      if (items.length === asked) continue;
      if (items.length > 0) await this.idle(paceMs);
      else await this.idle(await this.untilNextDue(paceMs));
    }
  }

  /** How long an idle loop sleeps: until the next row is due, between paceMs and idleMs. */
  private async untilNextDue(paceMs: number): Promise<number> {
    if (!this.o.nextDueMs) return this.o.idleMs;
    try {
      const ms = await this.o.nextDueMs();
      return ms === null ? this.o.idleMs : Math.min(this.o.idleMs, Math.max(paceMs, ms));
    } catch {
      return this.o.idleMs; // the next claim will notice and report the outage
    }
  }

  private async idle(ms: number): Promise<void> {
    if (!this.running) return;
    const ac = new AbortController();
    this.wakeUp = () => ac.abort();
    await sleep(ms, undefined, { signal: ac.signal }).catch(() => {});
    this.wakeUp = undefined;
  }
}
