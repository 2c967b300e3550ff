// Simulated upstream task store (CONTRACT §1), pure logic with no HTTP and no
// clock of its own. Each task follows a scripted timeline that is evaluated
// lazily at the `now` passed in, so tests can step time deterministically and
// the HTTP server can use the wall clock. Also holds scripted answer overrides
// (401/429/5xx/malformed/hang) that the server applies before the real answer.
import { randomUUID } from 'node:crypto';
import { drawDurationMs, specName, type DurationSpec } from './durations.js';

export type Capability = 'voice' | 'image' | 'video';
export type Outcome = 'completed' | 'failed' | 'cancelled';
export type TaskStatus = 'pending' | 'processing' | Outcome;

export interface TaskError {
  code: string;
  message: string;
  type: string;
}

export interface TaskScript {
  task_id?: string;
  capability?: Capability;
  action?: string;
  model?: string;
  outcome?: Outcome;
  /** ms after creation when status turns from pending to processing */
  processingAfterMs?: number;
  /** ms after creation when the task reaches its terminal outcome */
  durationMs?: number;
  /** unknown fields flattened onto the top level once completed */
  extra?: Record<string, unknown>;
  /** reported when outcome is 'failed' */
  error?: TaskError;
  metadata?: unknown;
}

/** The upstream JSON object exactly as GET /api/v2/tasks/:id answers it. */
export interface TaskView {
  task_id: string;
  status: TaskStatus;
  capability: Capability;
  action: string;
  model: string;
  progress: number | null;
  error: TaskError | null;
  credits_used: number | null;
  created_at: number;
  completed_at: number | null;
  metadata: unknown;
  [resultField: string]: unknown;
}

/** A canned HTTP answer that replaces the real one for GET polls. */
export interface Override {
  status: number;
  /** a string or bytes (a Buffer) are sent verbatim (e.g. malformed JSON, invalid UTF-8); an object as JSON */
  body?: string | object;
  headers?: Record<string, string>;
  /** never answer: the request stays open until the client gives up or the server closes */
  hang?: boolean;
  /** apply to this many requests only, then clear itself; unset = until removed */
  times?: number;
}

export const DEFAULT_PROCESSING_AFTER_MS = 500;
export const DEFAULT_DURATION_MS = 3000;
export const DEFAULT_FAILURE: TaskError = {
  code: 'generation_failed',
  message: 'The provider could not generate a result for this task.',
  type: 'provider_error',
};

// Defaults mirror what the real upstream reports for each capability.
const DEFAULTS: Record<Capability, { action: string; model: string; credits: number }> = {
  voice: { action: 'clone', model: 'v1-real', credits: 1 },
  image: { action: 'generate', model: 'img-v1', credits: 2 },
  video: { action: 'generate', model: 'vid-v1', credits: 10 },
};

// `.invalid` (RFC 2606) so nothing ever tries to fetch a simulated result for real.
const RESULT_BASE = 'https://sim-results.invalid';

interface StoredTask {
  task_id: string;
  capability: Capability;
  action: string;
  model: string;
  outcome: Outcome;
  createdAtMs: number;
  processingAtMs: number;
  terminalAtMs: number;
  extra: Record<string, unknown>;
  error: TaskError;
  metadata: unknown;
}

interface ActiveOverride {
  override: Override;
  remaining: number; // Infinity when `times` is unset
}

const wholeSeconds = (ms: number): number => Math.floor(ms / 1000);
const fractionalSeconds = (ms: number): number => ms / 1000;

function resultFields(t: StoredTask): Record<string, unknown> {
  switch (t.capability) {
    case 'voice':
      return {
        audioUrl: `${RESULT_BASE}/${t.task_id}.wav`,
        _type: 'audio',
        format: 'wav',
        degraded: false,
        providerUsed: 'v1-async',
      };
    case 'image':
      return { imageUrl: `${RESULT_BASE}/${t.task_id}.png`, width: 1024, height: 1024 };
    case 'video':
      return { videoUrl: `${RESULT_BASE}/${t.task_id}.mp4`, durationSeconds: 5 };
  }
}

function nonNegative(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
  return v;
}

export interface SimTaskStoreOptions {
  /**
   * created_at / completed_at with milliseconds (fractional Unix seconds), for
   * time-compressed runs where whole seconds would be too coarse; default whole seconds
   * as the real upstream answers.
   */
  fractionalTimestamps?: boolean;
  /** report progress: null while processing, as the real upstream does (default: linear progress) */
  noProgress?: boolean;
  /**
   * How long a task takes when its script gives no durationMs: drawn from the spec of its
   * kind (src/sim/durations.ts), time-compressed by `scale`. Without one, DEFAULT_DURATION_MS.
   */
  durations?: { specs: DurationSpec[]; random: () => number; scale?: number };
}

export class SimTaskStore {
  private readonly tasks = new Map<string, StoredTask>();
  private readonly overrides = new Map<string, ActiveOverride>();
  private readonly toSeconds: (ms: number) => number;

