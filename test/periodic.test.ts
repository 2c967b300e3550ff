import { describe, expect, it } from 'vitest';
import { periodic } from '../src/engine/periodic.js';

describe('periodic', () => {
  it('runs passes back to back while they ask for 0 ms, and stop() waits for the pass in progress', async () => {
    let passes = 0;
    let release!: () => void;
    const third = new Promise<void>((r) => (release = r));
    let inPass = false;
    const p = periodic(async () => {
      inPass = true;
      passes++;
      if (passes === 3) {
        release();
        await new Promise((r) => setImmediate(r));
      }
      inPass = false;
      return passes < 3 ? 0 : 3_600_000;
    });
    p.start();
    p.start(); // a second start is a no-op
    await third;
    await p.stop(); // cuts the hour's wait short
    expect(passes).toBe(3);
    expect(inPass).toBe(false);
  });

  it('waits firstDelayMs before the first pass; stop() during that wait runs no pass', async () => {
    let passes = 0;
    const p = periodic(async () => (passes++, 0), () => 3_600_000);
    p.start();
    await new Promise((r) => setImmediate(r));
    await p.stop();
    expect(passes).toBe(0);
  });

  it('tells a long pass that a stop was asked for', async () => {
    let sawStop = false;
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const p = periodic(async (stopping) => {
      entered();
      while (!stopping()) await new Promise((r) => setImmediate(r));
      sawStop = true;
      return 0;
    });
    p.start();
    await inside;
    await p.stop();
    expect(sawStop).toBe(true);
  });
});
