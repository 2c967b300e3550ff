// The poller (scheduler v2): this worker claims due tasks in batches and owns them while
// it is alive (liveness.ts); it keeps them in a timer heap and polls each on its cadence,
// asking upstream once per task however many watches share it. What an answer comes to is
// decide.ts; a poll that changes nothing writes nothing. Durable writes (sql.ts), batched
// and fenced by ownership: a changed snapshot, the first `processing`, a poll error's
// transitions, a task's end with its outbox rows in one transaction, a rolling checkpoint
// of poll counts and due times (tuning.ts CHECKPOINT_MS), hand-backs.
import type { Sql } from '../db/client.js';
import { ClaimLoop } from '../engine/loop.js';
import { TimerHeap } from '../engine/timer-heap.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import { TERMINAL_STATUSES, type PollResult, type UpstreamClient } from '../upstream/client.js';
import { nextPollDelayMs } from '../upstream/schedule.js';
import type { DurationCache } from '../durations/cache.js';
import { webhookHead } from '../delivery/outbox.js';
import type { Logger } from '../log.js';
import { Breaker, overranDeadline } from '../engine/breaker.js';
import { TokenBuckets } from '../engine/token-bucket.js';
import { BatchWriter } from '../engine/batch.js';
import { PollErrorLog, pollErrorOf } from './poll-error.js';
import { decide, type Answer, type Decision, type TaskState } from './decide.js';
import * as q from './sql.js';
import { WorkerLiveness } from './liveness.js';
import { Ownership, type Owned } from './ownership.js';
import { CHECKPOINT_MS, CLAIM_AHEAD_MS, CLAIM_BATCH, DEFAULT_WORKER_TIMEOUT_MS, MAX_IN_FLIGHT, WRITE_CHUNK } from './tuning.js';
import { noFaults, type Fault } from '../faults.js';
import type { Metrics, PollOutcome } from '../metrics.js';
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
  durations?: Pick<DurationCache, 'prepare' | 'timingFor'>;
}

const pollOutcome = (r: PollResult | { kind: 'unchanged' }): PollOutcome =>
  r.kind === 'unchanged' ? 'running' : r.kind === 'task' ? (TERMINAL_STATUSES.has(r.status) ? 'terminal' : 'running') : r.kind;

