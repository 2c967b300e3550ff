// The webhook receiver for the benchmark: node:http on one or more loopback ports
// (each port is its own callback origin), verifies every request with the
// `standardwebhooks` package, answers 204 (400 on a bad signature), and records
// when each task's webhook first arrived. On the first port it also answers
//   GET  /stats     {received, verified, rejected, duplicates, at}
//   POST /arrivals  {prefix} → {[task_id]: ms}: first verified arrival per task
//   POST /count     {prefix} → {n}: tasks of that prefix with a webhook
//   POST /reset     forgets everything
// A POST to a path starting with /hang is read and never answered (a hanging callback URL
// on a shared host, for the delivery bench).
// Usage: TASKHOOK_SIGNING_SECRET=whsec_… node --import tsx bench/receiver.ts [--ports K];
// prints `READY {"urls": [...]}`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';

const { values } = parseArgs({ options: { ports: { type: 'string', default: '1' } } });
const secret = process.env.TASKHOOK_SIGNING_SECRET;
if (!secret) throw new Error('TASKHOOK_SIGNING_SECRET is required');
const wh = new Webhook(secret);

let received = 0;
let verified = 0;
let rejected = 0;
let duplicates = 0;
const seen = new Set<string>();
const arrivals = new Map<string, number>();

function send(res: http.ServerResponse, status: number, body?: unknown) {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function handler(control: boolean) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (control && req.method === 'GET' && req.url === '/stats') {
        return send(res, 200, { received, verified, rejected, duplicates, tasks: arrivals.size, at: Date.now() });
      }
      if (control && req.method === 'POST' && req.url === '/arrivals') {
        const prefix = String((JSON.parse(body || '{}') as { prefix?: string }).prefix ?? '');
        const out: Record<string, number> = {};
        for (const [id, at] of arrivals) if (id.startsWith(prefix)) out[id] = at;
        return send(res, 200, out);
      }
      if (control && req.method === 'POST' && req.url === '/count') {
        const prefix = String((JSON.parse(body || '{}') as { prefix?: string }).prefix ?? '');
        let n = 0;
        for (const id of arrivals.keys()) if (id.startsWith(prefix)) n++;
        return send(res, 200, { n });
      }
      if (control && req.method === 'POST' && req.url === '/reset') {
        received = verified = rejected = duplicates = 0;
        seen.clear();
        arrivals.clear();
        return send(res, 200, {});
      }
      if (req.method !== 'POST') return send(res, 404);
      if (req.url?.startsWith('/hang')) return;
      const at = Date.now();
      received++;
      let event: { type?: string; data?: { task_id?: string } };
      try {
        event = wh.verify(body, req.headers as Record<string, string>) as typeof event;
      } catch {
        rejected++;
        return send(res, 400);
      }
      verified++;
      const id = String(req.headers['webhook-id']);
      if (seen.has(id)) duplicates++;
      else seen.add(id);
      const taskId = event.data?.task_id;
      if (taskId !== undefined && !arrivals.has(taskId)) arrivals.set(taskId, at);
      send(res, 204);
    });
  };
}

const ports = Math.max(1, Number(values.ports));
const servers: http.Server[] = [];
const urls: string[] = [];
for (let i = 0; i < ports; i++) {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, handler(i === 0));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

const stop = () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
process.stdout.write(`READY ${JSON.stringify({ urls })}\n`);
