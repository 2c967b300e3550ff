// `npm run demo`: the whole loop on one machine, nothing to set up. Starts the
// simulated upstream, a gateway on an embedded Postgres in a temp dir and a receiver
// that verifies every signature; submits two tasks of each capability through taskhook
// (POST /v1/tasks: taskhook calls upstream with the key it holds and watches the task;
// one of them the other way, submitted upstream by the app and registered by task_id),
// prints every verified webhook as it arrives and exits 0 once all have (`--keep`: stay
// up to try the CLI against it). Ctrl-C cleans up.
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from './config.js';
import { startGateway, type Gateway } from './gateway.js';
import { createLogger } from './log.js';
import { startSimUpstream, type SimUpstream } from './sim/server.js';
import { verifyWebhook, WebhookVerificationError } from './verify.js';
import { newApiKey, newSigningSecret } from './tenancy/keys.js';
import { resultOf } from './cli/format.js';

const UPSTREAM_KEY = 'sk_demo';
const TIMEOUT_MS = 60_000;

type Script = { capability: 'voice' | 'image' | 'video'; outcome: 'completed' | 'failed' | 'cancelled'; durationMs: number; byTaskId?: true };
const TASKS: Script[] = [
  { capability: 'voice', outcome: 'completed', durationMs: 1_200 },
  { capability: 'voice', outcome: 'failed', durationMs: 2_000 },
  { capability: 'image', outcome: 'completed', durationMs: 1_600 },
  { capability: 'image', outcome: 'cancelled', durationMs: 2_400 },
  { capability: 'video', outcome: 'completed', durationMs: 3_000 },
  // the other way in: the app submits upstream itself and registers the task_id
  { capability: 'video', outcome: 'completed', durationMs: 3_600, byTaskId: true },
];

/** The generation request of each capability (the simulated upstream's `_sim` scripts the outcome). */
const GENERATE = {
  voice: { path: '/api/v2/voice/clone', body: { text: 'Hello from the taskhook demo.', reference_audio_url: 'https://example.com/ref.wav' } },
  image: { path: '/api/v2/image/generate', body: { prompt: 'a lighthouse at dawn', size: '16:9' } },
  video: { path: '/api/v2/video/generate', body: { prompt: 'waves on a beach', duration: 5 } },
} as const;

interface Receiver {
  url: string;
  close(): Promise<void>;
}

function startReceiver(secret: string, onHook: (hook: { id: string; event: Record<string, any>; error: string | undefined }) => void): Promise<Receiver> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // what your receiver does: verify the raw body against the headers, then trust it
      let event: Record<string, any> = {};
      let error: string | undefined;
      try {
        event = verifyWebhook<Record<string, any>>(Buffer.concat(chunks), req.headers, secret);
      } catch (err) {
        if (!(err instanceof WebhookVerificationError)) throw err;
        error = err.message;
        try {
          event = { watch_id: (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { watch_id?: unknown }).watch_id };
        } catch {
          // not even JSON: counted as a failure, not as any watch's webhook
        }
      }
      res.writeHead(error ? 400 : 204).end();
      onHook({ id: String(req.headers['webhook-id']), event, error });
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}

