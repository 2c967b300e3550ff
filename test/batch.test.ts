import { describe, expect, it } from 'vitest';
import { BatchWriter, isStatementError } from '../src/engine/batch.js';

const pgError = (code: string, message = 'boom') => Object.assign(new Error(message), { code });

describe('BatchWriter', () => {
  it('writes what arrives in one turn of the event loop as one batch (maxDelayMs 0), each caller gets its own result', async () => {
    const flushes: number[][] = [];
    const w = new BatchWriter<number, number>(async (xs) => {
      flushes.push(xs);
      return xs.map((x) => x * 10);
    }, 100, 0);
    const results = await Promise.all([1, 2, 3].map((x) => w.add(x)));
    expect(results).toEqual([10, 20, 30]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });

  it('flushes at maxSize without waiting', async () => {
    const flushes: number[][] = [];
    const w = new BatchWriter<number, void>(async (xs) => {
      flushes.push(xs);
      return xs.map(() => undefined);
    }, 2, 60_000);
    await Promise.all([w.add(1), w.add(2)]);
    expect(flushes).toEqual([[1, 2]]);
  });

  it('retries a batch the server refused item by item: only the bad item fails', async () => {
    const flushes: number[][] = [];
    const w = new BatchWriter<number, string>(async (xs) => {
      flushes.push(xs);
      if (xs.includes(2)) throw pgError('22P05', 'unsupported Unicode escape sequence');
      return xs.map((x) => `ok ${x}`);
    }, 100, 0);
    const settled = await Promise.allSettled([1, 2, 3].map((x) => w.add(x)));
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : String(s.reason)))).toEqual([
      'ok 1',
      'Error: unsupported Unicode escape sequence',
      'ok 3',
    ]);
    expect(flushes).toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  it('a deadlock victim batch is retried at once, item by item', async () => {
    let first = true;
    const w = new BatchWriter<number, boolean>(async (xs) => {
      if (first) {
        first = false;
        throw pgError('40P01', 'deadlock detected');
      }
      return xs.map(() => true);
    }, 100, 0);
    expect(await Promise.all([w.add(1), w.add(2)])).toEqual([true, true]);
  });

  it('does not retry item by item when the database is unreachable: every item fails with the one error', async () => {
    let calls = 0;
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const w = new BatchWriter<number, void>(async () => {
      calls++;
      throw down;
    }, 100, 0);
    const settled = await Promise.allSettled([1, 2, 3].map((x) => w.add(x)));
    expect(settled.every((s) => s.status === 'rejected' && s.reason === down)).toBe(true);
    expect(calls).toBe(1);
  });

  it('tells statement errors from connection trouble', () => {
    expect(isStatementError(pgError('40P01'))).toBe(true); // deadlock
    expect(isStatementError(pgError('23505'))).toBe(true); // unique violation
    expect(isStatementError(pgError('08006'))).toBe(false); // connection failure
    expect(isStatementError(pgError('57P01'))).toBe(false); // admin shutdown
    expect(isStatementError(pgError('53300'))).toBe(false); // too many connections
    expect(isStatementError(pgError('CONNECTION_CLOSED'))).toBe(false);
    expect(isStatementError(new Error('no code'))).toBe(false);
    expect(isStatementError(undefined)).toBe(false);
  });
});
