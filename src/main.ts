// The taskhook command: `serve` (default), `migrate`, `sim`. Parses the config once,
// starts what was asked, and stops cleanly on SIGTERM/SIGINT.
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { startGateway } from './gateway.js';
import { openDatabase } from './db/client.js';
import { pendingMigrations, runMigrations } from './db/migrate.js';
import { startSimUpstream } from './sim/server.js';

const USAGE = `usage: taskhook <command>
  serve [--role R]   run the gateway: R = api, worker or all (default TASKHOOK_ROLE, all)
  migrate [--check]  apply pending migrations (--check: exit 1 if any are pending)
  sim [--port N]     run the simulated upstream (API keys: SIM_API_KEYS, default sk_test)`;

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

async function serveCommand() {
  const cfg = config();
  const log = createLogger(cfg.logLevel);
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
