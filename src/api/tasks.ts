// /v1/tasks/{task_id}: the last upstream answer, verbatim. The predicted completion
// rides in headers (Taskhook-Eta-P50 / -P90), never in upstream's own body.
import { Hono } from 'hono';
import type { AppEnv, AppDeps } from './app.js';
import { NotFound } from './errors.js';
import { TASK_ID } from './validation.js';

export function taskRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  app.get('/:task_id', async (c) => {
    const taskId = c.req.param('task_id');
    const snapshot = TASK_ID.test(taskId) ? await deps.watches.taskSnapshot(c.var.tenant.id, taskId) : undefined;
    if (snapshot === undefined) throw NotFound('snapshot for task', taskId);
    const eta = deps.durations?.eta(c.var.tenant.id, parseObject(snapshot)) ?? null;
    return c.body(snapshot, 200, {
      'content-type': 'application/json',
      ...(eta ? { 'taskhook-eta-p50': eta.p50, 'taskhook-eta-p90': eta.p90 } : {}),
    });
  });
  return app;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
