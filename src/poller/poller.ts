// The poller (scheduler v2), wiring: this worker claims due tasks in batches and owns them
// while it is alive (liveness.ts, ownership.ts); it keeps them in a timer heap
// (engine/heap-dispatch.ts) and polls each on its cadence, asking upstream once per task
// however many watches share it (ask.ts). What an answer comes to is decide.ts; a poll that
// changes nothing writes nothing. Durable writes, batched and fenced by ownership
// (writes.ts, sql.ts): a changed snapshot, the first `processing`, a poll error's
// transitions, a task's end with its outbox rows in one transaction; the rolling checkpoint
// of poll counts and due times and the hand-backs (keep.ts). Constants: tuning.ts.
import type { Sql } from '../db/client.js';
import { ClaimLoop } from '../engine/loop.js';
import { HeapDispatcher } from '../engine/heap-dispatch.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import type { UpstreamClient } from '../upstream/client.js';
import { nextPollDelayMs, type PollSignal } from '../upstream/schedule.js';
import type { DurationCache } from '../durations/cache.js';
import { webhookHead } from '../delivery/outbox.js';
import type { Logger } from '../log.js';
import { decide, type Decision, type TaskState } from './decide.js';
import * as q from './sql.js';
import { createAsker } from './ask.js';
import { createKeeper } from './keep.js';
import { createTaskWrites } from './writes.js';
import { WorkerLiveness } from './liveness.js';
import { Ownership, type Owned } from './ownership.js';
import { CHECKPOINT_MS, CLAIM_AHEAD_MS, CLAIM_BATCH, DEFAULT_WORKER_TIMEOUT_MS, MAX_IN_FLIGHT, WRITE_CHUNK } from './tuning.js';
import { noFaults, type Fault } from '../faults.js';
import type { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';

export interface PollerOptions {
  sql: Sql;
  tenants: TenantDirectory;
  upstream: UpstreamClient;
  log: Logger;
  notFoundGraceMs: number;
  maxWatchAgeMs: number;
  pollScale?: number;
  /** Called after events were committed, to wake the deliverer in this process. */
  onEnqueued?: () => void;
  /** a heartbeat older than this and a worker is dead (tuning.ts) */
  workerTimeoutMs?: number;
  /** the upstream request deadline (a failure that overran it by far: this process was paused) */
  requestTimeoutMs?: number;
  idleMs?: number;
  maxInFlight?: number;
  random?: () => number;
  now?: () => number;
  fault?: Fault;
  metrics?: Metrics;
  /** learned task durations (adaptive strategy); absent → the fixed cadence */
  durations?: Pick<DurationCache, 'prepare' | 'timingFor'> | undefined;
}

export function createPoller(o: PollerOptions) {
  const { sql, log, metrics } = o;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const fault = o.fault ?? noFaults;
  const limits = { notFoundGraceMs: o.notFoundGraceMs, maxWatchAgeMs: o.maxWatchAgeMs };
  // The checkpoint bound scales with the cadence (tests and demos poll 20× faster).
  const checkpointMs = Math.max(250, CHECKPOINT_MS * Math.min(1, o.pollScale ?? 1));
  const tasks = new Ownership(now);
  const writes = createTaskWrites(sql, now, o.onEnqueued);
  const ask = createAsker({ ...o, random, now });
  // Polls of one upstream origin run at most as many at once as the client has connections
  // to it; the rest wait in the heap's lane, not queued inside undici (heap-dispatch.ts).
  const laneOf = (t: Owned): string => {
    const tenant = o.tenants.peek(t.tenant_id);
    return tenant ? o.upstream.originOf(tenant.upstreamBaseUrl) : t.tenant_id;
  };
  const heap = new HeapDispatcher<Owned>({
    maxInFlight: o.maxInFlight ?? MAX_IN_FLIGHT,
    now,
    active: () => liveness.active,
    run: poll,
    lanes: { of: laneOf, max: o.upstream.connections },
  });
  const liveness = new WorkerLiveness({
    sql,
    log,
    timeoutMs: o.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS,
    version: VERSION,
    owned: () => tasks.size,
    onLost: (reason) => {
      const n = tasks.dropAll();
      heap.clear();
      keeper.forget();
      log.warn({ tasks: n, reason }, 'dropped every task this worker owned');
    },
    onHeartbeat: (hb) => tasks.heard(hb),
  });
  const aliveId = () => (liveness.active ? liveness.id : null);
  /** The one place the cadence is decided (upstream/schedule.ts). */
  const delayFor = (task: Owned, signal: PollSignal) =>
    nextPollDelayMs(signal, { ageMs: now() - task.createdAt, random: random(), scale: o.pollScale, adaptive: o.durations?.timingFor(task.timing) });
  const scheduleState = (task: Owned): q.ScheduleState => ({
    id: task.id,
    dueInMs: task.due - now(),
    polls: task.polls,
    unauthorized: task.unauthorized_streak,
    errors: task.error_streak,
  });
  const keeper = createKeeper({ sql, log, tasks, checkpointMs, worker: aliveId, scheduleState, now });
  let running = false;
  let housekeeping: NodeJS.Timeout | undefined;
  let listening: Promise<{ unlisten(): Promise<void> } | undefined> | undefined;

  // ---- one poll, start to end
  let lastPollFailureLog = 0;
  async function poll(task: Owned, release: () => void): Promise<void> {
    task.busy = true;
    try {
      if (!liveness.active) {
        // (the heap looks at liveness once per pass: a process frozen mid-pass wakes inside
        // it, and must not start what it dispatched before the freeze)
        release();
        heap.schedule(task, now() + delayFor(task, { kind: 'ok' }));
        return;
      }
      metrics?.pollLateness(Math.max(0, now() - Math.max(task.due, task.adoptedAt)) / 1000);
      tasks.started(task);
      fault('poll.after-claim');
      const answer = await ask(task);
      // upstream has answered: the in-flight slot (a bound on concurrent requests) is free for
      // the next poll while this one's write, if any, waits for its batch (the task stays busy)
      release();
      fault('poll.before-commit');
      if (task.gone) return; // no longer ours (fenced, handed back): write nothing
      if (!liveness.active) {
        // not heard from the database lately (paused, cut off): don't act on it; ask again once alive
        heap.schedule(task, now() + delayFor(task, { kind: 'ok' }));
        return;
      }
      await apply(task, decide(task, answer, now(), limits));
    } catch (err) {
      // (the database gone: every poll in flight fails at once; one line a second says so)
      if (now() - lastPollFailureLog > 1_000) {
        lastPollFailureLog = now();
        log.warn({ err, task_id: task.task_id }, 'recording a poll failed; polling the task again after a backoff');
      }
      if (!task.gone) heap.schedule(task, now() + delayFor(task, { kind: 'error', streak: Math.max(1, task.error_streak) }));
    } finally {
      task.busy = false;
    }
  }

  async function apply(task: Owned, d: Decision): Promise<void> {
    if (d.kind === 'finish') {
      if (d.giveUp) {
        log.info({ tenant: task.tenant_id, task_id: task.task_id, code: d.giveUp }, 'giving up on task');
        metrics?.giveUp(d.giveUp);
      } else log.info({ tenant: task.tenant_id, task_id: task.task_id, status: d.snapshot?.status }, 'task finished');
      const at = new Date(now());
      const ok = await writes.finish({ owner: task.owner, id: task.id, polls: task.polls, type: d.event, head: webhookHead(d.event, at), data: d.data, status: d.snapshot?.status ?? null, raw: d.snapshot?.raw ?? null });
      tasks.drop(task);
      if (!ok) log.info({ task_id: task.task_id }, 'task no longer owned by this worker: its end is left to the owner');
      return;
    }
    task.unauthorized_streak = d.unauthorized_streak;
    task.error_streak = d.error_streak;
    task.processing_seen = d.processing_seen;
    task.due = now() + delayFor(task, d.signal);
    let ok = true;
    const snap = d.snapshot;
    if (d.startProcessing && snap) {
      ok = await writes.start({ owner: task.owner, ...scheduleState(task), status: snap.status, raw: snap.raw, hash: snap.hash, head: webhookHead('task.processing', new Date(now())) });
    } else if (d.write) {
      const pe = d.pollError;
      ok = await writes.write({ owner: task.owner, ...scheduleState(task), processing: task.processing_seen, status: snap?.status ?? null, raw: snap?.raw ?? null, hash: snap?.hash ?? null, pollErrorChanged: pe ? 1 : 0, pollError: pe?.message ?? null });
    } else {
      task.dirty = true; // the next checkpoint writes its poll count and due time
    }
    if (task.gone) return;
    if (!ok) {
      tasks.drop(task);
      log.info({ task_id: task.task_id }, 'task no longer owned by this worker (taken over, cancelled or handed back): dropped');
      return;
    }
    if (d.write || d.startProcessing) {
      if (snap) task.snapshot_hash = snap.hash;
      if (d.pollError) task.last_poll_error = d.pollError.message;
      if (d.startProcessing) task.last_poll_error = null;
      tasks.written(task);
    }
    heap.schedule(task, task.due);
  }

  // ---- the claim: unowned due tasks become ours, up to what we can poll on time
  // A claim that failed may still have committed (the connection lost with its answer): the
  // tasks it took are this worker's in the table but not in memory, and while this worker
  // lives nobody else would poll or free them. So before the next claim under the same id,
  // the table's list of what this worker owns is read and whatever memory lacks is freed.
  // (Under a new id there is nothing to do: the old one was retired or declared dead, which
  // frees all it owned.) Rare — only after a failed claim — and O(owned) when it happens.
  let unsure: number | null = null;
  async function reconcile(worker: number): Promise<void> {
    const lost = (await q.ownedTaskIds(sql, worker)).filter((id) => tasks.get(id) === undefined);
    const freed = await q.freeTasks(sql, worker, lost);
    if (freed > 0) log.warn({ worker, freed }, 'freed tasks a claim whose answer was lost had made this worker\'s; they are claimed again');
  }
  const claimer = new ClaimLoop<q.ClaimedRow>({
    name: 'poller',
    async claim(limit) {
      const worker = aliveId();
      const room = Math.min(limit, tasks.room());
      if (worker === null || room <= 0) return [];
      if (unsure !== null) {
        if (unsure === worker) await reconcile(worker);
        unsure = null;
      }
      let rows: q.ClaimedRow[];
      try {
        rows = await q.claimTasks(sql, { worker, limit: room, aheadMs: CLAIM_AHEAD_MS });
      } catch (err) {
        unsure = worker;
        throw err;
      }
      metrics?.claimed('poller', rows.length);
      if (liveness.id !== worker) return []; // lost meanwhile: these were freed with the rest
      for (const r of rows) {
        const t = tasks.adopt(r, worker);
        heap.schedule(t, t.due);
      }
      return rows;
    },
    async work() {},
    nextDueMs: async () => {
      if (tasks.room() <= 0) return null;
      const ms = await q.nextUnownedDueMs(sql);
      return ms === null ? null : ms - CLAIM_AHEAD_MS;
    },
    maxInFlight: CLAIM_BATCH * 4,
    batchSize: CLAIM_BATCH,
    idleMs: o.idleMs ?? 250,
    log,
  });

  return {
    get healthy() {
      return claimer.healthy;
    },
    /** for tests and the bench: what this worker owns */
    get owned() {
      return tasks.size;
    },
    get workerId() {
      return liveness.id;
    },
    /** this worker's id while it may act (heard from the database within half the timeout), else null */
    get aliveWorkerId() {
      return aliveId();
    },
    start(): void {
      if (running) return;
      running = true;
      // a task removed by someone else (its last watch cancelled): stop polling it now
      listening = sql
        .listen(q.TASK_GONE_CHANNEL, (id) => {
          const t = tasks.get(Number(id));
          if (t) tasks.drop(t);
        })
        .catch((err: unknown) => {
          log.warn({ err }, 'could not listen for removed tasks; a cancelled task is dropped at its next write instead');
          return undefined;
        });
      void liveness.start().then(() => {
        if (!running) return;
        claimer.start();
        heap.start();
        housekeeping = setInterval(() => void keeper.tick(), Math.min(1_000, checkpointMs / 4));
      });
    },
    wake(): void {
      claimer.wake();
    },
    /**
     * Graceful stop: no new polls; the ones in flight may finish within deadlineMs; then
     * everything is handed back at once with its due time (the in-flight rest due now),
     * and the worker row retired. → whether every poll finished.
     */
    async stop(deadlineMs: number): Promise<boolean> {
      running = false;
      clearInterval(housekeeping);
      void listening?.then((l) => l?.unlisten()).catch(() => {});
      await claimer.stop(deadlineMs);
      await heap.stop();
      const until = now() + deadlineMs;
      while (heap.inFlight > 0 && now() < until) await new Promise((r) => setTimeout(r, 20));
      const finished = heap.inFlight === 0;
      await writes.drain().catch(() => {});
      const worker = liveness.id;
      if (worker !== null) {
        const all = tasks.all().filter((t) => t.owner === worker);
        try {
          for (let i = 0; i < all.length; i += WRITE_CHUNK) {
            await q.releaseTasks(sql, worker, all.slice(i, i + WRITE_CHUNK).map((t) => (t.busy ? { ...scheduleState(t), dueInMs: 0 } : scheduleState(t))));
          }
        } catch (err) {
          log.warn({ err }, 'could not hand back tasks; they are freed once this worker counts as dead');
        }
        tasks.dropAll();
        heap.clear();
      }
      await liveness.stop().catch((err: unknown) => log.warn({ err }, 'could not retire the worker row; it counts as dead after the timeout'));
      return finished;
    },
  };
}

export type { TaskState };
