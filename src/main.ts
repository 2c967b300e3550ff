// The taskhook command: `serve` (default), `migrate`, `sim`, `rotate-encryption-key`, `doctor`. Parses the config once,
// starts what was asked, and stops cleanly on SIGTERM/SIGINT.
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { startGateway } from './gateway.js';
import { isConnectionError, openDatabase } from './db/client.js';
import type { Logger } from './log.js';
import { pendingMigrations, runMigrations } from './db/migrate.js';
import { startSimUpstream } from './sim/server.js';
import { loadSecretBox } from './tenancy/bootstrap.js';
import { rewrapAll } from './tenancy/rewrap.js';
import { formatChecks, runDoctor } from './doctor.js';

const USAGE = `usage: taskhook <command>
  serve [--role R]   run the gateway: R = api, worker or all (default TASKHOOK_ROLE, all)
  migrate [--check]  apply pending migrations (--check: exit 1 if any are pending)
  sim [--port N]     run the simulated upstream (API keys: SIM_API_KEYS, default sk_test)
  rotate-encryption-key
                     re-seal every tenant's upstream key with the first key of
                     TASKHOOK_ENCRYPTION_KEY (list the old ones after it); safe to re-run
  doctor             check the database, migrations, upstream key, clock skew and
                     callback policy from here; exit 1 if any check fails`;

/** `--role api|worker|all` on the command line wins over TASKHOOK_ROLE (one image, several process groups). */
function config(): Config {
  const i = process.argv.indexOf('--role');
  const env = i > 0 ? { ...process.env, TASKHOOK_ROLE: process.argv[i + 1] } : process.env;
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`taskhook: ${err.message}\n`);
      process.exit(1);
    }
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

async function serveCommand() {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  surviveDatabaseConnectionLoss(log);
  const gw = await startGateway(cfg, log);
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

async function migrateCommand(check: boolean) {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  const db = await openDatabase(cfg, (m) => log.info(m), { max: 1 });
  try {
    if (check) {
      const pending = await pendingMigrations(db.sql);
      process.stdout.write(pending ? `${pending} migration(s) pending\n` : 'migrations up to date\n');
      process.exitCode = pending ? 1 : 0;
      return;
    }
    await runMigrations(db.url);
    process.stdout.write('migrations applied\n');
  } finally {
    await db.close();
  }
}

async function rotateEncryptionKeyCommand() {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
  const db = await openDatabase(cfg, (m) => log.info(m), { max: 1 });
  try {
    const box = await loadSecretBox(cfg.encryptionKey, cfg.dataDir);
    const r = await rewrapAll(db.sql, box);
    process.stdout.write(`${r.rewrapped} upstream key(s) re-wrapped with key ${box.currentKeyId}, ${r.skipped} already current\n`);
    for (const f of r.failed) process.stderr.write(`taskhook: tenant ${f.tenant_id} left as is: ${f.error}\n`);
    process.exitCode = r.failed.length > 0 ? 1 : 0;
  } finally {
    await db.close();
  }
}

async function simCommand(args: string[]) {
  const i = args.indexOf('--port');
  const port = i >= 0 ? Number(args[i + 1]) : Number(process.env.SIM_PORT ?? 8090);
  const apiKeys = (process.env.SIM_API_KEYS ?? 'sk_test').split(',');
  const sim = await startSimUpstream({ port, host: process.env.SIM_HOST ?? '127.0.0.1', apiKeys });
  process.stdout.write(`simulated upstream on ${sim.url} (keys: ${apiKeys.join(', ')})\n`);
  onSignals(() => sim.close());
}

const [command = 'serve', ...rest] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  serve: serveCommand,
  migrate: () => migrateCommand(rest.includes('--check')),
  sim: () => simCommand(rest),
  'rotate-encryption-key': rotateEncryptionKeyCommand,
  doctor: async () => {
    const cfg = config();
    const log = createLogger(cfg.logLevel);
    const checks = await runDoctor(cfg, { log: (m) => log.info(m) });
    process.stdout.write(formatChecks(checks));
    process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
  },
};
const run = commands[command];
if (!run || rest.includes('--help') || command === '--help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(run || command === '--help' ? 0 : 2);
}
run().catch((err: unknown) => {
  process.stderr.write(`taskhook: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
