// engine/heap-dispatch.ts: items run when due, at most maxInFlight at once; a run may give
// its slot back early; gone items are skipped; nothing starts while inactive.
import { describe, expect, it } from 'vitest';
import { HeapDispatcher, type Schedulable } from '../src/engine/heap-dispatch.js';

interface Item extends Schedulable {
  name: string;
}
const item = (name: string): Item => ({ name, due: 0, gone: false, busy: false });
/** lane = the name's first letter */
const laneOf = (it: Item) => it.name[0]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(fn: () => boolean, ms = 2_000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met');
    await sleep(5);
  }
}

describe('HeapDispatcher', () => {
  it('runs due items in due order, skips gone ones, and holds at most maxInFlight', async () => {
    const started: string[] = [];
    const finish: Array<() => void> = [];
    const d = new HeapDispatcher<Item>({
      maxInFlight: 2,
      now: Date.now,
      active: () => true,
      run: (it) => {
        started.push(it.name);
        return new Promise<void>((r) => finish.push(r));
      },
    });
    const t = Date.now();
    const [a, b, c, x] = [item('a'), item('b'), item('c'), item('x')];
    d.schedule(c, t - 1);
    d.schedule(a, t - 3);
    d.schedule(x, t - 2);
    d.schedule(b, t - 2);
    x.gone = true;
    d.start();
    await until(() => started.length === 2);
    await sleep(30);
    expect(started).toEqual(['a', 'b']); // x gone; c waits for a slot
    expect(d.inFlight).toBe(2);
    finish.shift()!();
    await until(() => started.length === 3);
    expect(started[2]).toBe('c');
    finish.forEach((f) => f());
    await d.stop();
  });

  it('a run that releases its slot early lets the next one start while it is still running', async () => {
    const started: string[] = [];
    const d = new HeapDispatcher<Item>({
      maxInFlight: 1,
      now: Date.now,
      active: () => true,
      run: async (it, release) => {
        started.push(it.name);
        release();
        release(); // idempotent
        await sleep(200);
      },
    });
    d.schedule(item('a'), Date.now());
    d.schedule(item('b'), Date.now());
    d.start();
    await until(() => started.length === 2, 150);
    expect(d.inFlight).toBe(0);
    await d.stop();
  });

  it('starts nothing while inactive, and future items only when due', async () => {
    let active = false;
    const started: string[] = [];
    const d = new HeapDispatcher<Item>({ maxInFlight: 4, now: Date.now, active: () => active, run: async (it) => void started.push(it.name) });
    d.schedule(item('now'), Date.now());
    d.schedule(item('later'), Date.now() + 150);
    d.start();
    await sleep(80);
    expect(started).toEqual([]);
    active = true;
    await until(() => started.length === 1);
    expect(started).toEqual(['now']);
    await until(() => started.length === 2, 1_000);
    expect(started).toEqual(['now', 'later']);
    await d.stop();
  });

  it('lanes: at most lanes.max of a lane at once, the rest wait in due order (gone ones skipped) while other lanes run', async () => {
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const d = new HeapDispatcher<Item>({
      maxInFlight: 10,
      now: Date.now,
      active: () => true,
      lanes: { of: laneOf, max: 2 },
      run: (it) => {
        started.push(it.name);
        return new Promise<void>((r) => finish.set(it.name, r));
      },
    });
    const t = Date.now();
    const items = ['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2'].map(item);
    items.forEach((it, i) => d.schedule(it, t - 10 + i));
    d.start();
    await until(() => started.length === 4);
    await sleep(30);
    expect(started).toEqual(['a1', 'a2', 'b1', 'b2']); // a3.. wait for lane a
    expect(d.inFlight).toBe(4);
    expect(d.waiting).toBe(3);
    items[3]!.gone = true; // a4 is dropped while it waits
    finish.get('a1')!();
    await until(() => started.length === 5);
    expect(started[4]).toBe('a3');
    finish.get('b1')!(); // a free slot of lane b does not start lane a's next
    await sleep(30);
    expect(started.length).toBe(5);
    finish.get('a2')!();
    await until(() => started.length === 6);
    expect(started[5]).toBe('a5'); // a4 skipped
    expect(d.waiting).toBe(0);
    for (const f of finish.values()) f();
    await d.stop();
  });

  it('lanes: a run that releases early frees its lane slot too; clear() empties the lanes', async () => {
    const started: string[] = [];
    const hold: Array<() => void> = [];
    const d = new HeapDispatcher<Item>({
      maxInFlight: 10,
      now: Date.now,
      active: () => true,
      lanes: { of: laneOf, max: 1 },
      run: async (it, release) => {
        started.push(it.name);
        if (it.name === 'a1') release();
        await new Promise<void>((r) => hold.push(r));
      },
    });
    const t = Date.now();
    ['a1', 'a2', 'a3', 'a4'].forEach((n, i) => d.schedule(item(n), t - 10 + i));
    d.start();
    await until(() => started.length === 2); // a1 released at once: a2 runs beside it
    await sleep(30);
    expect(started).toEqual(['a1', 'a2']);
    expect(d.waiting).toBe(2);
    d.clear();
    expect(d.waiting).toBe(0);
    hold.forEach((f) => f());
    await sleep(30);
    expect(started).toEqual(['a1', 'a2']);
    await d.stop();
  });
});