export function createPoller(o: PollerOptions) {
  const { sql, log, metrics } = o;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const fault = o.fault ?? noFaults;
  const limits = { notFoundGraceMs: o.notFoundGraceMs, maxWatchAgeMs: o.maxWatchAgeMs };
  const maxInFlight = o.maxInFlight ?? MAX_IN_FLIGHT;
  // The checkpoint bound scales with the cadence (tests and demos poll 20× faster).
  const checkpointMs = Math.max(250, CHECKPOINT_MS * Math.min(1, o.pollScale ?? 1));
  const keepEveryMs = Math.min(1_000, checkpointMs / 4);
  // Per-tenant upstream health: a 429 or a run of errors pauses that tenant's polling.
  const pollBuckets = new TokenBuckets();
  const upstreamBreaker = new Breaker({ threshold: 5, baseOpenMs: 5_000 * (o.pollScale ?? 1), maxOpenMs: 300_000 });
  const pollErrors = new PollErrorLog(log, now);
  const tasks = new Ownership(now);
  const heap = new TimerHeap<Owned>();
  let running = false;
  let inFlight = 0;
  let idleDone: Promise<void> | undefined;
  let listening: Promise<{ unlisten(): Promise<void> } | undefined> | undefined;

  const liveness = new WorkerLiveness({
    sql,
    log,
    timeoutMs: o.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS,
    version: VERSION,
    owned: () => tasks.size,
    onLost: (reason) => {
      const n = tasks.dropAll();
      heap.clear();
      handBack.length = 0; // their rows were freed with the rest
      log.warn({ tasks: n, reason }, 'dropped every task this worker owned');
    },
    onHeartbeat: (hb) => tasks.heard(hb),
  });

  // ---- durable writes, batched, each fenced by the worker id the task was claimed under
  const byOwner = async <T extends { owner: number }, R>(rows: T[], write: (owner: number, rows: T[]) => Promise<R[]>): Promise<R[]> => {
    const groups = new Map<number, number[]>();
    rows.forEach((r, i) => groups.set(r.owner, [...(groups.get(r.owner) ?? []), i]));
    const out = new Array<R>(rows.length);
    for (const [owner, idx] of groups) {
      const res = await write(owner, idx.map((i) => rows[i]!));
      idx.forEach((i, k) => (out[i] = res[k]!));
    }
    return out;
  };
  type Item<T> = T & { owner: number };
  const writer = new BatchWriter<Item<q.TaskWrite>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => {
      const done = await q.writeTasks(sql, owner, rs);
      return rs.map((r) => done.has(r.id));
    }),
    WRITE_CHUNK,
    10,
  );
  const ended = (res: { done: Set<number>; enqueued: number }, ids: number[]) => {
    if (res.enqueued > 0) o.onEnqueued?.();
    return ids.map((id) => res.done.has(id));
  };
  const finisher = new BatchWriter<Item<q.Finish>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => ended(await q.finishTasks(sql, owner, rs, new Date(now())), rs.map((r) => r.id))),
    500,
    5,
  );
  const starter = new BatchWriter<Item<q.Started>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => ended(await q.startTasks(sql, owner, rs, new Date(now())), rs.map((r) => r.id))),
    500,
    10,
  );

  // ---- asking upstream
  async function ask(task: Owned): Promise<Answer> {
    const tenant = await o.tenants.get(task.tenant_id);
    if (!tenant) {
      metrics?.poll('skipped');
      return { kind: 'no_tenant' };
    }
    const paused = upstreamBreaker.openFor(task.tenant_id, now());
    if (paused > 0) {
      metrics?.poll('throttled');
      return { kind: 'throttled', retryAfterMs: paused };
    }
    const rate = tenant.limits.maxPollsPerS;
    if (rate !== null) {
      const waitMs = pollBuckets.take(task.tenant_id, rate, Math.max(1, rate), now());
      if (waitMs > 0) {
        metrics?.poll('throttled');
        return { kind: 'throttled', retryAfterMs: waitMs + random() * 1000 };
      }
    }
    const asked = now();
    log.debug({ task_id: task.task_id, worker: task.owner }, 'polling');
    // Adaptive polling needs the answer's kind, age and progress: until this worker has parsed
    // one (a task just adopted), an answer equal to the stored one is parsed once all the same.
    const knownHash = o.durations && !task.parsed ? undefined : (task.snapshot_hash ?? undefined);
    const result = await o.upstream.fetchTask(tenant.upstreamBaseUrl, tenant.upstreamApiKey, task.task_id, knownHash);
    if (result.kind === 'task') {
      task.parsed = true;
      task.timing = o.durations?.prepare(task.tenant_id, result.body);
    }
    task.polls++;
    metrics?.poll(pollOutcome(result));
    const failed = result.kind === 'unchanged' ? null : pollErrorOf(result);
    if (failed !== null) pollErrors.failed(task.tenant_id, task.task_id, failed);
    // (a failure that overran its deadline: this process was paused, which says nothing about upstream)
    const wePaused = o.requestTimeoutMs !== undefined && overranDeadline(now() - asked, o.requestTimeoutMs);
    if (!(wePaused && result.kind === 'error')) await trackUpstreamHealth(task.tenant_id, result);
    return result;
  }

  async function trackUpstreamHealth(tenantId: string, result: PollResult | { kind: 'unchanged' }) {
    const defer = async (ms: number) => {
      const moved = await q.deferTenant(sql, tenantId, ms);
      log.warn({ tenant: tenantId, pause_ms: Math.round(ms), tasks: moved }, 'pausing polls for tenant');
    };
    if (result.kind === 'rate_limited') {
      const ms = result.retryAfterMs ?? 5_000 * (o.pollScale ?? 1);
      if (upstreamBreaker.block(tenantId, now(), ms)) await defer(ms);
    } else if (result.kind === 'error') {
      const ms = upstreamBreaker.failure(tenantId, now());
      if (ms > 0) await defer(ms);
    } else {
      upstreamBreaker.success(tenantId);
    }
  }

  // ---- one poll, start to end
  const schedule = (task: Owned, dueAt: number) => {
    task.due = dueAt;
    heap.push(dueAt, task);
    if (dueAt < nextWake) wake();
  };
  /** The one place the cadence is decided (upstream/schedule.ts). */
  const delayFor = (task: Owned, signal: Parameters<typeof nextPollDelayMs>[0]) =>
    nextPollDelayMs(signal, { ageMs: now() - task.createdAt, random: random(), scale: o.pollScale, adaptive: o.durations?.timingFor(task.timing) });
  const scheduleState = (task: Owned): q.ScheduleState => ({
    id: task.id,
    dueInMs: task.due - now(),
    polls: task.polls,
    unauthorized: task.unauthorized_streak,
    errors: task.error_streak,
  });

  let lastPollFailureLog = 0;
  async function poll(task: Owned): Promise<void> {
    task.busy = true;
    try {
      metrics?.pollLateness(Math.max(0, now() - Math.max(task.due, task.adoptedAt)) / 1000);
      tasks.started(task);
      fault('poll.after-claim');
      const answer = await ask(task);
      fault('poll.before-commit');
      if (task.gone) return; // no longer ours (fenced, handed back): write nothing
      if (!liveness.active) {
        // not heard from the database lately (paused, cut off): don't act on it; ask again once alive
        schedule(task, now() + delayFor(task, { kind: 'ok' }));
        return;
      }
      await apply(task, decide(task, answer, now(), limits));
    } catch (err) {
      // (the database gone: every poll in flight fails at once; one line a second says so)
      if (now() - lastPollFailureLog > 1_000) {
        lastPollFailureLog = now();
        log.warn({ err, task_id: task.task_id }, 'recording a poll failed; polling the task again after a backoff');
      }
      if (!task.gone) schedule(task, now() + delayFor(task, { kind: 'error', streak: Math.max(1, task.error_streak) }));
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
      const ok = await finisher.add({
        owner: task.owner,
        id: task.id,
        polls: task.polls,
        type: d.event,
        head: webhookHead(d.event, new Date(now())),
        data: d.data,
        status: d.snapshot?.status ?? null,
        raw: d.snapshot?.raw ?? null,
      });
      tasks.drop(task);
      if (!ok) log.info({ task_id: task.task_id }, 'task no longer owned by this worker: its end is left to the owner');
      return;
    }
    task.unauthorized_streak = d.unauthorized_streak;
    task.error_streak = d.error_streak;
    task.processing_seen = d.processing_seen;
    task.due = now() + delayFor(task, d.signal);
    let ok = true;
    if (d.startProcessing && d.snapshot) {
      ok = await starter.add({ owner: task.owner, ...scheduleState(task), status: d.snapshot.status, raw: d.snapshot.raw, hash: d.snapshot.hash, head: webhookHead('task.processing', new Date(now())) });
    } else if (d.write) {
      ok = await writer.add({
        owner: task.owner,
        ...scheduleState(task),
        processing: task.processing_seen,
        status: d.snapshot?.status ?? null,
        raw: d.snapshot?.raw ?? null,
        hash: d.snapshot?.hash ?? null,
        pollErrorChanged: d.pollError ? 1 : 0,
        pollError: d.pollError?.message ?? null,
      });
    } else {
      task.dirty = true;
    }
    if (task.gone) return;
    if (!ok) {
      tasks.drop(task);
      log.info({ task_id: task.task_id }, 'task no longer owned by this worker (taken over, cancelled or handed back): dropped');
      return;
    }
    if (d.write || d.startProcessing) {
      if (d.snapshot) task.snapshot_hash = d.snapshot.hash;
      if (d.pollError) task.last_poll_error = d.pollError.message;
      if (d.startProcessing) task.last_poll_error = null;
      tasks.written(task);
    }
    schedule(task, task.due);
  }

  // ---- the dispatcher: pops due tasks off the heap and polls them
  let nextWake = Number.POSITIVE_INFINITY;
  let wakeUp: (() => void) | undefined;
  function wake() {
    wakeUp?.();
  }
  async function dispatch(): Promise<void> {
    while (running) {
      if (liveness.active) {
        const t = now();
        while (inFlight < maxInFlight) {
          const task = heap.popDue(t);
          if (!task) break;
          if (task.gone) continue; // dropped: its entry is removed lazily, here
          if (task.busy) {
            // rescheduled by its own poll, which has not quite returned yet: look again in a moment
            heap.push(t + 1, task);
            continue;
          }
          inFlight++;
          void poll(task).finally(() => {
            inFlight--;
            if (inFlight === maxInFlight - 1) wake();
          });
        }
      }
      const next = heap.peekDue();
      const ms = !liveness.active ? 50 : inFlight >= maxInFlight ? 1_000 : next === undefined ? 250 : Math.min(250, Math.max(1, next - now()));
      nextWake = now() + ms;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      });
    }
  }

  // ---- the claim: unowned due tasks become ours, up to what we can poll on time
  const claimer = new ClaimLoop<q.ClaimedRow>({
    name: 'poller',
    async claim(limit) {
      const worker = liveness.id;
      const room = Math.min(limit, tasks.room());
      if (worker === null || !liveness.active || room <= 0) return [];
      const rows = await q.claimTasks(sql, { worker, limit: room, aheadMs: CLAIM_AHEAD_MS });
      metrics?.claimed('poller', rows.length);
      if (liveness.id !== worker) return []; // lost meanwhile: these were freed with the rest
      for (const r of rows) {
        const t = tasks.adopt(r, worker);
        schedule(t, t.due);
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

  // ---- checkpoints, capacity and balance, once a second
  let housekeeping: NodeJS.Timeout | undefined;
  let busyKeeping = false;
  /** tasks dropped from memory whose rows are still to be freed (due times as when dropped) */
  const handBack: q.ScheduleState[] = [];
  async function keep(): Promise<void> {
    if (busyKeeping || !liveness.active || liveness.id === null) return;
    busyKeeping = true;
    try {
      const worker = liveness.id;
      const due = tasks.checkpointDue(checkpointMs);
      for (let i = 0; i < due.length; i += WRITE_CHUNK) {
        const chunk = due.slice(i, i + WRITE_CHUNK).filter((t) => t.owner === worker);
        const done = await q.writeTasks(
          sql,
          worker,
          chunk.map((t) => ({ ...scheduleState(t), processing: t.processing_seen, status: null, raw: null, hash: null, pollErrorChanged: 0, pollError: null })),
        );
        for (const t of chunk) if (done.has(t.id)) tasks.written(t); else if (!t.busy) tasks.drop(t);
      }
      // Hand-backs leave memory first, so none of them starts a poll while its row is being
      // freed (another worker — or this one — may claim it the moment it is); one that
      // cannot be written yet is retried next tick, still unowned in memory.
      for (const t of tasks.excess()) {
        tasks.drop(t);
        handBack.push(scheduleState(t));
      }
      if (handBack.length > 0) {
        const rows = handBack.splice(0, WRITE_CHUNK);
        try {
          const n = await q.releaseTasks(sql, worker, rows);
          log.info({ handed_back: n, owned: tasks.size, cap: tasks.cap }, 'handed back tasks over this worker\'s share or capacity');
        } catch (err) {
          handBack.unshift(...rows);
          throw err;
        }
      }
    } catch (err) {
      log.warn({ err }, 'checkpoint failed; retrying next tick');
    } finally {
      busyKeeping = false;
    }
  }

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
      return liveness.active ? liveness.id : null;
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
        idleDone = dispatch();
        housekeeping = setInterval(() => void keep(), keepEveryMs);
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
      wake();
      clearInterval(housekeeping);
      void listening?.then((l) => l?.unlisten()).catch(() => {});
      await claimer.stop(deadlineMs);
      await idleDone;
      const until = now() + deadlineMs;
      while (inFlight > 0 && now() < until) await new Promise((r) => setTimeout(r, 20));
      const finished = inFlight === 0;
      await Promise.all([writer.drain(), finisher.drain(), starter.drain()]).catch(() => {});
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
