// The simulated upstream's generation endpoints, as the real one has them: every one is
// async and answers 202 with the new task in the unified shape (task_id, status pending,
// capability, action, model, …), to be polled at GET /api/v2/tasks/{task_id}.
//
//   POST /api/v2/voice/clone      {text, reference_audio_url | voice_id, model?, metadata?, …}
//   POST /api/v2/image/generate   {prompt, model?, size?, image_urls?, metadata?, …}
//   POST /api/v2/video/generate   {prompt, model?, duration?, aspect_ratio?, metadata?, …}
//
// Tasks are made through the same SimTaskStore as POST /api/v2/tasks, with its
// defaults; an optional `_sim` object in the body scripts the task like that endpoint's
// body (outcome, durationMs, processingAfterMs, extra, error) — the real upstream has
// no such field, tests and demos use it. Every request is logged (path, headers, body)
// so tests can count submits and see exactly what reached upstream.
//
// The knob (SubmitFault, set with setSubmitFault or POST /_sim/submit-faults) makes the
// next submits answer something else: 400/401/422/429/500/503 with an error body and no
// task created; `timeout` creates the task and never answers (upstream took it, the
// caller can't know); `garbage` creates it and answers a cut-off body; `no_task_id`
// creates it and answers 202 without a task_id; `delayMs` answers normally, later.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { Capability, SimTaskStore, TaskScript } from './tasks.js';

export const GENERATION_ENDPOINTS: Record<string, { capability: Capability; action: string; required: (b: Record<string, unknown>) => string | undefined }> = {
  '/api/v2/voice/clone': {
    capability: 'voice',
    action: 'clone',
    required: (b) =>
      typeof b.text !== 'string' || b.text === ''
        ? 'text is required'
        : typeof b.reference_audio_url !== 'string' && typeof b.voice_id !== 'string'
          ? 'reference_audio_url (or voice_id) is required'
          : undefined,
  },
  '/api/v2/image/generate': { capability: 'image', action: 'generate', required: (b) => (typeof b.prompt !== 'string' || b.prompt === '' ? 'prompt is required' : undefined) },
  '/api/v2/video/generate': { capability: 'video', action: 'generate', required: (b) => (typeof b.prompt !== 'string' || b.prompt === '' ? 'prompt is required' : undefined) },
};

export const SUBMIT_FAULT_MODES = ['400', '401', '422', '429', '500', '503', 'timeout', 'garbage', 'no_task_id'] as const;
export type SubmitFaultMode = (typeof SUBMIT_FAULT_MODES)[number];

export interface SubmitFault {
  mode?: SubmitFaultMode;
  /** answer (normally, or as `mode` says) after this long */
  delayMs?: number;
  /** this many submits, then it clears itself; unset = until removed */
  times?: number;
}

export interface SubmitRecord {
  at: number;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** the task created, if any (also under `timeout`, `garbage` and `no_task_id`) */
  task_id: string | null;
}

const simScript = z.strictObject({
  outcome: z.enum(['completed', 'failed', 'cancelled']).optional(),
  processingAfterMs: z.number().nonnegative().optional(),
  durationMs: z.number().nonnegative().optional(),
  extra: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string(), type: z.string() }).optional(),
});

const faultBody = z.strictObject({
  mode: z.enum(SUBMIT_FAULT_MODES).optional(),
  delayMs: z.number().nonnegative().max(3_600_000).optional(),
  times: z.number().int().positive().optional(),
});

const apiError = (code: string, message: string, type: string) => ({ error: { code, message, type } });

export interface GenerationDeps {
  store: SimTaskStore;
  now: () => number;
  authorized: (c: Context) => boolean;
  /** holds the request open until the client goes or the server closes */
  hang: (c: Context) => Promise<Response>;
}

export class SimGeneration {
  readonly log: SubmitRecord[] = [];
  private fault: (SubmitFault & { remaining: number }) | undefined;

  constructor(private readonly d: GenerationDeps) {}

  setFault(f: SubmitFault | undefined): void {
    this.fault = f ? { ...f, remaining: f.times ?? Infinity } : undefined;
  }

  private takeFault(): SubmitFault | undefined {
    const f = this.fault;
    if (!f) return undefined;
    f.remaining -= 1;
    if (f.remaining <= 0) this.fault = undefined;
    return f;
  }

  /** generation requests received at `path` (or all), whatever their answer */
  count(path?: string): number {
    return path === undefined ? this.log.length : this.log.filter((r) => r.path === path).length;
  }

  mount(app: Hono): void {
    for (const [path, ep] of Object.entries(GENERATION_ENDPOINTS)) {
      app.post(path, async (c) => {
        const text = await c.req.text();
        const rec: SubmitRecord = { at: this.d.now(), path, headers: Object.fromEntries(c.req.raw.headers), body: text, task_id: null };
        this.log.push(rec);
        const fault = this.takeFault();
        if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
        switch (fault?.mode) {
          case '400':
          case '422':
            return c.json(apiError('invalid_request', 'simulated: the request was refused', 'invalid_request'), Number(fault.mode) as 400);
          case '401':
            return c.json(apiError('unauthorized', 'Invalid or missing API key', 'auth'), 401);
          case '429':
            return c.json(apiError('rate_limited', 'simulated rate limit', 'rate_limit'), 429, { 'retry-after': '2' });
          case '500':
            return c.json(apiError('internal', 'simulated outage', 'server'), 500);
          case '503':
            return c.json(apiError('unavailable', 'simulated: not taking tasks now', 'server'), 503);
        }
        if (!this.d.authorized(c)) return c.json(apiError('unauthorized', 'Invalid or missing API key', 'auth'), 401);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return c.json(apiError('invalid_json', 'Request body is not valid JSON', 'invalid_request'), 400);
        }
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          return c.json(apiError('invalid_json', 'Request body must be a JSON object', 'invalid_request'), 400);
        }
        const b = body as Record<string, unknown>;
        const missing = ep.required(b);
        if (missing) return c.json(apiError('invalid_request', missing, 'invalid_request'), 400);
        const sim = simScript.safeParse(b._sim ?? {});
        if (!sim.success) return c.json(apiError('invalid_request', `_sim: ${z.prettifyError(sim.error)}`, 'invalid_request'), 400);
        const script: TaskScript = {
          capability: ep.capability,
          action: ep.action,
          ...(typeof b.model === 'string' ? { model: b.model } : {}),
          ...(b.metadata !== undefined ? { metadata: b.metadata } : {}),
          ...sim.data,
        };
        const task = this.d.store.create(script, this.d.now());
        rec.task_id = task.task_id;
        switch (fault?.mode) {
          case 'timeout':
            return this.d.hang(c);
          case 'garbage':
            return c.body(`{"task_id":"${task.task_id}","sta`, 202, { 'content-type': 'application/json' });
          case 'no_task_id': {
            const { task_id: _omit, ...rest } = task;
            return c.json(rest, 202);
          }
        }
        return c.json(task, 202);
      });
    }
  }

  /** POST/DELETE /_sim/submit-faults and GET /_sim/submits, for a running sim */
  adminRoutes(app: Hono): void {
    app.post('/submit-faults', async (c) => {
      const parsed = faultBody.safeParse(await c.req.json().catch(() => undefined));
      if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
      this.setFault(parsed.data);
      return c.json(parsed.data, 201);
    });
    app.delete('/submit-faults', (c) => {
      this.setFault(undefined);
      return c.body(null, 204);
    });
    app.get('/submits', (c) => c.json(this.log));
  }
}
