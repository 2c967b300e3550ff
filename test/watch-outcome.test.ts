// What a watch shows a user about how it went: `outcome` (the event that ended it,
// subscribed or not) and `last_poll_error` (while upstream polls fail), against a real
// gateway and the simulated upstream; the pure rules of src/poller/poll-error.ts as
// tables; and the migration's backfill of `outcome` for watches that ended before it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PollErrorLog, pollErrorOf, pollErrorWrite } from '../src/poller/poll-error.js';
import type { Logger } from '../src/log.js';
import type { PollResult } from '../src/upstream/client.js';
import { startStack, type Stack } from './support/gateway.js';
import { until, waitForStatus } from './support/wait.js';

const ROOT = path.resolve(import.meta.dirname, '..');

describe('poll errors, the rules', () => {
  it.each<[string, PollResult, string | null]>([
    ['a task answer', { kind: 'task', status: 'processing', body: {}, raw: '{}' }, null],
    ['a terminal answer', { kind: 'task', status: 'failed', body: {}, raw: '{}' }, null],
    ['a 5xx', { kind: 'error', message: 'upstream answered HTTP 503' }, 'upstream answered HTTP 503'],
    ['a timeout', { kind: 'error', message: 'timed out' }, 'timed out'],
    ['DNS', { kind: 'error', message: 'ENOTFOUND: getaddrinfo ENOTFOUND api.invalid' }, 'ENOTFOUND: getaddrinfo ENOTFOUND api.invalid'],
    ['a malformed body', { kind: 'error', message: 'upstream answered malformed JSON' }, 'upstream answered malformed JSON'],
    ['a tolerated 401', { kind: 'unauthorized' }, 'upstream refused the API key (HTTP 401)'],
    ['a 404 inside the grace', { kind: 'not_found' }, 'upstream does not know this task (HTTP 404)'],
    ['a 429', { kind: 'rate_limited', retryAfterMs: 1000 }, 'upstream is rate-limiting polls (HTTP 429)'],
  ])('%s → %j', (_, result, message) => {
    expect(pollErrorOf(result)).toBe(message);
  });

  it.each<[string, string | null, string | null | undefined, { message: string | null } | undefined]>([
    ['healthy stays healthy: no write', null, null, undefined],
    ['first failure: written', null, 'timed out', { message: 'timed out' }],
    ['the same failure again: no write', 'timed out', 'timed out', undefined],
    ['another failure: written', 'timed out', 'upstream answered HTTP 502', { message: 'upstream answered HTTP 502' }],
    ['recovery: cleared', 'timed out', null, { message: null }],
    ['no request made (throttled): no write', 'timed out', undefined, undefined],
    ['no request made while healthy: no write', null, undefined, undefined],
  ])('%s', (_, stored, polled, write) => {
    expect(pollErrorWrite(stored, polled)).toEqual(write);
  });

  it('logs failed polls at warn, one line per tenant a minute, counting the rest', () => {
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } as unknown as Logger;
    let t = 0;
    const limiter = new PollErrorLog(log, () => t);
    expect(limiter.failed('ten_a', 't1', 'timed out')).toBe(true);
    for (let i = 0; i < 50; i++) {
      t += 1000;
      limiter.failed('ten_a', `t${i}`, 'timed out');
    }
    expect(limiter.failed('ten_b', 'x', 'upstream answered HTTP 500')).toBe(true); // another tenant has its own line
    expect(lines).toHaveLength(2);
    t = 61_000;
    expect(limiter.failed('ten_a', 't9', 'timed out')).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual(['upstream poll failed', 'upstream poll failed', 'upstream poll failed']);
    expect(lines[2]!.obj).toMatchObject({ tenant: 'ten_a', task_id: 't9', error: 'timed out', unlogged_failures: 50 });
    expect(lines[0]!.obj).not.toHaveProperty('unlogged_failures');
  });
});

