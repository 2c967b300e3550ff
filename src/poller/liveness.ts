// This process as a worker: its `workers` row, the heartbeat that keeps it alive (and
// sweeps dead workers, sql.ts heartbeat), and the two ways it stops owning anything:
// - fenced by the others: its heartbeat finds its row declared dead → drop everything in
//   memory (the rows were freed in the statement that declared it), register a new row;
// - fenced by itself: no heartbeat acknowledged for half the timeout → stop polling at
//   once (`active` turns false) and, if the heartbeat then still fails, drop everything
//   and retire the old row as soon as the database answers again.
// A frozen process (SIGSTOP) can do neither while frozen; when it wakes, `active` is false
// until a heartbeat succeeds, and every write it had under way is fenced by owner_id.
import os from 'node:os';
import type { Sql } from '../db/client.js';
import type { Logger } from '../log.js';
import { heartbeat, registerWorker, retireWorker, type Heartbeat } from './sql.js';
import { HEARTBEAT_MS, SELF_FENCE_SHARE, TAKEOVER_SPREAD_MS } from './tuning.js';

export interface LivenessOptions {
  sql: Sql;
  log: Logger;
  timeoutMs: number;
  version: string;
  /** how many tasks this worker owns now (reported with each heartbeat, for balancing) */
  owned(): number;
  /** everything this worker owned is no longer its own: forget it all, write nothing */
  onLost(reason: 'declared dead' | 'no heartbeat'): void;
  onHeartbeat?(hb: Heartbeat): void;
  now?: () => number;
  heartbeatMs?: number;
}

export class WorkerLiveness {
  /** this worker's row while it has one */
  id: number | null = null;
  private lastAck = Number.NEGATIVE_INFINITY;
  private readonly toRetire: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private readonly now: () => number;
  private stopped = false;
  private beats = 0;

  constructor(private readonly o: LivenessOptions) {
    this.now = o.now ?? performance.now.bind(performance);
  }

  get fenceMs(): number {
    return this.o.timeoutMs * SELF_FENCE_SHARE;
  }

  /** May this worker poll and write now: registered, and heard from within half the timeout. */
  get active(): boolean {
    return this.id !== null && this.now() - this.lastAck < this.fenceMs;
  }

  async start(): Promise<void> {
    await this.tick().catch(() => {});
    this.timer = setInterval(() => this.beat(), this.o.heartbeatMs ?? HEARTBEAT_MS);
  }

  private beat(): void {
    if (this.ticking) {
      // the last heartbeat has not answered: past half the timeout, let go without waiting for it
      this.selfFenceIfDue();
      return;
    }
    this.ticking = this.tick().finally(() => (this.ticking = undefined));
  }

  private selfFenceIfDue(): void {
    if (this.id === null || this.now() - this.lastAck < this.fenceMs) return;
    this.o.log.warn({ worker: this.id, since_ms: Math.round(this.now() - this.lastAck) }, 'no heartbeat acknowledged for half the worker timeout: stopped polling, dropping every task this worker owned');
    this.toRetire.push(this.id);
    this.id = null;
    this.o.onLost('no heartbeat');
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sent = this.now();
    try {
      while (this.toRetire.length > 0) {
        const old = this.toRetire[0]!;
        const freed = await retireWorker(this.o.sql, { worker: old, spreadMs: TAKEOVER_SPREAD_MS });
        this.toRetire.shift();
        this.o.log.info({ worker: old, freed }, 'retired the worker row this process lost; its tasks are free for any worker');
      }
      if (this.id === null) {
        const id = await registerWorker(this.o.sql, { host: os.hostname(), pid: process.pid, version: this.o.version });
        if (this.stopped) {
          await retireWorker(this.o.sql, { worker: id, spreadMs: 0 });
          return;
        }
        this.id = id;
        this.lastAck = sent;
        return;
      }
      const id = this.id;
      const hb = await heartbeat(this.o.sql, { worker: id, owned: this.o.owned(), timeoutMs: this.o.timeoutMs, spreadMs: TAKEOVER_SPREAD_MS, countUnowned: this.beats++ % 5 === 0 });
      if (this.id !== id) return; // let go meanwhile
      if (hb.alive === 0) {
        this.o.log.warn({ worker: id }, 'this worker was declared dead by another (no heartbeat within the timeout): dropping every task it owned; registering anew');
        this.id = null;
        this.o.onLost('declared dead');
        return;
      }
      this.lastAck = sent;
      if (hb.freed > 0 || hb.leases > 0) this.o.log.warn({ worker: id, freed: hb.freed, deliveries: hb.leases }, 'took over the tasks and deliveries of a dead worker');
      this.o.onHeartbeat?.(hb);
    } catch (err) {
      this.selfFenceIfDue();
      if (this.id !== null) this.o.log.debug?.({ err }, 'heartbeat failed');
    }
  }

  /** After the hand-back: retire this worker's row (dead from now on, the rest of its tasks freed). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    const id = this.id;
    this.id = null;
    if (id !== null) await retireWorker(this.o.sql, { worker: id, spreadMs: 0 });
  }
}
