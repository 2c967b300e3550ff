// The soak's webhook receivers: one node:http server per loopback origin, each
// routing by path to a planned callback URL that is healthy (2xx after a short delay)
// or flaps on its seeded schedule (500, hang, 429 + Retry-After, closing the connection
// without an answer, 410). Every request is verified on arrival with the
// `standardwebhooks` package against every secret its tenant (from the path) was ever
// issued, and kept with the answer it got, for the checker.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Plan, ReceiverMode } from './plan.js';

export type Answer = 'ack' | ReceiverMode | 'bad-signature' | 'unknown-path';

export interface Receipt {
  at: number;
  origin: number;
  path: string;
  tenant: number;
  /** webhook-id, webhook-timestamp headers */
  id: string;
  ts: number;
  body: string;
  answer: Answer;
  /** when the answer was handed to the socket (undefined: none sent) */
  answeredAt?: number;
  /** indices into the path's tenant's secrets (in issue order) that verify this request */
  verifiedBy: number[];
  /** other tenants whose secrets verify it (a cross-tenant signature) */
  foreign: number[];
}

export interface Secrets {
  /** per tenant, every secret issued so far, oldest first */
  of(tenant: number): Array<{ secret: string; at: number }>;
  tenants(): number;
}

export interface Receivers {
  /** per origin, http://127.0.0.1:port */
  origins: string[];
  receipts: Receipt[];
  url(tenant: number, u: number): string;
  /** from now on every URL is healthy */
  heal(): void;
  close(): Promise<void>;
}

const PATH = /^\/t(\d+)\/u(\d+)$/;

export async function startReceivers(plan: Plan, secrets: Secrets, t0: number): Promise<Receivers> {
  const verifiers = new Map<string, Webhook>();
  const verifier = (s: string) => {
    let v = verifiers.get(s);
    if (!v) verifiers.set(s, (v = new Webhook(s)));
    return v;
  };
  const verifies = (s: string, body: string, headers: http.IncomingHttpHeaders) => {
    try {
      verifier(s).verify(body, headers as Record<string, string>);
      return true;
    } catch {
      return false;
    }
  };
  let healed = false;
  const receipts: Receipt[] = [];
  const servers: http.Server[] = [];
  const hanging = new Set<http.ServerResponse>();

  const modeOf = (tenant: number, u: number, at: number): ReceiverMode | 'ack' => {
    const url = plan.urls[tenant]?.[u];
    if (!url || url.healthy || healed) return 'ack';
    const t = at - t0;
    return url.flaps.find((f) => f.fromMs <= t && t < f.toMs)?.mode ?? 'ack';
  };

  for (let origin = 0; origin < plan.origins; origin++) {
    const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = Date.now();
        const body = Buffer.concat(chunks).toString('utf8');
        const path = (req.url ?? '').split('?')[0]!;
        const m = PATH.exec(path);
        const tenant = m ? Number(m[1]) : -1;
        const u = m ? Number(m[2]) : -1;
        const known = m !== null && plan.urls[tenant]?.[u]?.origin === origin;
        const own = known ? secrets.of(tenant) : [];
        const verifiedBy = own.flatMap((s, i) => (verifies(s.secret, body, req.headers) ? [i] : []));
        const foreign: number[] = [];
        if (verifiedBy.length === 0) {
          for (let t = 0; t < secrets.tenants(); t++) {
            if (t !== tenant && secrets.of(t).some((s) => verifies(s.secret, body, req.headers))) foreign.push(t);
          }
        }
        const mode = known ? modeOf(tenant, u, at) : 'unknown-path';
        const answer: Answer = known && verifiedBy.length === 0 ? 'bad-signature' : mode;
        const receipt: Receipt = {
          at,
          origin,
          path,
          tenant,
          id: String(req.headers['webhook-id'] ?? ''),
          ts: Number(req.headers['webhook-timestamp'] ?? NaN),
          body,
          answer,
          verifiedBy,
          foreign,
        };
        receipts.push(receipt);
        res.on('finish', () => (receipt.answeredAt = Date.now()));
        switch (answer) {
          case 'ack': {
            const delay = plan.urls[tenant]![u]!.delayMaxMs * Math.random();
            const send = () => res.writeHead(204).end();
            if (delay >= 1) setTimeout(send, delay);
            else send();
            return;
          }
          case 'hang':
            hanging.add(res);
            res.on('close', () => hanging.delete(res));
            return;
          case 'close':
            req.socket.destroy();
            return;
          case '429':
            res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain' }).end('slow down');
            return;
          case 'bad-signature':
            res.writeHead(400, { 'content-type': 'text/plain' }).end('bad signature');
            return;
          case 'unknown-path':
            res.writeHead(404).end();
            return;
          default:
            res.writeHead(Number(answer), { 'content-type': 'text/plain' }).end(`simulated ${answer}`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  const origins = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
  return {
    origins,
    receipts,
    url: (tenant, u) => `${origins[plan.urls[tenant]![u]!.origin]}${plan.urls[tenant]![u]!.path}`,
    heal() {
      healed = true;
      for (const res of hanging) res.socket?.destroy();
    },
    async close() {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}
