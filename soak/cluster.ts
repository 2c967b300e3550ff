// What the soak runs and breaks: a Postgres (the embedded one in a temp dir, which
// it can stop and start; or the server of DATABASE_URL, on a database of its own,
// restarted only through --pg-restart-cmd), the simulated upstream (a child process
// with its /_sim admin routes) and N gateway processes (`node bin/taskhook.js serve`)
// it can SIGKILL, SIGSTOP/SIGCONT, SIGTERM and start again. Each gateway's output
// goes to a log file in the run directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { freePort } from '../src/net/free-port.js';
import { ROOT, startTsChild, type Child } from '../bench/lib.js';
import { normalPriority } from './priority.js';

export interface Pg {
  kind: 'embedded' | 'server';
  url: string;
  /** what a restart does, or why it can't be done */
  restartNote: string;
  canRestart: boolean;
  /** stops Postgres, stays down for `downMs` (embedded; a restart command takes its own time), starts it */
  restart(downMs: number): Promise<void>;
  /** pg_terminate_backend on every other connection to the soak's database → how many */
  terminateBackends(): Promise<number>;
  /** a connection for diagnostics (reconnects by itself) */
  sql: postgres.Sql;
  close(keep: boolean): Promise<void>;
}

const withDatabase = (url: string, db: string) => {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
};

export async function startPg(o: { dir: string; serverUrl?: string; restartCmd?: string; dbName: string; log: (m: string) => void }): Promise<Pg> {
  if (!o.serverUrl) {
    const dataDir = path.join(o.dir, 'pg');
    const start = async () => {
      const e = await startEmbedded(dataDir, o.log);
      normalPriority(postmasterPid(path.join(dataDir, 'pg')));
      return e;
    };
    let embedded: EmbeddedDatabase | undefined = await start();
    const url = embedded.url;
    const sql = postgres(url, { max: 2, onnotice: () => {}, fetch_types: false, connect_timeout: 5 });
    return {
      kind: 'embedded',
      url,
      canRestart: true,
      restartNote: 'embedded Postgres stopped and started by the soak',
      async restart(downMs) {
        const e = embedded;
        embedded = undefined;
        await e?.stop();
        await sleep(downMs);
        embedded = await start();
      },
      terminateBackends: () => terminate(sql),
      sql,
      async close() {
        await sql.end({ timeout: 1 }).catch(() => {});
        await embedded?.stop();
      },
    };
  }
  const admin = postgres(o.serverUrl, { max: 1, onnotice: () => {}, fetch_types: false });
  await admin.unsafe(`drop database if exists ${o.dbName} with (force)`);
  await admin.unsafe(`create database ${o.dbName}`);
  const url = withDatabase(o.serverUrl, o.dbName);
  const sql = postgres(url, { max: 2, onnotice: () => {}, fetch_types: false, connect_timeout: 5 });
  const cmd = o.restartCmd;
  return {
    kind: 'server',
    url,
    canRestart: cmd !== undefined,
    restartNote: cmd ? `server restarted by: ${cmd}` : 'server not restarted (no --pg-restart-cmd): restarts are skipped, backends are still terminated',
    async restart() {
      if (!cmd) return;
      // stdio ignored and 'exit' awaited: a restarted postmaster inherits the command's
      // stdout, so waiting for the output to close would wait for the server to stop
      const child = spawn('sh', ['-c', cmd], { stdio: 'ignore' });
      normalPriority(child.pid); // the server it restarts is under test, not part of the soak
      const t = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(t);
      if (code !== 0) throw new Error(`${cmd} exited ${code}`);
    },
    terminateBackends: () => terminate(sql),
    sql,
    async close(keep) {
      await sql.end({ timeout: 1 }).catch(() => {});
      if (!keep) await admin.unsafe(`drop database if exists ${o.dbName} with (force)`).catch(() => {});
      await admin.end({ timeout: 1 }).catch(() => {});
    },
  };
}

/** what a gateway logs when its shutdown deadline passes with work in flight (src/gateway.ts) */
const ABANDONED_AT_STOP = 'shutdown deadline passed with work in flight';

/** The postmaster's pid: the first line of postmaster.pid in its data directory. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function terminate(sql: postgres.Sql): Promise<number> {
  const rows = await sql<{ ok: boolean }[]>`
    select pg_terminate_backend(pid) as ok from pg_stat_activity
     where datname = current_database() and pid <> pg_backend_pid()`;
  return rows.filter((r) => r.ok).length;
}

export async function startSim(keys: string[]): Promise<{ url: string; child: Child }> {
  const child = await startTsChild('../soak/upstream.ts', [], { SIM_API_KEYS: keys.join(',') }, { name: 'sim' });
  return { url: child.ready.url as string, child };
}

export type ProcState = 'starting' | 'running' | 'stopped' | 'dead';

export class GatewayProc {
  state: ProcState = 'dead';
  url = '';
  child: ChildProcess | undefined;
  generation = 0;
  /** stays dead on purpose (a kill not followed by a restart) */
  abandoned = false;
  /**
   * the current process said its graceful stop's deadline passed with work in flight: it
   * handed that work back unfinished, so its sends may be repeated like a crash's
   */
  stopAbandonedWork = false;
  private exited: Promise<unknown> = Promise.resolve();

  constructor(
    readonly index: number,
    private readonly env: Record<string, string>,
    private readonly logDir: string,
  ) {}

  /** Starts it and waits for /readyz (retrying a start that fails, e.g. while Postgres is down). */
  async start(timeoutMs = 90_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    this.state = 'starting';
    for (;;) {
      const port = await freePort();
      this.generation++;
      const log = fs.createWriteStream(path.join(this.logDir, `gw${this.index}.${this.generation}.log`));
      const child = spawn(process.execPath, [path.join(ROOT, 'bin/taskhook.js'), 'serve'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...this.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      normalPriority(child.pid);
      this.stopAbandonedWork = false;
      let tail = '';
      child.stdout.on('data', (chunk: Buffer) => {
        tail = (tail + chunk.toString('utf8')).slice(-4096);
        if (tail.includes(ABANDONED_AT_STOP)) this.stopAbandonedWork = true;
      });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      this.child = child;
      this.exited = once(child, 'exit');
      const url = `http://127.0.0.1:${port}`;
      let up = false;
      while (!up && child.exitCode === null && child.signalCode === null && Date.now() < until) {
        up = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
        if (!up) await sleep(150);
      }
      if (up) {
        this.url = url;
        this.state = 'running';
        return;
      }
      child.kill('SIGKILL');
      await this.exited;
      if (Date.now() >= until) {
        this.state = 'dead';
        throw new Error(`gateway ${this.index} did not become ready within ${timeoutMs} ms (see gw${this.index}.${this.generation}.log)`);
      }
      await sleep(1_000);
    }
  }

  async kill(): Promise<void> {
    const c = this.child;
    this.state = 'dead';
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await this.exited;
  }

  stop(): void {
    this.child?.kill('SIGSTOP');
    this.state = 'stopped';
  }

  cont(): void {
    this.child?.kill('SIGCONT');
    if (this.state === 'stopped') this.state = 'running';
  }

  /** SIGTERM and wait for the graceful exit → its exit code */
  async term(): Promise<number | null> {
    const c = this.child;
    this.state = 'dead';
    if (!c || c.exitCode !== null || c.signalCode !== null) return c?.exitCode ?? null;
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
    return c.exitCode;
  }
}
