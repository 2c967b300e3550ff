// Receivers that misbehave at the TCP/HTTP level: hang, drip, flood, cut the
// connection, or answer garbage. Every attempt must end within the delivery
// deadline (TASKHOOK_DELIVERY_TIMEOUT_S=2 in tests), be recorded as a failed
// attempt with a clear error, keep memory flat, and leave the gateway able to
// deliver to a healthy receiver afterwards.
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { EventEmitter, once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus as waitForStatusOf } from './support/wait.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

/** A full GC for memory readings: `global.gc` if node ran with --expose-gc, else expose it now. */
function collectGarbage(): boolean {
  let gc = globalThis.gc;
  if (!gc) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as typeof globalThis.gc;
    } catch {
      gc = undefined;
    }
  }
  gc?.();
  return gc !== undefined;
}

const waitForStatus = (id: string, status: string, timeoutMs?: number) => waitForStatusOf(s, id, status, timeoutMs);

interface Attempt {
  webhook_id: string;
  response_status: number | null;
  error: string | null;
  duration_ms: number;
  response_excerpt: string | null;
}

async function watchDoneTask(callbackUrl: string): Promise<string> {
  const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
  const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: callbackUrl } });
  expect(res.status, res.text).toBe(201);
  return res.json.id as string;
}

async function attemptsOf(id: string): Promise<Attempt[]> {
  const res = await s.api(`/v1/watches/${id}/deliveries`);
  expect(res.status, res.text).toBe(200);
  return res.json.data as Attempt[];
}

/** The watch ends undeliverable after 1 + 3 retries, each a failed attempt that ended well within the deadline. */
async function expectUndeliverable(id: string): Promise<Attempt[]> {
  const w = await waitForStatus(id, 'undeliverable', 25_000);
  expect(w.last_delivery).toMatchObject({ status: 'undeliverable', attempts: 4 });
  const attempts = await attemptsOf(id);
  expect(attempts).toHaveLength(4);
  for (const a of attempts) {
    expect(a.error, JSON.stringify(a)).toEqual(expect.any(String));
    expect(a.duration_ms).toBeGreaterThanOrEqual(0);
    expect(a.duration_ms).toBeLessThan(4000);
  }
  return attempts;
}

// ---------------------------------------------------------------------------
// A raw TCP "HTTP server": reads each request (headers + Content-Length body),
// then hands the socket to a script that may do anything with it.

interface RawRequest {
  head: string;
  headers: Record<string, string>;
  body: string;
}