describe('a watch against a real gateway', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  const register = async (task_id: string, extra: Record<string, unknown> = {}) => {
    const res = await s.api('/v1/watches', { body: { task_id, callback_url: `${s.receiver.url}/hook`, ...extra } });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({ outcome: null, last_poll_error: null });
    return res.json.id as string;
  };
  const row = async (taskId: string) =>
    (await s.db.sql<{ last_poll_error: string | null; last_poll_error_at: Date | null; polls: number }[]>`
      select last_poll_error, last_poll_error_at, polls from upstream_tasks where task_id = ${taskId}`)[0];

  it.each(['completed', 'failed', 'cancelled'] as const)('a task that ends %s: that is its outcome, and it is delivered', async (outcome) => {
    const id = await register(s.upstream.createTask({ outcome, durationMs: 150 }).task_id);
    const w = await waitForStatus(s, id, 'delivered');
    expect(w.outcome).toBe(`task.${outcome}`);
    expect(w.last_poll_error).toBeNull();
    const listed = (await s.api(`/v1/watches?task_id=${w.task_id}`)).json.data[0];
    expect(listed.outcome).toBe(`task.${outcome}`);
  });

  it('an outcome the watch did not subscribe to is still its outcome (nothing was sent)', async () => {
    const id = await register(s.upstream.createTask({ outcome: 'failed', durationMs: 150 }).task_id, { events: ['task.completed'] });
    const w = await waitForStatus(s, id, 'delivered');
    expect(w).toMatchObject({ outcome: 'task.failed', last_delivery: null });
  });

  it('a give-up is outcome watch.failed; a watch cancelled before it ended has none', async () => {
    const gone = await register('never-created-upstream'); // 404 past the 1 s grace
    const failed = await waitForStatus(s, gone, 'delivered');
    expect(failed.outcome).toBe('watch.failed');
    expect(failed.last_poll_error).toBeNull();

    const id = await register(s.upstream.createTask({ durationMs: 60_000 }).task_id);
    const cancelled = await s.api(`/v1/watches/${id}`, { method: 'DELETE' });
    expect(cancelled.json).toMatchObject({ status: 'cancelled', outcome: null });
  });

  it('shows the failing polls of its task, written on a change only, and clears them when a poll succeeds', async () => {
    const task = s.upstream.createTask({ durationMs: 600_000 });
    s.upstream.store.setOverride(task.task_id, { status: 503, body: { error: 'down' } });
    const id = await register(task.task_id);
    const first = await until('a poll error', async () => {
      const w = (await s.api(`/v1/watches/${id}`)).json;
      return w.last_poll_error ? w : undefined;
    });
    expect(first.status).toBe('watching');
    expect(first.last_poll_error.message).toBe('upstream answered HTTP 503');
    expect(Date.parse(first.last_poll_error.at)).toBeLessThanOrEqual(Date.now());

    // More failing polls the same way: the stored error (and its time) does not move.
    const stored = (await row(task.task_id))!;
    await until('three more polls', async () => ((await row(task.task_id))!.polls >= stored.polls + 3 ? true : undefined));
    const later = (await row(task.task_id))!;
    expect(later.last_poll_error).toBe('upstream answered HTTP 503');
    expect(later.last_poll_error_at?.getTime()).toBe(stored.last_poll_error_at?.getTime());

    // A different failure replaces it, with a new time.
    s.upstream.store.setOverride(task.task_id, { status: 200, body: '{"status": "complet' });
    const changed = await until('the new error', async () => {
      const w = (await s.api(`/v1/watches/${id}`)).json;
      return w.last_poll_error?.message === 'upstream answered malformed JSON' ? w : undefined;
    });
    expect(Date.parse(changed.last_poll_error.at)).toBeGreaterThan(Date.parse(first.last_poll_error.at));

    // Upstream answers again: cleared by the first good poll.
    s.upstream.store.setOverride(task.task_id, undefined);
    await until('the error cleared', async () => ((await s.api(`/v1/watches/${id}`)).json.last_poll_error === null ? true : undefined));
    expect((await row(task.task_id))!).toMatchObject({ last_poll_error: null, last_poll_error_at: null });
    await s.api(`/v1/watches/${id}`, { method: 'DELETE' });
  });

  it('a key upstream keeps refusing: the watch ends watch.failed, not a plain delivered task', async () => {
    const task = s.upstream.createTask({ durationMs: 600_000 });
    s.upstream.store.setOverride(task.task_id, { status: 401, body: { error: 'bad key' } });
    const id = await register(task.task_id);
    const w = await waitForStatus(s, id, 'delivered');
    expect(w.outcome).toBe('watch.failed');
    const hook = s.receiver.received.find((r) => r.json.watch_id === id);
    expect(hook?.json).toMatchObject({ type: 'watch.failed', data: { error: { code: 'upstream_unauthorized' } } });
  });
});

