// taskhook/client against a running gateway: the watch lifecycle through the typed
// client, and every non-2xx answer as a TaskhookError carrying the problem+json.
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createClient, TaskhookError, type TaskhookClient, type Watch } from 'taskhook/client';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY } from './support/env.js';

let s: Stack;
let client: TaskhookClient;
beforeAll(async () => {
  s = await startStack();
  client = createClient({ baseUrl: `${s.gateway.url}/`, apiKey: TEST_API_KEY });
});
afterAll(async () => {
  await s?.close();
});

async function until(watchId: string, status: Watch['status']): Promise<Watch> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const w = await client.watches.get(watchId);
    if (w.status === status) return w;
    if (Date.now() > deadline) throw new Error(`watch ${watchId} is ${w.status}, wanted ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function thrown(p: Promise<unknown>): Promise<TaskhookError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TaskhookError);
  return err as TaskhookError;
}

describe('taskhook/client', () => {
  it('tasks.create submits through taskhook: the task, upstream\'s answer and the watch; the same key replays', async () => {
    const input = {
      submit: { path: '/api/v2/image/generate', body: { prompt: 'a lighthouse', _sim: { durationMs: 200 } } },
      callback_url: `${s.receiver.url}/client-submit`,
      metadata: { via: 'client' },
    };
    const n = s.upstream.submits();
    const first = await client.tasks.create(input, { idempotencyKey: 'client-test-key-1' });
    expect(first.replayed).toBe(false);
    expect(first.upstream).toMatchObject({ task_id: first.task_id, capability: 'image', status: 'pending' });
    expect(first.watch).toMatchObject({ task_id: first.task_id, status: 'watching', metadata: { via: 'client' } });
    const again = await client.tasks.create(input, { idempotencyKey: 'client-test-key-1' });
    expect(again).toEqual({ ...first, replayed: true });
    expect(s.upstream.submits()).toBe(n + 1);
    expect((await until(first.watch.id, 'delivered')).outcome).toBe('task.completed');
    // without a key, each call is a new submit
    await client.tasks.create(input);
    expect(s.upstream.submits()).toBe(n + 2);
    // upstream refusing comes back as a TaskhookError with upstream's status and body
    const err = await thrown(client.tasks.create({ ...input, submit: { path: '/api/v2/image/generate', body: {} } }));
    expect(err.status).toBe(422);
    expect(err.code).toBe('upstream-rejected');
    expect(err.problem).toMatchObject({ outcome: 'not_submitted', upstream_status: 400 });
  });

  it('creates, reads, lists, redelivers and reads the attempts of a watch', async () => {
    const task = s.upstream.createTask({ capability: 'voice', durationMs: 300 });
    const callback_url = `${s.receiver.url}/client`;
    const { watch, created } = await client.watches.create({ task_id: task.task_id, callback_url, metadata: { order: 7 }, events: ['task.completed'] });
    expect(created).toBe(true);
    expect(watch).toMatchObject({ task_id: task.task_id, status: 'watching', metadata: { order: 7 }, events: ['task.completed'] });
    expectTypeOf(watch.status).toEqualTypeOf<'watching' | 'delivering' | 'delivered' | 'undeliverable' | 'cancelled'>();

    const again = await client.watches.create({ task_id: task.task_id, callback_url });
    expect(again).toMatchObject({ created: false, watch: { id: watch.id } });

    const done = await until(watch.id, 'delivered');
    expect(done.last_delivery).toMatchObject({ status: 'delivered', attempts: 1 });
    const snapshot = await client.tasks.get(task.task_id);
    expect(snapshot).toEqual(s.upstream.store.get(task.task_id, Date.now()));
    expect(snapshot.status).toBe('completed');

    const page = await client.watches.list({ task_id: task.task_id, limit: 10 });
    expect(page.data.map((w) => w.id)).toEqual([watch.id]);
    expect(page.next_cursor).toBeNull();

    const redelivering = await client.watches.redeliver(watch.id);
    expect(redelivering.id).toBe(watch.id);
    await until(watch.id, 'delivered');
    const hooks = s.receiver.received.filter((r) => r.json?.watch_id === watch.id);
    expect(hooks).toHaveLength(2);
    expect(hooks[1]!.headers['webhook-id']).toBe(hooks[0]!.headers['webhook-id']);

    const attempts = await client.watches.attempts(watch.id);
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ event_type: 'task.completed', response_status: 204, webhook_id: hooks[0]!.headers['webhook-id'] });
  });

  it('cancels a watch, and pages through watches with iterate()', async () => {
    const tasks = [0, 1, 2].map(() => s.upstream.createTask({ durationMs: 60_000 }));
    const ids: string[] = [];
    for (const t of tasks) ids.push((await client.watches.create({ task_id: t.task_id, callback_url: `${s.receiver.url}/slow` })).watch.id);
    const cancelled = await client.watches.cancel(ids[0]!);
    expect(cancelled).toMatchObject({ id: ids[0], status: 'cancelled', next_poll_at: null });

    const watching: string[] = [];
    for await (const w of client.watches.iterate({ status: 'watching', limit: 1 })) watching.push(w.id);
    expect(watching).toEqual([ids[2], ids[1]]);
  });

  it('throws TaskhookError with the problem+json for every non-2xx answer', async () => {
    const missing = await thrown(client.watches.get('wat_00000000000000000000000000'));
    expect(missing).toMatchObject({ status: 404, code: 'not-found', problem: { status: 404, title: 'Not found' } });
    expect(missing.message).toContain('no watch wat_00000000000000000000000000');

    const invalid = await thrown(client.watches.create({ task_id: 'no spaces allowed', callback_url: 'https://example.com/hook' }));
    expect(invalid.status).toBe(422);
    expect(invalid.code).toBe('invalid');
    expect(invalid.fieldErrors).toEqual([{ field: 'task_id', message: expect.stringContaining('task_id') }]);

    const task = s.upstream.createTask({ durationMs: 60_000 });
    const { watch } = await client.watches.create({ task_id: task.task_id, callback_url: `${s.receiver.url}/early` });
    const early = await thrown(client.watches.redeliver(watch.id));
    expect(early).toMatchObject({ status: 409, code: 'conflict' });

    const badKey = createClient({ baseUrl: s.gateway.url!, apiKey: 'thk_wrong' });
    const unauthorized = await thrown(badKey.watches.list());
    expect(unauthorized).toMatchObject({ status: 401, code: 'unauthorized' });
    expect(unauthorized.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('reads and rotates tenant settings', async () => {
    const before = await client.tenant.get();
    expect(before).toMatchObject({ has_upstream_api_key: true, previous_secret_expires_at: null });
    const rotated = await client.tenant.rotateSigningSecret();
    expect(rotated.signing_secret).toMatch(/^whsec_/);
    expect((await client.tenant.get()).previous_secret_expires_at).toBe(rotated.previous_secret_expires_at);
  });
});
