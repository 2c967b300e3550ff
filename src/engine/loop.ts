// The claim-and-work loop shared by the poller and the deliverer: claim up to the
// free capacity, work each item concurrently, sleep when idle (or until woken),
// back off when the database is unreachable, and drain within a deadline on stop.
import { setTimeout as sleep } from 'node:timers/promises';

export interface LoopOptions<T> {
  name: string;
  claim(limit: number): Promise<T[]>;
  work(item: T): Promise<void>;
  /** Hand back the leases of work still running when the stop deadline passes. */
  release?(items: T[]): Promise<void>;
  maxInFlight: number;
  batchSize: number;
  idleMs: number;
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
    while (this.running) {
      const free = this.o.maxInFlight - this.inFlight.size;
      if (free <= 0) {
        await Promise.race(this.inFlight.keys());
        continue;
      }
      let items: T[];
      try {
        items = await this.o.claim(Math.min(free, this.o.batchSize));
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
      if (items.length < Math.min(free, this.o.batchSize)) await this.idle(this.o.idleMs);
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