describe('the outcome backfill of migration 0006', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack({ TASKHOOK_ROLE: 'api' });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('gives watches that ended before the column their outcome, from their terminal delivery or the final snapshot', async () => {
    const sql = s.db.sql;
    const watch = async (id: string, task: string, status: string) =>
      sql`insert into watches (id, tenant_id, task_id, callback_url, events, status) values (${id}, 'ten_default', ${task}, 'http://127.0.0.1:1/h', ${['task.completed']}, ${status})`;
    const delivery = async (id: string, watchId: string, type: string, terminal: boolean, at: string) =>
      sql`insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, payload, status, created_at)
          values (${id}, 'ten_default', ${watchId}, ${type}, ${terminal}, 'http://127.0.0.1:1/h', '{}', 'delivered', ${at})`;
    const snapshot = async (task: string, status: string) =>
      sql`insert into task_snapshots (tenant_id, task_id, status, snapshot) values ('ten_default', ${task}, ${status}, ${JSON.stringify({ task_id: task, status })})`;
    await watch('wat_00000000000000000000000001', 'bf1', 'delivered');
    await delivery('msg_a1', 'wat_00000000000000000000000001', 'task.processing', false, '2026-01-01T00:00:00Z');
    await delivery('msg_a2', 'wat_00000000000000000000000001', 'task.failed', true, '2026-01-01T00:00:01Z');
    await watch('wat_00000000000000000000000002', 'bf2', 'delivered'); // not subscribed to its outcome: no delivery
    await snapshot('bf2', 'cancelled');
    await watch('wat_00000000000000000000000003', 'bf3', 'cancelled'); // cancelled while watching
    await snapshot('bf3', 'processing');
    await watch('wat_00000000000000000000000004', 'bf4', 'undeliverable');
    await delivery('msg_d1', 'wat_00000000000000000000000004', 'watch.failed', true, '2026-01-01T00:00:00Z');
    await watch('wat_00000000000000000000000005', 'bf5', 'watching');
    await snapshot('bf5', 'pending');

    const file = readFileSync(path.join(ROOT, 'migrations/0006_watch_outcome_poll_error.sql'), 'utf8');
    const backfill = file.slice(file.indexOf('-- ---- hand-written'));
    for (const stmt of backfill.split('--> statement-breakpoint')) await sql.unsafe(stmt);
    const rows = await sql<{ id: string; outcome: string | null }[]>`select id, outcome from watches where task_id like 'bf%' order by id`;
    expect(rows.map((r) => r.outcome)).toEqual(['task.failed', 'task.cancelled', null, 'watch.failed', null]);

    // And a watch finished by the previous release during a roll (no outcome stored) reads its terminal webhook's.
    await sql`update watches set outcome = null where id = 'wat_00000000000000000000000001'`;
    expect((await s.api('/v1/watches/wat_00000000000000000000000001')).json.outcome).toBe('task.failed');
  });
});
