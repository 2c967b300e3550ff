import { describe, expect, it } from 'vitest';
import { KeyedSemaphore } from '../src/engine/keyed-semaphore.js';

describe('KeyedSemaphore', () => {
  it('lets `limit` holders per key through, queues the rest in order, keys independent', async () => {
    const sem = new KeyedSemaphore(2);
    const order: string[] = [];
    await sem.acquire('a');
    await sem.acquire('a');
    await sem.acquire('b'); // another key is not held up by a's
    const third = sem.acquire('a').then(() => order.push('a3'));
    const fourth = sem.acquire('a').then(() => order.push('a4'));
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(sem.inUse('a')).toBe(2);
    sem.release('a');
    await third;
    expect(order).toEqual(['a3']);
    expect(sem.inUse('a')).toBe(2); // handed over, not dipped and refilled
    sem.release('a');
    await fourth;
    expect(order).toEqual(['a3', 'a4']);
    sem.release('a');
    sem.release('a');
    sem.release('b');
    expect(sem.inUse('a')).toBe(0);
    expect(sem.inUse('b')).toBe(0);
  });
});
