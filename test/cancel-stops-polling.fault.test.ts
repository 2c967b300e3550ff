// A cancelled task stops being polled at once (issue 14): removing the last watch's task
// row notifies its owner (src/poller/sql.ts removeTask, TASK_GONE_CHANNEL), which drops it
// from memory. Without that the owner kept polling it from memory until its next write
// (a checkpoint: 30 s at the real cadence) found the row gone. Real processes, the real
// 3–6 s cadence, the worker's polls seen through a tagging proxy.
import { afterEach, describe, expect, it } from 'vitest';
import { registerWatch, startFleet, type Fleet } from './support/fleet.js';
import { TEST_API_KEY } from './support/env.js';
import { startTaggingProxy, type TaggingProxy } from './support/tagging-proxy.js';

let f: Fleet | undefined;
let p: TaggingProxy | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
  await p?.close();
  p = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cancel', () => {
  it('the owner stops polling a task whose last watch was cancelled, long before its next checkpoint', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn', TASKHOOK_POLL_SCALE: '1' });
    p = await startTaggingProxy(f.upstream.url);
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    await f.gateway({ TASKHOOK_ROLE: 'worker', UPSTREAM_BASE_URL: p.url });
    const watch = async () => {
      const task = f!.upstream.createTask({ durationMs: 3_600_000, processingAfterMs: 0 });
      return { task: task.task_id, watch: await registerWatch(api, { task_id: task.task_id, callback_url: `${f!.receiver.url}/hook` }) };
    };
    const [gone, kept] = [await watch(), await watch()];
    const polled = (task: string, after = 0) => p!.polls.filter(([at, id]) => id === task && at > after).length;
    // both polled twice: owned and on their cadence (first poll 2 s, then 3–6 s)
    for (let i = 0; i < 200 && (polled(gone.task) < 2 || polled(kept.task) < 2); i++) await sleep(100);
    expect(polled(gone.task)).toBeGreaterThanOrEqual(2);
    const del = await fetch(`${api.url}/v1/watches/${gone.watch}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(del.status).toBeLessThan(300);
    const cancelled = Date.now();
    // (a poll already in flight at the cancel may still land)
    await sleep(1_000);
    const from = Date.now();
    const keptBefore = polled(kept.task, from);
    await sleep(8_000); // more than the longest interval between two polls (6 s)
    expect(polled(kept.task, from) - keptBefore, 'the other task is still polled').toBeGreaterThan(0);
    expect(polled(gone.task, from), 'polls of the cancelled task after the cancel').toBe(0);
    console.info(`cancel: last poll of the cancelled task ${Math.max(0, ...p.polls.filter(([, id]) => id === gone.task).map(([at]) => at - cancelled))} ms after the cancel`);
  });
});
