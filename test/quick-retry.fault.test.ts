// Found by the chaos soak (bench/README.md, "Soak"): on a machine starved of CPU, a
// delivery attempt whose first connection was reset made its quick retry after the
// deadline had (by the clock) already passed: the retry's timer fired before the
// deadline's. The receiver got and acknowledged that request, the gateway cut it off,
// recorded the attempt as timed out and sent the event again later: a duplicate no
// crash explains. A quick retry now starts only with half the deadline left.
// The starvation is scripted: the receiver blocks this process's event loop, as a
// descheduled process would see it.
import net from 'node:net';
import { once } from 'node:events';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSender } from '../src/delivery/send.js';

const DEADLINE_MS = 1_000;
const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: nothing else in this process runs, timers included
  }
};

let server: net.Server;
let url: string;
const requests: Array<{ answered: boolean }> = [];
beforeAll(async () => {
  server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => {
      const n = requests.push({ answered: false });
      if (n === 1) {
        // the first connection is reset (a stale keep-alive socket, say), then the process stalls
        sock.resetAndDestroy();
        block(650);
        return;
      }
      // a later one is handled slowly and acknowledged: the 2xx arrives after the deadline
      block(450);
      sock.end('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n');
      requests[n - 1]!.answered = true;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('quick retries near the attempt deadline', () => {
  it('a starved attempt does not retry with too little time left, so no acknowledged request is left behind a failed attempt', async () => {
    const dispatcher = new Agent();
    const sender = createSender({ dispatcher, timeoutMs: DEADLINE_MS, userAgent: 'taskhook/test' });
    const result = await sender.send({ url, msgId: 'msg_quickretry', body: '{}', secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] });
    await dispatcher.close();
    // the attempt failed (the reset), and nothing the receiver acknowledged went unseen
    expect(result.outcome.kind).toBe('error');
    expect(requests.filter((r) => r.answered)).toEqual([]);
    expect(requests).toHaveLength(1);
  });
});