  constructor(private readonly opts: SimTaskStoreOptions = {}) {
    this.toSeconds = opts.fractionalTimestamps ? fractionalSeconds : wholeSeconds;
  }

  /** Replaces (or adds) the duration model of one kind: later tasks of it are drawn from the new one. */
  setDurationSpec(spec: DurationSpec): void {
    const d = this.opts.durations;
    if (!d) throw new Error('this store has no duration model');
    const i = d.specs.findIndex((s) => specName(s) === specName(spec));
    if (i >= 0) d.specs[i] = spec;
    else d.specs.push(spec);
  }

  private drawnDuration(capability: Capability, action: string, model: string): number | undefined {
    const d = this.opts.durations;
    const spec = d?.specs.find((s) => s.capability === capability && s.action === action && s.model === model);
    return spec && drawDurationMs(spec, d!.random, d!.scale ?? 1);
  }

  /** Registers a task scripted from `now`; re-using a task_id replaces the old script. */
  create(script: TaskScript, now: number): TaskView {
    const capability = script.capability ?? 'voice';
    const processingAfter = nonNegative('processingAfterMs', script.processingAfterMs ?? DEFAULT_PROCESSING_AFTER_MS);
    const action = script.action ?? DEFAULTS[capability].action;
    const model = script.model ?? DEFAULTS[capability].model;
    const duration = nonNegative('durationMs', script.durationMs ?? this.drawnDuration(capability, action, model) ?? DEFAULT_DURATION_MS);
    const task: StoredTask = {
      task_id: script.task_id ?? randomUUID(),
      capability,
      action,
      model,
      outcome: script.outcome ?? 'completed',
      createdAtMs: now,
      processingAtMs: now + processingAfter,
      terminalAtMs: now + duration,
      // Cloned so later mutation of the caller's script cannot rewrite history.
      extra: structuredClone(script.extra ?? {}),
      error: structuredClone(script.error ?? DEFAULT_FAILURE),
      metadata: structuredClone(script.metadata ?? null),
    };
    this.tasks.set(task.task_id, task);
    return this.view(task, now);
  }

  /** The upstream JSON object for `task_id` at time `now`, or undefined if unknown. */
  get(task_id: string, now: number): TaskView | undefined {
    const task = this.tasks.get(task_id);
    return task && this.view(task, now);
  }

  has(task_id: string): boolean {
    return this.tasks.has(task_id);
  }

  delete(task_id: string): boolean {
    return this.tasks.delete(task_id);
  }

  /** Installs (or with `undefined` removes) an override for one task, or for all with '*'. */
  setOverride(task_id: string, override: Override | undefined): void {
    if (override === undefined) {
      this.overrides.delete(task_id);
      return;
    }
    const remaining = override.times ?? Infinity;
    if (remaining <= 0) this.overrides.delete(task_id);
    else this.overrides.set(task_id, { override: { ...override }, remaining });
  }

  /**
   * The override that answers this request, consuming one use of it. A
   * task-specific override wins over '*' so one task can misbehave while a
   * global fault is also being injected.
   */
  takeOverride(task_id: string): Override | undefined {
    for (const key of [task_id, '*']) {
      const active = this.overrides.get(key);
      if (!active) continue;
      active.remaining -= 1;
      if (active.remaining <= 0) this.overrides.delete(key);
      return active.override;
    }
    return undefined;
  }

  clearOverrides(): void {
    this.overrides.clear();
  }

  private view(t: StoredTask, now: number): TaskView {
    const status = this.statusAt(t, now);
    const base: TaskView = {
      task_id: t.task_id,
      status,
      capability: t.capability,
      action: t.action,
      model: t.model,
      progress: null,
      error: null,
      credits_used: null,
      created_at: this.toSeconds(t.createdAtMs),
      completed_at: null,
      metadata: structuredClone(t.metadata),
    };
    if (status === 'processing' && !this.opts.noProgress) {
      // Linear over the processing window; capped below 1 so only completion reports 1.
      const span = t.terminalAtMs - t.processingAtMs;
      const frac = span > 0 ? (now - t.processingAtMs) / span : 0;
      base.progress = Math.min(0.99, Math.max(0, Math.round(frac * 100) / 100));
      return base;
    }
    if (status === 'pending' || status === 'processing') return base;

    base.completed_at = this.toSeconds(t.terminalAtMs);
    if (status === 'failed') {
      base.error = structuredClone(t.error);
      return base;
    }
    if (status === 'cancelled') return base;
    return {
      ...base,
      progress: 1,
      credits_used: DEFAULTS[t.capability].credits,
      ...resultFields(t),
      ...structuredClone(t.extra),
    };
  }

  private statusAt(t: StoredTask, now: number): TaskStatus {
    if (now >= t.terminalAtMs) return t.outcome;
    if (now >= t.processingAtMs) return 'processing';
    return 'pending';
  }
}