interface Hostile {
  url: string;
  /** connections accepted / closed so far */
  opened: number;
  closed: number;
  /** complete requests read */
  requests: RawRequest[];
  /** resolves when `pred()` holds, re-checked on every connection/request/close */
  until(pred: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

async function hostile(onRequest: (sock: net.Socket, req: RawRequest) => void): Promise<Hostile> {
  const events = new EventEmitter();
  const sockets = new Set<net.Socket>();
  const h: Hostile = {
    url: '',
    opened: 0,
    closed: 0,
    requests: [],
    async until(pred, timeoutMs = 20_000) {
      const signal = AbortSignal.timeout(timeoutMs);
      while (!pred()) {
        try {
          await once(events, 'change', { signal });
        } catch {
          throw new Error(`hostile receiver: condition not met within ${timeoutMs} ms (opened ${h.opened}, closed ${h.closed}, requests ${h.requests.length})`);
        }
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const sock of sockets) sock.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    h.opened++;
    events.emit('change');
    sock.on('error', () => {}); // EPIPE/ECONNRESET when the gateway hangs up: expected
    sock.on('close', () => {
      sockets.delete(sock);
      h.closed++;
      events.emit('change');
    });
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + len) return;
      const req = { head, headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8') };
      buf = buf.subarray(end + 4 + len);
      sock.off('data', onData); // one request per connection is all these scripts answer
      h.requests.push(req);
      events.emit('change');
      onRequest(sock, req);
    };
    sock.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  h.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`;
  return h;
}

/** Every connection the gateway opened has been closed again: nothing hangs around. */
async function expectAllConnectionsClosed(h: Hostile) {
  await h.until(() => h.closed === h.opened, 5000);
  expect(h.closed).toBe(h.opened);
}

const webhookIds = (h: Hostile) => new Set(h.requests.map((r) => r.headers['webhook-id']));

// ---------------------------------------------------------------------------

describe('receivers that misbehave', () => {
  it('hangs forever after accepting the connection: each attempt times out at the deadline, then the next follows', async () => {
    const h = await hostile(() => {
      /* read the request, never write a byte */
    });
    try {
      const id = await watchDoneTask(h.url);
      const attempts = await expectUndeliverable(id);
      for (const a of attempts) {
        expect(a.response_status).toBeNull();
        expect(a.error).toMatch(/timed out/);
        expect(a.duration_ms).toBeGreaterThanOrEqual(1900);
        expect(a.duration_ms).toBeLessThan(4000);
      }
      expect(h.requests).toHaveLength(4);
      expect(webhookIds(h).size).toBe(1);
      await expectAllConnectionsClosed(h);
    } finally {
      await h.close();
    }
  });

  it('drips the status line one byte every 500 ms: times out within the deadline, never delivered', async () => {
    const reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const dripped: number[] = [];
    const h = await hostile((sock) => {
      const n = dripped.push(0) - 1;
      const timer = setInterval(() => {
        if (sock.destroyed || dripped[n]! >= reply.length) return clearInterval(timer);
        sock.write(reply.subarray(dripped[n]!, dripped[n]! + 1));
        dripped[n]!++;
      }, 500);
      sock.on('close', () => clearInterval(timer));
    });
    try {
      const id = await watchDoneTask(h.url);
      const attempts = await expectUndeliverable(id);
      for (const a of attempts) {
        expect(a.response_status).toBeNull();
        expect(a.error).toMatch(/timed out/);
        expect(a.duration_ms).toBeGreaterThanOrEqual(1900);
      }
      // the gateway hung up long before the reply (39 bytes) was complete
      expect(dripped).toHaveLength(4);
      expect(Math.max(...dripped)).toBeLessThan(10);
      await expectAllConnectionsClosed(h);
    } finally {
      await h.close();
    }
  });

  it('answers 200 with a 50 MB body: delivered by status, ≤ 4 KiB kept, transfer cut short, memory flat', async () => {
    const TOTAL = 50 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let written = 0;
    let resolveTransfer!: (r: { finished: boolean; written: number }) => void;
    const transfer = new Promise<{ finished: boolean; written: number }>((r) => (resolveTransfer = r));
    const h = await hostile((sock) => {
      sock.on('close', () => resolveTransfer({ finished: written >= TOTAL, written }));
      sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${TOTAL}\r\n\r\n`);
      // stream with backpressure: never more than one socket buffer's worth queued here
      const pump = () => {
        while (!sock.destroyed && written < TOTAL) {
          const piece = written + chunk.length <= TOTAL ? chunk : chunk.subarray(0, TOTAL - written);
          written += piece.length;
          if (!sock.write(piece)) return void sock.once('drain', pump);
        }
        if (written >= TOTAL) sock.end();
      };
      pump();
    });
    try {
      // warm up the delivery path first (lazily built HTTP parser, pools, JIT) so the
      // reading below measures this response, not first use
      await waitForStatus(await watchDoneTask(`${s.receiver.url}/warm-up`), 'delivered', 10_000);
      collectGarbage();
      const before = process.memoryUsage();
      const id = await watchDoneTask(h.url);
      const w = await waitForStatus(id, 'delivered', 15_000);
      const { finished, written: sent } = await transfer;
      collectGarbage();
      const after = process.memoryUsage();

      expect(w.last_delivery).toMatchObject({ status: 'delivered', attempts: 1, last_response_status: 200 });
      const attempts = await attemptsOf(id);
      expect(attempts).toHaveLength(1);
      const [a] = attempts;
      expect(a).toMatchObject({ response_status: 200, error: null });
      expect(a!.duration_ms).toBeLessThan(4000);
      expect(a!.response_excerpt).toMatch(/^a+$/);
      expect(a!.response_excerpt!.length).toBeLessThanOrEqual(4096);
      expect(a!.response_excerpt!.length).toBeLessThanOrEqual(1024);
      // the gateway hung up mid-body
      expect(finished).toBe(false);
      expect(sent).toBeLessThan(TOTAL);
      const rssGrowth = after.rss - before.rss;
      expect(rssGrowth).toBeLessThan(30 * 1024 * 1024);
      await expectAllConnectionsClosed(h);
    } finally {
      await h.close();
    }
  });

  it('sends the headers of a 500, then closes mid-body: a failed attempt, retried', async () => {
    const h = await hostile((sock) => {
      sock.write('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789');
      sock.destroy();
    });
    try {
      const id = await watchDoneTask(h.url);
      const attempts = await expectUndeliverable(id);
      for (const a of attempts) {
        // either the status made it (and a 500 is a failure) or the cut is the error
        if (a.response_status !== null) {
          expect(a.response_status).toBe(500);
          expect(a.error).toBe('receiver answered HTTP 500');
        } else {
          expect(a.error).toMatch(/ECONNRESET|other side closed|socket|terminated/i);
        }
      }
      expect(h.requests.length).toBeGreaterThanOrEqual(4);
      await expectAllConnectionsClosed(h);
    } finally {
      await h.close();
    }
  });

  it('closes the connection right after reading the request (no response): an error, retried', async () => {
    const h = await hostile((sock) => sock.destroy());
    try {
      const id = await watchDoneTask(h.url);
      const attempts = await expectUndeliverable(id);
      for (const a of attempts) {
        expect(a.response_status).toBeNull();
        expect(a.error).toMatch(/ECONNRESET|other side closed/i);
      }
      // 4 scheduled attempts (each may also have quick in-attempt reconnects), one webhook-id throughout
      expect(h.requests.length).toBeGreaterThanOrEqual(4);
      expect(webhookIds(h).size).toBe(1);
      await expectAllConnectionsClosed(h);
    } finally {
      await h.close();
    }
  });

  it('answers malformed HTTP: a failed attempt with a parse error, no crash', async () => {
    const badHeader = await hostile((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 0\r\n\r\n');
    });
    const badStatus = await hostile((sock) => {
      sock.write('HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n');
    });
    try {
      const [a1, a2] = await Promise.all([
        watchDoneTask(badHeader.url).then(expectUndeliverable),
        watchDoneTask(badStatus.url).then(expectUndeliverable),
      ]);
      for (const a of [...a1, ...a2]) {
        expect(a.response_status).toBeNull();
        expect(a.error).toMatch(/HPE_|parse|invalid/i);
        expect(a.error).not.toMatch(/timed out/);
        expect(a.duration_ms).toBeLessThan(1000);
      }
      await expectAllConnectionsClosed(badHeader);
      await expectAllConnectionsClosed(badStatus);
    } finally {
      await Promise.all([badHeader.close(), badStatus.close()]);
    }
  });

  it('still delivers promptly to a healthy receiver afterwards', async () => {
    expect((await s.api('/healthz')).json).toEqual({ status: 'ok' });
    const started = Date.now();
    const id = await watchDoneTask(`${s.receiver.url}/healthy`);
    const [hook] = (await s.receiver.waitFor((all) => all.some((r) => r.path === '/healthy'), 5000)).filter((r) => r.path === '/healthy');
    const latency = Date.now() - started;
    expect(hook!.verified).toBe(true);
    expect(hook!.json).toMatchObject({ type: 'task.completed', watch_id: id });
    expect(latency).toBeLessThan(3000);
    const w = await waitForStatus(id, 'delivered', 5000);
    expect(w.last_delivery).toMatchObject({ status: 'delivered', attempts: 1 });
  });
});
