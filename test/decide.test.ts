// decide(task, answer, now): what one poll comes to, row by row (src/poller/decide.ts).
// The property that makes scheduler v2 cheap is in the `write` column: a poll that
// learned nothing new (same bytes, the same failure again, a throttled tenant) writes nothing.
import { describe, expect, it } from 'vitest';
import { decide, type Answer, type TaskState } from '../src/poller/decide.js';
import { snapshotHash } from '../src/poller/snapshot-hash.js';
import { TimerHeap } from '../src/engine/timer-heap.js';

const NOW = 1_000_000;
const limits = { notFoundGraceMs: 60_000, maxWatchAgeMs: 86_400_000 };
const pending = '{"task_id":"t1","status":"pending"}';
const processing = '{"task_id":"t1","status":"processing","progress":10}';
const task = (over: Partial<TaskState> = {}): TaskState => ({
  tenant_id: 'ten',
  task_id: 't1',
  createdAt: NOW - 10_000,
  unauthorized_streak: 0,
  error_streak: 0,
  processing_seen: false,
  snapshot_hash: snapshotHash(pending),
  last_poll_error: null,
  ...over,
});
const answer = (raw: string): Answer => ({ kind: 'task', status: JSON.parse(raw).status, body: JSON.parse(raw), raw });

describe('decide', () => {
  it.each<[string, Partial<TaskState>, Answer, Record<string, unknown>]>([
    ['same bytes as stored (unchanged): nothing to write', {}, { kind: 'unchanged' }, { kind: 'continue', write: false, signal: { kind: 'ok' } }],
    ['same answer, parsed (hash equal): nothing to write', {}, answer(pending), { kind: 'continue', write: false, snapshot: null }],
    ['a changed snapshot is written', { processing_seen: true, snapshot_hash: snapshotHash('{"status":"processing","progress":5}') }, answer(processing), { kind: 'continue', write: true, startProcessing: false }],
    ['the first processing: start (task.processing)', {}, answer(processing), { kind: 'continue', write: true, startProcessing: true, processing_seen: true }],
    ['processing already seen, same bytes: nothing', { processing_seen: true, snapshot_hash: snapshotHash(processing) }, answer(processing), { kind: 'continue', write: false }],
    ['terminal: finish with the final snapshot', {}, answer('{"task_id":"t1","status":"completed"}'), { kind: 'finish', event: 'task.completed' }],
    ['terminal failed', {}, answer('{"task_id":"t1","status":"failed"}'), { kind: 'finish', event: 'task.failed' }],
    ['first 5xx: error written, backoff', {}, { kind: 'error', message: 'upstream answered HTTP 503' }, { kind: 'continue', write: true, error_streak: 1, pollError: { message: 'upstream answered HTTP 503' }, signal: { kind: 'error', streak: 1 } }],
    ['the same 5xx again: nothing written, streak grows', { error_streak: 2, last_poll_error: 'upstream answered HTTP 503' }, { kind: 'error', message: 'upstream answered HTTP 503' }, { kind: 'continue', write: false, error_streak: 3, pollError: undefined }],
    ['recovery after errors: error cleared', { error_streak: 4, last_poll_error: 'upstream answered HTTP 503' }, { kind: 'unchanged' }, { kind: 'continue', write: true, error_streak: 0, pollError: { message: null } }],
    ['401 below the limit', { unauthorized_streak: 1 }, { kind: 'unauthorized' }, { kind: 'continue', unauthorized_streak: 2 }],
    ['third 401: give up', { unauthorized_streak: 2 }, { kind: 'unauthorized' }, { kind: 'finish', event: 'watch.failed', giveUp: 'upstream_unauthorized' }],
    ['404 inside the grace', {}, { kind: 'not_found' }, { kind: 'continue', write: true }],
    ['404 past the grace: give up', { createdAt: NOW - 61_000 }, { kind: 'not_found' }, { kind: 'finish', giveUp: 'task_not_found' }],
    ['429 with Retry-After', {}, { kind: 'rate_limited', retryAfterMs: 7_000 }, { kind: 'continue', error_streak: 1, signal: { kind: 'rate_limited', retryAfterMs: 7_000, streak: 1 } }],
    ['expired while running: give up', { createdAt: NOW - 86_400_001 }, { kind: 'unchanged' }, { kind: 'finish', giveUp: 'watch_expired' }],
    ['expired but terminal: the outcome wins', { createdAt: NOW - 86_400_001 }, answer('{"task_id":"t1","status":"cancelled"}'), { kind: 'finish', event: 'task.cancelled' }],
    ['throttled (not asked): nothing written, streaks kept', { error_streak: 2, unauthorized_streak: 1 }, { kind: 'throttled', retryAfterMs: 900 }, { kind: 'continue', write: false, error_streak: 2, unauthorized_streak: 1, signal: { kind: 'rate_limited', retryAfterMs: 900, streak: 2 } }],
    ['no tenant (not asked): nothing written, check back later', { last_poll_error: 'x' }, { kind: 'no_tenant' }, { kind: 'continue', write: false, signal: { kind: 'error', streak: 7 } }],
  ])('%s', (_name, state, a, want) => {
    expect(decide(task(state), a, NOW, limits)).toMatchObject(want);
  });

  it('the final snapshot of a finish is upstream\'s bytes verbatim', () => {
    const raw = '{"task_id":"t1","status":"completed","z":1,"a":2}';
    const d = decide(task(), answer(raw), NOW, limits);
    expect(d).toMatchObject({ kind: 'finish', data: raw, snapshot: { raw, status: 'completed', hash: snapshotHash(raw) } });
  });
});

describe('TimerHeap', () => {
  it('pops in due order, only what is due', () => {
    const h = new TimerHeap<string>();
    const dues = [50, 10, 40, 10, 30, 20, 60, 0];
    dues.forEach((d, i) => h.push(d, `${d}:${i}`));
    expect(h.popDue(-1)).toBeUndefined();
    const out: number[] = [];
    for (let x = h.popDue(45); x !== undefined; x = h.popDue(45)) out.push(Number(x.split(':')[0]));
    expect(out).toEqual([0, 10, 10, 20, 30, 40]);
    expect(h.peekDue()).toBe(50);
    expect(h.size).toBe(2);
  });
});
