// `npm run bench:submit [-- --n 400 --concurrency 1,8]`: what submitting through taskhook
// (POST /v1/tasks) costs over calling the upstream directly. The same generation request
// (POST /api/v2/voice/clone on the simulated upstream, bench/upstream.ts in its own
// process) is sent directly and through a gateway (`bin/taskhook.js serve`, role api, so
// no poller competes for the CPU; embedded Postgres in a temp dir, or DATABASE_URL's
// server), alternating request by request so both see the same machine; a fresh
// Idempotency-Key each time (the full path: record, call, watch + acceptance in one
// transaction). Prints p50/p90/p99/max of each and the overhead (gateway − direct), and
// the same as JSON on its last line. What the figures mean: bench/README.md.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { ROOT, dist, freePort, procCpuSeconds, startTsChild, type Dist } from './lib.js';
import { spawn } from 'node:child_process';

const { values: argv } = parseArgs({
  options: {
    n: { type: 'string', default: '400' },
    warmup: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '1,8' },
  },
});
const N = Number(argv.n);
const WARMUP = Number(argv.warmup);
const LEVELS = argv.concurrency!.split(',').map(Number);

const API_KEY = `thk_bench_${randomUUID().replaceAll('-', '')}`;
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BODY = { text: 'benchmark', reference_audio_url: 'https://example.com/ref.wav', model: 'v1-real', _sim: { durationMs: 3_600_000 } };

let db: EmbeddedDatabase | undefined;
let dataDir: string | undefined;
const children: Array<() => Promise<unknown>> = [];

async function main() {
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-bench-submit-'));
    db = await startEmbedded(dataDir, () => {});
    databaseUrl = db.url;
  }
  const sim = await startTsChild('upstream.ts', ['--port', String(await freePort())], { SIM_API_KEYS: 'sk_bench' }, { name: 'upstream' });
  children.push(() => sim.stop());
  const upstreamUrl: string = sim.ready.url;

  const port = await freePort();
  const gw = spawn(process.execPath, [path.join(ROOT, 'bin/taskhook.js'), 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      TASKHOOK_ROLE: 'api',
      UPSTREAM_BASE_URL: upstreamUrl,
      UPSTREAM_API_KEY: 'sk_bench',
      TASKHOOK_API_KEY: API_KEY,
      TASKHOOK_SIGNING_SECRET: SECRET,
      TASKHOOK_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
      TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(async () => {
    gw.kill('SIGTERM');
    await new Promise((r) => gw.once('exit', r));
  });
  const gatewayUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${gatewayUrl}/readyz`).then((r) => r.ok, () => false)) === true) break;
    if (i > 600) throw new Error('gateway not ready in 60 s');
    await sleep(100);
  }

  const direct = new Pool(upstreamUrl, { connections: 16 });
  const gateway = new Pool(gatewayUrl, { connections: 16 });
  const callDirect = async () => {
    const t = performance.now();
    const res = await direct.request({
      path: '/api/v2/voice/clone',
      method: 'POST',
      headers: { authorization: 'Bearer sk_bench', 'content-type': 'application/json' },
      body: JSON.stringify(BODY),
    });
    await res.body.text();
    if (res.statusCode !== 202) throw new Error(`upstream answered ${res.statusCode}`);
    return performance.now() - t;
  };
  const callGateway = async () => {
    const t = performance.now();
    const res = await gateway.request({
      path: '/v1/tasks',
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify({ submit: { path: '/api/v2/voice/clone', body: BODY }, callback_url: 'http://127.0.0.1:9/hook' }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`gateway answered ${res.statusCode}: ${text}`);
    return performance.now() - t;
  };

  /** the gateway's own view of its upstream calls: taskhook_submit_upstream_duration_seconds sum and count */
  const upstreamSeen = async () => {
    const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
    const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { sum: num('taskhook_submit_upstream_duration_seconds_sum'), count: num('taskhook_submit_upstream_duration_seconds_count') };
  };

  const results: Array<{
    concurrency: number;
    direct: Dist;
    gateway: Dist;
    overhead: { p50: number; p90: number; p99: number };
    upstreamMeanMsSeenByGateway: number;
    gatewayCpuMsPerSubmit: number;
  }> = [];
  for (const c of LEVELS) {
    // warm both paths (connections, JIT, the gateway's tenant cache)
    await Promise.all(Array.from({ length: c }, async () => {
      for (let i = 0; i < WARMUP / c; i++) await Promise.all([callDirect(), callGateway()]);
    }));
    const d: number[] = [];
    const g: number[] = [];
    let next = 0;
    const seenBefore = await upstreamSeen();
    const cpuBefore = procCpuSeconds(gw.pid!) ?? NaN;
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (next < N) {
          const i = next++;
          // alternate which goes first, so neither always meets the other's tail
          if (i % 2 === 0) {
            d.push(await callDirect());
            g.push(await callGateway());
          } else {
            g.push(await callGateway());
            d.push(await callDirect());
          }
        }
      }),
    );
    const seenAfter = await upstreamSeen();
    const gatewayCpuMsPerSubmit = (((procCpuSeconds(gw.pid!) ?? NaN) - cpuBefore) * 1000) / g.length;
    const dd = dist(d);
    const gd = dist(g);
    const upstreamMeanMsSeenByGateway = ((seenAfter.sum - seenBefore.sum) / (seenAfter.count - seenBefore.count)) * 1000;
    results.push({ concurrency: c, direct: dd, gateway: gd, overhead: { p50: gd.p50 - dd.p50, p90: gd.p90 - dd.p90, p99: gd.p99 - dd.p99 }, upstreamMeanMsSeenByGateway, gatewayCpuMsPerSubmit });
  }
  await Promise.all([direct.close(), gateway.close()]);

  const ms = (x: number) => `${x.toFixed(2)} ms`;
  console.log(`submit latency, ${N} requests each way per level (load average ${os.loadavg()[0]!.toFixed(1)}, ${os.cpus().length} cores)`);
  console.log('concurrency | direct p50 / p90 / p99 | through taskhook p50 / p90 / p99 | overhead p50 / p99 | its upstream call (mean, as the gateway saw it) vs direct mean | gateway CPU per submit');
  for (const r of results) {
    console.log(
      `${String(r.concurrency).padStart(11)} | ${ms(r.direct.p50)} / ${ms(r.direct.p90)} / ${ms(r.direct.p99)} | ${ms(r.gateway.p50)} / ${ms(r.gateway.p90)} / ${ms(r.gateway.p99)} | +${ms(r.overhead.p50)} / +${ms(r.overhead.p99)} | ${ms(r.upstreamMeanMsSeenByGateway)} vs ${ms(r.direct.mean)} | ${ms(r.gatewayCpuMsPerSubmit)}`,
    );
  }
  console.log(JSON.stringify({ n: N, loadavg: os.loadavg(), results }));
}

try {
  await main();
} finally {
  for (const stop of children.reverse()) await stop().catch(() => {});
  await db?.stop().catch(() => {});
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}