async function json(url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown }): Promise<any> {
  // (an Idempotency-Key makes a retry of this very request safe: never a second upstream task)
  const res = await fetch(url, {
    method: init.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(argv: string[]): Promise<number> {
  const keep = argv.includes('--keep');
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const started = Date.now();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'taskhook-demo-'));
  let upstream: SimUpstream | undefined;
  let receiver: Receiver | undefined;
  let gateway: Gateway | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await gateway?.stop().catch(() => {});
      await Promise.all([upstream?.close().catch(() => {}), receiver?.close()]);
      await fs.rm(dataDir, { recursive: true, force: true }).catch(() => {});
    })());
  const interrupted = new Promise<number>((resolve) => {
    const stop = () => {
      out('\ninterrupted; stopping the demo and removing its data (Ctrl-C again to force)');
      resolve(130);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

  const run = async (): Promise<number> => {
    const apiKey = newApiKey();
    const secret = newSigningSecret();
    const expected = new Map<string, Script & { registeredAt: number }>(); // watch id →
    const arrived = new Set<string>();
    let failures = 0;
    let allArrived!: () => void;
    const everything = new Promise<void>((r) => (allArrived = r));

    out('taskhook demo: simulated upstream → gateway (embedded Postgres) → verifying receiver\n');
    upstream = await startSimUpstream({ apiKeys: [UPSTREAM_KEY] });
    receiver = await startReceiver(secret, ({ id, event, error }) => {
      const script = expected.get(String(event.watch_id));
      const data = (event.data ?? {}) as Record<string, unknown>;
      const after = script ? `${secs(Date.now() - script.registeredAt)} after registration` : 'unknown watch';
      if (error) {
        failures++;
        out(`  ✗ ${id}: ${error}`);
      } else {
        const capability = String(data.capability ?? script?.capability ?? '?');
        const result = resultOf(data as never) ?? `status ${String(data.status)}`;
        out(`  ✓ ${String(event.type).padEnd(14)} ${capability.padEnd(5)}  task ${String(data.task_id).slice(0, 8)}…  ${result}  (verified, ${after})`);
      }
      if (script && !arrived.has(String(event.watch_id))) {
        arrived.add(String(event.watch_id));
        if (arrived.size === expected.size) allArrived();
      }
    });
    const cfg = loadConfig({
      TASKHOOK_DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      UPSTREAM_BASE_URL: upstream.url,
      UPSTREAM_API_KEY: UPSTREAM_KEY,
      TASKHOOK_API_KEY: apiKey,
      TASKHOOK_SIGNING_SECRET: secret,
      TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
      // polls every 0.3-0.6 s instead of 3-6 s, so the demo takes seconds
      TASKHOOK_POLL_SCALE: '0.1',
      TASKHOOK_RETRY_SCHEDULE: '1s,2s,5s',
      TASKHOOK_SHUTDOWN_TIMEOUT_S: '2',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    });
    out(`  upstream  ${upstream.url}  (simulated; key ${UPSTREAM_KEY})`);
    out(`  gateway   starting on an embedded Postgres in ${dataDir} …`);
    gateway = await startGateway(cfg, createLogger(cfg.logLevel));
    out(`  gateway   ${gateway.url}  (ready in ${secs(Date.now() - started)})`);
    out(`  receiver  ${receiver.url}/hook  (verifies every Standard Webhooks signature)\n`);

    for (const script of TASKS) {
      const { capability, outcome, durationMs } = script;
      if (script.byTaskId) {
        // the app holds the upstream key, submits upstream itself, then hands the task_id to taskhook
        const task = await json(`${upstream.url}/api/v2/tasks`, { headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, body: { capability, outcome, durationMs } });
        const watch = await json(`${gateway.url}/v1/watches`, {
          headers: { authorization: `Bearer ${apiKey}` },
          body: { task_id: task.task_id, callback_url: `${receiver.url}/hook`, metadata: { demo: true } },
        });
        expected.set(watch.id, { ...script, registeredAt: Date.now() });
        out(`  registered ${watch.id}  ${capability.padEnd(5)} task ${String(task.task_id).slice(0, 8)}…  by task_id (upstream will say ${outcome})`);
        continue;
      }
      // the recommended way: one call; taskhook submits with the upstream key it holds and watches the task
      const g = GENERATE[capability];
      const submitted = await json(`${gateway.url}/v1/tasks`, {
        headers: { authorization: `Bearer ${apiKey}`, 'idempotency-key': crypto.randomUUID() },
        body: { submit: { path: g.path, body: { ...g.body, _sim: { outcome, durationMs } } }, callback_url: `${receiver.url}/hook`, metadata: { demo: true } },
      });
      expected.set(submitted.watch.id, { ...script, registeredAt: Date.now() });
      out(`  submitted  ${submitted.watch.id}  ${capability.padEnd(5)} task ${String(submitted.task_id).slice(0, 8)}…  POST ${g.path} through taskhook (upstream will say ${outcome})`);
    }
    out(`\nwaiting for ${TASKS.length} webhooks …`);
    const timedOut = await Promise.race([
      everything.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), TIMEOUT_MS).unref()),
    ]);
    if (timedOut) {
      out(`\n${arrived.size} of ${TASKS.length} webhooks arrived within ${secs(TIMEOUT_MS)}`);
      return 1;
    }
    out(`\nall ${TASKS.length} webhooks arrived${failures ? `, ${failures} failed verification` : ', every signature verified'} (${secs(Date.now() - started)} in all)`);
    if (!keep) return failures ? 1 : 0;
    out('\nstill running (--keep):');
    out(`  dashboard  ${gateway.url}/dashboard  (sign in with the TASKHOOK_API_KEY below)`);
    out(`  API docs   ${gateway.url}/docs`);
    out('in another terminal try:');
    out(`  export TASKHOOK_URL=${gateway.url} TASKHOOK_API_KEY=${apiKey}`);
    out(`  export TASKHOOK_SIGNING_SECRET=${secret}   # what your receiver verifies webhooks with`);
    out('  node bin/taskhook.js list');
    out(`  node bin/taskhook.js submit /api/v2/image/generate --body '{"prompt":"a fox"}' --callback ${receiver.url}/hook --wait`);
    out('  node bin/taskhook.js listen --forward-to http://localhost:3000/hook');
    out('Ctrl-C to stop.');
    return new Promise<number>(() => {}); // until interrupted
  };

  const running = run();
  running.catch(() => {}); // once interrupted, its requests fail as things stop: expected
  try {
    const code = await Promise.race([running, interrupted]);
    await cleanup();
    return code;
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanup();
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
