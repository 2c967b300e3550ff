// Small helpers shared by the benchmark processes: percentiles, child processes
// that announce themselves with a READY line, JSON over loopback HTTP, /proc reads.
import { execFileSync, spawn, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');

/** The upstream's own guidance (CONTRACT §1/§5): first check after 2 s, then every 3–6 s. */
export const FIRST_POLL_MS = 2_000;
export const POLL_MIN_MS = 3_000;
export const POLL_SPREAD_MS = 3_000;
export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
/** A task that stays `processing` for as long as any benchmark runs. */
export const NEVER_MS = 1e12;

/** The jittered poll interval every contender uses: (3 s + U[0,3 s]) × scale. */
export const nextPollMs = (scale: number) => (POLL_MIN_MS + Math.random() * POLL_SPREAD_MS) * scale;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Dist {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function dist(values: number[]): Dist {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : NaN, mean };
}

export { freePort } from '../src/net/free-port.js';

/** VmRSS (or another field) of a process in MiB, from /proc/<pid>/status; undefined if gone. */
export function procStatusMiB(pid: number, field = 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies (USER_HZ = 100/s) summed over all CPUs, from /proc/stat. */
export function cpuJiffies(): { busy: number; total: number } | undefined {
  try {
    const f = /^cpu\s+(.*)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]?.split(/\s+/).map(Number);
    if (!f) return undefined;
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    // user + nice + system: what processes use (irq/softirq time is not charged to any process here)
    return { busy: (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0), total };
  } catch {
    return undefined;
  }
}

/** Retries a loopback call a few times on a connection-level error (a busy sim may reset one). */
async function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (attempt >= 5 || !/^(ECONNRESET|ECONNREFUSED|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(code)) throw new Error(`${what}: ${String(err)}`);
      await sleep(200 * attempt);
    }
  }
}

export async function getJson<T = any>(url: string): Promise<T> {
  return retrying(`GET ${url}`, async () => {
    const res = await request(url, { method: 'GET' });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`GET ${url} → ${res.statusCode}: ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  });
}

export async function postJson<T = any>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  return retrying(`POST ${url}`, async () => {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`POST ${url} → ${res.statusCode}: ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  });
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** the JSON a child printed after READY on its stdout */
  ready: any;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** the last lines it wrote to stderr (for error messages) */
  stderrTail(): string;
}

function wrap(proc: ChildProcess, name: string, readyTimeoutMs: number, echo: boolean): Promise<Child> {
  let tail = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null))));
  proc.stderr?.on('data', (b: Buffer) => {
    tail = (tail + b.toString()).slice(-4000);
    if (echo) process.stderr.write(`[${name}] ${b.toString()}`);
  });
  const child = (ready: any): Child => ({
    proc,
    pid: proc.pid!,
    ready,
    stderrTail: () => tail,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${name} not ready within ${readyTimeoutMs} ms\n${tail}`));
    }, readyTimeoutMs);
    proc.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('READY ')) {
          clearTimeout(timer);
          resolve(child(JSON.parse(line.slice(6))));
        } else if (echo && line.trim()) process.stderr.write(`[${name}] ${line}\n`);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready\n${tail}`));
    });
  });
}

/** Runs a bench/*.ts script under tsx in its own process, with an IPC channel; resolves on its READY line. */
export function startTsChild(script: string, args: string[], env: Record<string, string>, opts: { name?: string; readyTimeoutMs?: number; echo?: boolean } = {}): Promise<Child> {
  const proc = fork(path.join(BENCH_DIR, script), args, {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return wrap(proc, opts.name ?? script, opts.readyTimeoutMs ?? 30_000, opts.echo ?? false);
}

/**
 * Compiles src/ to dist/ (`npm run build`), the JavaScript the Docker image runs, so the
 * gateways are measured as deployed rather than through tsx's loader.
 */
export function buildDist(): void {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
}

/** How the gateways run: `node dist/main.js …` (as the image's bin/taskhook.js does), or the sources through tsx with --tsx. */
export const gatewayEntry = { script: path.join(ROOT, 'dist', 'main.js') };

/** Runs the gateway (exactly what a deployment runs); ready is up to the caller. */
export function startTaskhook(args: string[], env: Record<string, string>, name: string, echo = false): { proc: ChildProcess; stderrTail: () => string; exited: Promise<number | null> } {
  // e.g. BENCH_GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the gateways
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, gatewayEntry.script, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (b: Buffer) => {
    tail = (tail + b.toString()).slice(-4000);
    if (echo) process.stderr.write(`[${name}] ${b.toString()}`);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null))));
  return { proc, stderrTail: () => tail, exited };
}

