// /v1/tasks/{task_id}: the last upstream answer, verbatim.
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
    return c.body(snapshot, 200, { 'content-type': 'application/json' });
  });
  return app;
}
