// Run-time control and the poll log of the simulated upstream, for the chaos soak
// (soak/) and anyone poking a running sim by hand. Off unless the server is started
// with `admin: true`; then, under /_sim:
//   POST   /_sim/faults  {mode, ms, key?, retry_after_s?}  every poll (or those made with
//          API key `key`) answers `mode` for the next `ms`: 500, 429 + Retry-After,
//          garbage (200 with a cut-off JSON body) or hang (never answers)
//   DELETE /_sim/faults  ends every fault window now
//   GET    /_sim/log     every poll served so far: [at ms, task_id, key, HTTP status,
//          sha1 of the 200 body or null], and each task's terminal answer, verbatim
// A fault window is answered before authentication, as a broken upstream would.
import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';

export const FAULT_MODES = ['500', '429', 'garbage', 'hang'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface FaultWindow {
  mode: FaultMode;
  until: number;
  /** only polls made with this bearer key; unset = every poll */
  key?: string | undefined;
  retryAfterS: number;
}

/** [at ms, task_id, bearer key ('' if none), HTTP status (0 = hung), sha1 of a 200 body or null] */
export type PollRecord = [number, string, string, number, string | null];

export interface SimLog {
  polls: PollRecord[];
  /** task_id → the first terminal answer served for it, byte for byte */
  terminal: Record<string, string>;
}

const faultBody = z.strictObject({
  mode: z.enum(FAULT_MODES),
  ms: z.number().positive().max(3_600_000),
  key: z.string().min(1).optional(),
  retry_after_s: z.number().int().min(0).max(3600).optional(),
});

export const bodyHash = (body: string) => createHash('sha1').update(body).digest('base64url');

export class SimAdmin {
  private windows: FaultWindow[] = [];
  private readonly polls: PollRecord[] = [];
  private readonly terminal = new Map<string, string>();

  constructor(private readonly now: () => number) {}

  /** The fault window answering a poll made with `key` now, if any (the newest wins). */
  faultFor(key: string | undefined): FaultWindow | undefined {
    const at = this.now();
    this.windows = this.windows.filter((w) => w.until > at);
    for (let i = this.windows.length - 1; i >= 0; i--) {
      const w = this.windows[i]!;
      if (w.key === undefined || w.key === key) return w;
    }
    return undefined;
  }

  record(at: number, taskId: string, key: string | undefined, status: number, body?: string, terminal = false): void {
    this.polls.push([at, taskId, key ?? '', status, body === undefined ? null : bodyHash(body)]);
    if (terminal && body !== undefined && !this.terminal.has(taskId)) this.terminal.set(taskId, body);
  }

  routes(): Hono {
    const app = new Hono();
    app.post('/faults', async (c) => {
      const parsed = faultBody.safeParse(await c.req.json().catch(() => undefined));
      if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
      const { mode, ms, key, retry_after_s } = parsed.data;
      const w: FaultWindow = { mode, until: this.now() + ms, key, retryAfterS: retry_after_s ?? 1 };
      this.windows.push(w);
      return c.json({ mode, until: w.until, key: key ?? null }, 201);
    });
    app.delete('/faults', (c) => {
      this.windows = [];
      return c.body(null, 204);
    });
    app.get('/log', (c) => c.json({ polls: this.polls, terminal: Object.fromEntries(this.terminal) } satisfies SimLog));
    return app;
  }
}

/** The answer of a fault window (`hang` is the caller's to do: it has the request to hold). */
export function faultResponse(w: FaultWindow): Response {
  switch (w.mode) {
    case '500':
      return Response.json({ error: { code: 'internal', message: 'simulated outage', type: 'server' } }, { status: 500 });
    case '429':
      return Response.json(
        { error: { code: 'rate_limited', message: 'simulated rate limit', type: 'rate_limit' } },
        { status: 429, headers: { 'retry-after': String(w.retryAfterS) } },
      );
    default:
      return new Response('{"task_id":"', { status: 200, headers: { 'content-type': 'application/json' } });
  }
}