/** Sends an IPC message to a child and waits for the reply of the given type. */
export function ask<T = any>(child: ChildProcess, msg: { type: string; [k: string]: unknown }, replyType: string, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`no '${replyType}' reply to '${msg.type}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: any) => {
      if (m?.type === replyType) {
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(m as T);
      } else if (m?.type === 'error') {
        clearTimeout(timer);
        child.off('message', onMessage);
        reject(new Error(String(m.message)));
      }
    };
    child.on('message', onMessage);
    child.send(msg);
  });
}

export const fmt = {
  int: (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US')),
  num: (n: number | undefined, d = 1) => (n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })),
  ms: (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n).toLocaleString('en-US')} ms`),
  ratio: (n: number | undefined) => (n === Infinity ? '∞' : n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(2)}×`),
  pct: (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : `${(n * 100).toFixed(0)} %`),
};

/**
 * The baselines' webhook, as an app would send it: the body for a finished task, signed
 * with `standardwebhooks`, POSTed with global fetch (no redirects). → the HTTP status.
 */
export async function postSignedWebhook(
  wh: { sign(msgId: string, at: Date, body: string): string },
  callback: string,
  msgId: string,
  watchId: string,
  task: { status?: string },
): Promise<number> {
  const body = JSON.stringify({ type: `task.${task.status}`, timestamp: new Date().toISOString(), watch_id: watchId, metadata: {}, data: task });
  const now = new Date();
  const res = await fetch(callback, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': msgId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': wh.sign(msgId, now, body),
    },
    body,
    redirect: 'manual',
  });
  await res.arrayBuffer();
  return res.status;
}

// ---------------------------------------------------------------- the job-queue baselines (pgboss.ts, bullmq.ts, graphile.ts)

/** A baseline's poll job. `gen`: the orchestrator's 'forget' bumps the generation and older poll jobs end without polling. */
export interface PollJob {
  gen: number;
  watchId: string;
  taskId: string;
  callback: string;
}
/** Its delivery job: the terminal task as polled. */
export interface DeliverJob {
  watchId: string;
  callback: string;
  task: { status?: string; task_id?: string };
}
/** What a baseline answers to {type:'stats'}. */
export interface BaselineStats {
  polls: number;
  errors: number;
  delivered: number;
  failed: number;
}
export const baselineStats = (): BaselineStats => ({ polls: 0, errors: 0, delivered: 0, failed: 0 });

/** One poll as every baseline makes it (global fetch, the sim's key) → the task when it is terminal, else undefined. */
export async function pollTerminal(upstream: string, taskId: string, stats: BaselineStats): Promise<DeliverJob['task'] | undefined> {
  try {
    const res = await fetch(`${upstream}/api/v2/tasks/${encodeURIComponent(taskId)}`, {
      headers: { authorization: `Bearer ${process.env.UPSTREAM_API_KEY ?? 'sk_test'}`, accept: 'application/json' },
    });
    const task = (await res.json()) as DeliverJob['task'];
    stats.polls++;
    return res.ok && task.status && TERMINAL.has(task.status) ? task : undefined;
  } catch {
    stats.errors++;
    return undefined;
  }
}

/** A delivery job's work: the signed POST; a non-2xx throws, so the queue retries it. */
export async function deliverJob(wh: Parameters<typeof postSignedWebhook>[0], job: DeliverJob, msgId: string, stats: BaselineStats): Promise<void> {
  const status = await postSignedWebhook(wh, job.callback, msgId, job.watchId, job.task);
  if (status < 200 || status >= 300) {
    stats.failed++;
    throw new Error(`receiver answered HTTP ${status}`);
  }
  stats.delivered++;
}

/**
 * The orchestrator's IPC protocol for a job-queue baseline (see naive.ts's header):
 * {type:'watch', ids, callbacks, spreadMs?} → 'watching'; {type:'forget'} → 'forgot';
 * {type:'stats'} → 'stats'; a failure answers {type:'error', message}.
 */
export function serveBaseline(h: { watch(ids: string[], callbacks: string[], spreadMs: number): Promise<void>; forget(): Promise<void>; stats: BaselineStats }): void {
  process.on('message', (m: { type: string; ids?: string[]; callbacks?: string[]; spreadMs?: number }) => {
    void (async () => {
      try {
        if (m.type === 'watch') {
          await h.watch(m.ids ?? [], m.callbacks ?? [], m.spreadMs ?? 0);
          process.send!({ type: 'watching', n: m.ids?.length ?? 0 });
        } else if (m.type === 'forget') {
          await h.forget();
          process.send!({ type: 'forgot' });
        } else if (m.type === 'stats') {
          process.send!({ type: 'stats', ...h.stats });
        }
      } catch (err) {
        process.send!({ type: 'error', message: String(err) });
      }
    })();
  });
}

/**
 * The raw-capacity harness of bench/raw.ts and bench/raw-post.ts: runs each of `loops`
 * back to back (one request each call; false or a throw is an error), warms up for
 * `warmupS`, then counts for `durationS`. → what the window counted, a latency sample
 * (every 8th request, ms), and CPU as % of one core used by this process and by
 * `otherPid`, and the machine's busy cores.
 */
export async function loadWindow(o: { loops: Array<() => Promise<boolean>>; warmupS: number; durationS: number; otherPid?: number }) {
  let counting = false;
  let stop = false;
  let requests = 0;
  let errors = 0;
  const latencies: number[] = [];
  const run = async (once: () => Promise<boolean>) => {
    while (!stop) {
      const t0 = performance.now();
      const ok = await once().catch(() => false);
      if (!ok) errors++;
      if (counting) {
        requests++;
        if ((requests & 7) === 0) latencies.push(performance.now() - t0); // a sample is enough
      }
    }
  };
  const running = o.loops.map(run);
  const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
  await sleep(o.warmupS);
  const cpu = () => ({ self: procCpuSeconds(process.pid) ?? NaN, other: o.otherPid ? (procCpuSeconds(o.otherPid) ?? NaN) : NaN, machine: cpuJiffies()?.busy ?? NaN });
  const cpu0 = cpu();
  counting = true;
  const t0 = performance.now();
  await sleep(o.durationS);
  counting = false;
  const seconds = (performance.now() - t0) / 1000;
  const counted = requests;
  const cpu1 = cpu();
  stop = true;
  await Promise.all(running);
  const pct = (a: number, b: number) => ((b - a) / seconds) * 100;
  return {
    requests: counted,
    seconds,
    latency: dist(latencies),
    errors,
    cpu: { self: pct(cpu0.self, cpu1.self), other: pct(cpu0.other, cpu1.other), machine: (cpu1.machine - cpu0.machine) / seconds },
  };
}
