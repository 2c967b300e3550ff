// Found by the chaos soak (bench/README.md, "Soak"): a worker frozen (SIGSTOP) with
// webhooks in flight wakes up to find every one of them "timed out" — its deadline
// timers fired while it was stopped, before it read the answers waiting in its sockets.
// It counted those as the receiver failing, opened the circuit of a perfectly healthy
// endpoint, and the deferral (shared by every process) held all deliveries to it for
// 30 s. A failure that overran its own deadline now says the process was paused, not
// that the receiver is broken, and opens no circuit.
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_API_KEY } from './support/env.js';
import { registerMany, startFleet, waitAllDelivered, type Fleet } from './support/fleet.js';
import { processState } from './support/process.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a worker frozen with deliveries in flight', () => {
  it('wakes, retries them, and opens no circuit on the healthy receiver: the next webhook is not held back', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    // healthy, but slow enough that the attempts are still waiting for their answers when the worker freezes
    f.receiver.fallback = { status: 204, delayMs: 1_000 };
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const worker = await f.gateway({ TASKHOOK_ROLE: 'worker' });
    const n = 8; // more than the breaker's threshold (5 failures in a row)
    await registerMany(f, [api], n, 1);
    await f.receiver.waitFor((all) => all.length >= n, 30_000);
    worker.child.kill('SIGSTOP');
    for (let i = 0; processState(worker.child.pid!) !== 'T'; i++) {
      expect(i, 'the worker should be stopped').toBeLessThan(100);
      await sleep(10);
    }
    await sleep(4_000); // past the 2 s attempt deadline, inside the 9 s lease
    f.receiver.fallback = { status: 204 };
    worker.child.kill('SIGCONT');
    await waitAllDelivered(f.db, n, 30_000);

    // a new watch to the same receiver is delivered at once, not after a 30 s circuit
    const registered = Date.now();
    const task = f.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await fetch(`${api.url}/v1/watches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ task_id: task.task_id, callback_url: `${f.receiver.url}/hook` }),
    });
    expect(res.status).toBe(201);
    await waitAllDelivered(f.db, n + 1, 30_000);
    const tookMs = Date.now() - registered;
    // generous for a loaded box (a poll at the test cadence and one send take well under a second);
    // the circuit this guards against holds it for 30 s
    expect(tookMs).toBeLessThan(15_000);
    expect(worker.output()).not.toContain('circuit open');
    console.info(`frozen worker: ${n} webhooks in flight timed out while it was stopped; the next webhook took ${tookMs} ms`);
  });
});
