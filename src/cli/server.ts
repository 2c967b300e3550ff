// The commands that run a gateway or work on its database: serve, migrate, sim,
// rotate-encryption-key, doctor. Only these parse the server configuration (the
// environment, once); the CLI loads this module only when one of them runs.
import { ConfigError, loadConfig, type Config } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { startGateway, StartupError, type Gateway } from '../gateway.js';
import { isConnectionError, openDatabase } from '../db/client.js';
import { pendingMigrations, runMigrations } from '../db/migrate.js';
import { startSimUpstream } from '../sim/server.js';
import { loadSecretBox } from '../tenancy/bootstrap.js';
import { rewrapAll } from '../tenancy/rewrap.js';
import { formatChecks, runDoctor } from '../doctor.js';
import { CliError } from './errors.js';
import { setFlagsFromString } from 'node:v8';

/**
 * TASKHOOK_HEAP_GROWING_PERCENT (default 50): how far the old generation may grow past what
 * survived the last full GC before V8 collects again. V8's own factor goes up to 4× while
 * GC looks cheap, and the old space swung 30 → 130 MB between full GCs (RSS 246–285 MiB at
 * 1,000,000 waiting watches). Since a poll promotes ~0.1 KB, not ~1.5 KB (no poll waits
 * inside undici: engine/heap-dispatch.ts lanes; the checkpoint in poller/keep.ts), a full GC comes every few seconds at 50 %
 * and costs < 1 % of the poll rate (bench/README "round 4"). Set at run time: V8 reads it at
 * each full GC (NODE_OPTIONS may not carry this V8 flag). 0 leaves V8's own.
 */
function tuneHeap(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/** `--role api|worker|all` on the command line wins over TASKHOOK_ROLE (one image, several process groups). */
function config(role?: string): Config {
  const env = role !== undefined ? { ...process.env, TASKHOOK_ROLE: role } : process.env;
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message);
    throw err;
  }
}

function onSignals(stop: () => Promise<void>) {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`taskhook: ${signal} received, draining\n`);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`taskhook: error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

const FROM_POSTGRES_JS = /[\\/]postgres[\\/]src[\\/]connection\.js/;

/**
 * postgres.js 3.4.x has two failures on a lost connection that escape every promise
 * chain we own, and would kill the process on a database restart or a killed backend:
 * - the array-types query it sends on each new connection is not awaited, so a close
 *   during it is an unhandled rejection (CONNECTION_CLOSED, ECONNRESET, 57P01, ...);
 * - begin()'s automatic ROLLBACK after a close is written to the null socket from a
 *   setImmediate: TypeError "Cannot read properties of null (reading 'write')" in nextWrite.
 * Both only lose a connection (the pool slot is replaced, see db/client.ts); the work
 * is in Postgres under leases, so it is retried. Anything else still ends the process.
 */
function surviveDatabaseConnectionLoss(log: Logger) {
  const fatal = (kind: string, err: unknown) => {
    process.stderr.write(`taskhook: ${kind}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  };
  process.on('unhandledRejection', (reason) => {
    if (isConnectionError(reason)) {
      log.warn({ err: String(reason) }, 'database connection lost under a query nobody awaited (postgres.js); continuing');
      return;
    }
    fatal('unhandled rejection', reason);
  });
  process.on('uncaughtException', (err) => {
    if (err instanceof TypeError && /reading 'write'/.test(err.message) && /nextWrite/.test(String(err.stack)) && FROM_POSTGRES_JS.test(String(err.stack))) {
      log.warn({ err: String(err) }, 'postgres.js wrote to a closed connection (its pool is being replaced); continuing');
      return;
    }
    fatal('uncaught exception', err);
  });
}

export async function serve(role: string | undefined): Promise<void> {
  const cfg = config(role);
  tuneHeap(cfg.heapGrowingPercent);
  const log = createLogger(cfg.logLevel);
  surviveDatabaseConnectionLoss(log);
  let gw: Gateway;
  try {
    gw = await startGateway(cfg, log);
  } catch (err) {
    throw new CliError(startupFailure(err, cfg));
  }
  for (const w of gw.warnings) process.stderr.write(`taskhook: warning: ${w}\n`);
  if (gw.generated.apiKey || gw.generated.signingSecret) {
    // Printed once, on the boot that created them; only hashes (keys) are kept.
    const lines = ['', 'taskhook generated credentials for the default tenant (shown once, store them now):'];
    if (gw.generated.apiKey) lines.push(`  TASKHOOK_API_KEY=${gw.generated.apiKey}`);
    if (gw.generated.signingSecret) lines.push(`  TASKHOOK_SIGNING_SECRET=${gw.generated.signingSecret}`);
    process.stdout.write(`${lines.join('\n')}\n\n`);
  }
  log.info({ url: gw.url, role: cfg.role, database: cfg.databaseUrl ? 'DATABASE_URL' : `embedded in ${cfg.dataDir}` }, 'taskhook started');
  onSignals(() => gw.stop());
}

/** Why the gateway could not start, as the one line after `taskhook: `, naming what to change. */
export function startupFailure(err: unknown, cfg: Config): string {
  if (err instanceof StartupError) return err.message;
  const e = err as NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] };
  const code = e?.code ?? e?.errors?.[0]?.code;
  const where = cfg.databaseUrl ? 'the database at DATABASE_URL' : `the embedded database in ${cfg.dataDir}`;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ETIMEDOUT' || code === 'CONNECT_TIMEOUT')
    return `cannot reach ${where} (${code}): is it running, and is the address right?`;
  if (code === '28P01' || code === '28000') return `${where} refused the login (${code}): check the user and password in DATABASE_URL`;
  if (code === '3D000') return `${where} has no such database (${code}): create it, or fix the name in DATABASE_URL`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOTDIR') return `cannot write ${cfg.dataDir} (${code}): set TASKHOOK_DATA_DIR to a writable directory`;
  return `could not start: ${err instanceof Error ? err.message : String(err)}`;
}

export async function migrate(check: boolean): Promise<number> {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  const db = await openDatabase(cfg, (m) => log.info(m), { max: 1 });
  try {
    if (check) {
      const pending = await pendingMigrations(db.sql);
      process.stdout.write(pending ? `${pending} migration(s) pending\n` : 'migrations up to date\n');
      return pending ? 1 : 0;
    }
    await runMigrations(db.url);
    process.stdout.write('migrations applied\n');
    return 0;
  } finally {
    await db.close();
  }
}

export async function rotateEncryptionKey(): Promise<number> {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  const db = await openDatabase(cfg, (m) => log.info(m), { max: 1 });
  try {
    const box = await loadSecretBox(cfg.encryptionKey, cfg.dataDir);
    const r = await rewrapAll(db.sql, box);
    process.stdout.write(`${r.rewrapped} upstream key(s) re-wrapped with key ${box.currentKeyId}, ${r.skipped} already current\n`);
    for (const f of r.failed) process.stderr.write(`taskhook: tenant ${f.tenant_id} left as is: ${f.error}\n`);
    return r.failed.length > 0 ? 1 : 0;
  } finally {
    await db.close();
  }
}

export async function sim(port: number, host: string, apiKeys: string[]): Promise<void> {
  const s = await startSimUpstream({ port, host, apiKeys });
  process.stdout.write(`simulated upstream on ${s.url} (keys: ${apiKeys.join(', ')})\n`);
  onSignals(() => s.close());
}

export async function doctor(): Promise<number> {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  const checks = await runDoctor(cfg, { log: (m) => log.info(m) });
  process.stdout.write(formatChecks(checks));
  return checks.some((c) => c.status === 'fail') ? 1 : 0;
}
