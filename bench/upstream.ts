// The simulated upstream for the benchmark: the very server `taskhook sim` runs
// (src/sim/server.ts, unchanged), plus a second loopback port with the hooks a
// benchmark needs and the sim has not got:
//   GET  /stats               {requests, at}: GET /api/v2/tasks/:id answered so far (any answer), at = this clock
//   POST /tasks/bulk          {prefix, from, count, script} creates tasks `${prefix}${from..from+count-1}` in-process
//                             (script.durationSpreadMs: each task's durationMs + U[0, spread])
//   POST /terminal            {prefix} → {[task_id]: ms}: when the sim first served a terminal answer for each task
// The terminal time is taken by wrapping the store's get() (called by the GET handler just
// before it writes the answer), so it is the moment the terminal JSON was produced.
// Usage: node --import tsx bench/upstream.ts --port P; prints `READY {"url","statsUrl"}`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { startSimUpstream } from '../src/sim/server.js';
import type { TaskScript, TaskView } from '../src/sim/tasks.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'stats-port': { type: 'string', default: '0' } } });
const apiKeys = (process.env.SIM_API_KEYS ?? 'sk_test').split(',');
const sim = await startSimUpstream({ port: Number(values.port), host: '127.0.0.1', apiKeys });

const firstTerminal = new Map<string, number>();
const store = sim.store;
const get = store.get.bind(store);
store.get = (taskId: string, now: number): TaskView | undefined => {
  const view = get(taskId, now);
  if (view && TERMINAL.has(view.status) && !firstTerminal.has(taskId)) firstTerminal.set(taskId, Date.now());
  return view;
};

function readBody(req: http.IncomingMessage): Promise<any> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

const stats = http.createServer(async (req, res) => {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    if (req.method === 'GET' && req.url === '/stats') return send(200, { requests: sim.requests(), at: Date.now() });
    const body = await readBody(req);
    if (req.method === 'POST' && req.url === '/tasks/bulk') {
      const { prefix, from = 0, count, script = {} } = body as { prefix: string; from?: number; count: number; script?: TaskScript & { durationSpreadMs?: number } };
      const { durationSpreadMs = 0, ...base } = script;
      const now = Date.now();
      for (let i = from; i < from + count; i++) {
        const s: TaskScript = { ...base, task_id: `${prefix}${i}` };
        if (durationSpreadMs > 0) s.durationMs = (base.durationMs ?? 0) + Math.random() * durationSpreadMs;
        store.create(s, now);
      }
      return send(201, { created: count });
    }
    if (req.method === 'POST' && req.url === '/terminal') {
      const prefix = String(body.prefix ?? '');
      const out: Record<string, number> = {};
      for (const [id, at] of firstTerminal) if (id.startsWith(prefix)) out[id] = at;
      return send(200, out);
    }
    send(404, { error: 'not found' });
  } catch (err) {
    send(500, { error: String(err) });
  }
});
await new Promise<void>((resolve) => stats.listen(Number(values['stats-port']), '127.0.0.1', resolve));
const statsUrl = `http://127.0.0.1:${(stats.address() as AddressInfo).port}`;

const stop = () => {
  stats.close();
  void sim.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
process.stdout.write(`READY ${JSON.stringify({ url: sim.url, statsUrl })}\n`);
