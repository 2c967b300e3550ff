// Waiting on a watch's status through the API: polls the gateway, not the clock.
import type { Stack } from './gateway.js';

export async function waitForStatus(s: Stack, id: string, status: string, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await s.api(`/v1/watches/${id}`);
    if (res.json.status === status) return res.json;
    if (Date.now() > until) throw new Error(`watch ${id} is ${res.json.status}, wanted ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls `fn` every 50 ms until it returns a value (not undefined); throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
