// A webhook receiver on loopback that verifies every request with the
// `standardwebhooks` package (an independent implementation) and answers from a
// script: a queue of responses, then a default.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { Webhook } from 'standardwebhooks';

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  verified: boolean;
  verifyError?: string;
  at: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** wait this long before answering */
  delayMs?: number;
  /** never answer (the connection is closed by close()) */
  hang?: boolean;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** answers for the next requests, in order; after that, `fallback` */
  replies: Reply[];
  fallback: Reply;
  /** answers by request path, before `replies` and `fallback` (e.g. one path that hangs) */
  byPath: Record<string, Reply>;
  /** asked first, per request: an answer, or undefined for the rules below (e.g. fail each webhook-id's first attempt) */
  decide?: (path: string, headers: Record<string, string | string[] | undefined>) => Reply | undefined;
  /** requests being answered now, and the most at once, per path (a hung request counts until its connection closes) */
  inFlight: Map<string, number>;
  maxInFlight: Map<string, number>;
  waitFor(predicate: (all: Received[]) => boolean, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(secrets: string[]): Promise<Receiver> {
  const verifiers = secrets.map((s) => new Webhook(s));
  const events = new EventEmitter();
  const received: Received[] = [];
  const r: Receiver = {
    url: '',
    received,
    replies: [],
    fallback: { status: 204 },
    byPath: {},
    inFlight: new Map(),
    maxInFlight: new Map(),
    async waitFor(predicate, timeoutMs = 30_000) {
      const signal = AbortSignal.timeout(timeoutMs);
      while (!predicate(received)) {
        try {
          await once(events, 'request', { signal });
        } catch {
          throw new Error(`receiver: condition not met within ${timeoutMs} ms; got ${received.length} request(s): ${received.map((x) => `${x.json?.type}/${x.headers['webhook-id']}`).join(', ')}`);
        }
      }
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const path = req.url ?? '';
    const open = (r.inFlight.get(path) ?? 0) + 1;
    r.inFlight.set(path, open);
    r.maxInFlight.set(path, Math.max(open, r.maxInFlight.get(path) ?? 0));
    res.on('close', () => r.inFlight.set(path, (r.inFlight.get(path) ?? 1) - 1));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let verified = false;
      let verifyError: string | undefined;
      for (const v of verifiers) {
        try {
          v.verify(body, req.headers as Record<string, string>);
          verified = true;
          break;
        } catch (err) {
          verifyError = (err as Error).message;
        }
      }
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const reply = r.decide?.(path, req.headers) ?? r.byPath[path] ?? r.replies.shift() ?? r.fallback;
      received.push({ path: req.url ?? '', headers: req.headers, body, json, verified, verifyError, at: Date.now() });
      events.emit('request');
      if (reply.hang) return;
      const answer = () => {
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body ?? '');
      };
      if (reply.delayMs) setTimeout(answer, reply.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return r;
}
