// A background loop that a process starts and stops: the learner's folds, retention's
// purges. One pass at a time; stop() cuts the wait short and waits for the pass in progress.
import { setTimeout as sleep } from 'node:timers/promises';

export interface Periodic {
  start(): void;
  /** Stops after the pass in progress, if any. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` until stopped. `pass` returns the ms to wait before the next pass (0: at
 * once) and may read `stopping()` to cut a long pass short; it must handle its own errors.
 * The first pass comes after `firstDelayMs()`.
 */
export function periodic(pass: (stopping: () => boolean) => Promise<number>, firstDelayMs: () => number = () => 0): Periodic {
  let running = false;
  let ac = new AbortController();
  let done: Promise<void> | undefined;
  const stopping = () => !running;
  const wait = (ms: number) => (ms > 0 ? sleep(ms, undefined, { signal: ac.signal, ref: false }).catch(() => {}) : Promise.resolve());

  async function run(): Promise<void> {
    await wait(firstDelayMs());
    while (running) {
      const next = await pass(stopping);
      if (running) await wait(next);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      ac = new AbortController();
      done = run();
    },
    async stop() {
      running = false;
      ac.abort();
      await done;
    },
  };
}
