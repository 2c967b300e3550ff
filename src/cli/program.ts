// The `taskhook` command line (commander): server commands (serve, migrate, sim,
// rotate-encryption-key, doctor) that read the server environment, and client commands
// that talk HTTP to a running gateway with TASKHOOK_URL and TASKHOOK_API_KEY (or
// TASKHOOK_ADMIN_TOKEN) only. Every command has --help; every error is one line
// `taskhook: …` on stderr, exit 1, or 2 for a usage error.
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../version.js';
import { CliError, oneLine } from './errors.js';
import type { Target } from './http.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';

interface GatewayOpts {
  url: string;
  apiKey?: string;
  adminToken?: string;
  json?: boolean;
}

/** --url, --api-key (or --admin-token) and --json, each with its environment variable. */
function gatewayOptions(cmd: Command, auth: 'tenant' | 'admin', json = "print the gateway's JSON instead of text"): Command {
  cmd.addOption(new Option('--url <url>', 'the gateway').env('TASKHOOK_URL').default(DEFAULT_URL));
  if (auth === 'tenant') cmd.addOption(new Option('--api-key <key>', "the tenant's gateway key (thk_…)").env('TASKHOOK_API_KEY'));
  else cmd.addOption(new Option('--admin-token <token>', 'the admin token').env('TASKHOOK_ADMIN_TOKEN'));
  cmd.option('--json', json);
  return cmd;
}

const target = (o: GatewayOpts, kind: 'tenant' | 'admin'): Target => ({ url: o.url, token: kind === 'admin' ? o.adminToken : o.apiKey, kind });
const io = (o: GatewayOpts) => ({ out: process.stdout, json: o.json === true });

/** A finite command's exit code; long-running ones (serve, sim, listen) end by signal. */
let exitCode: number | undefined;
const done = (code: number) => {
  exitCode = code;
};
const client = () => import('./client.js');
const server = () => import('./server.js');

export function buildProgram(): Command {
  const program = new Command('taskhook')
    .description('taskhook turns polling into push: it polls async task APIs and delivers signed webhooks.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`taskhook: ${oneLine(s.replace(/^error: /, ''))}\n`),
    });

  // ---- running a gateway (server configuration from the environment, docs/configuration.md)
  program
    .command('serve')
    .description('run the gateway (the default command)')
    .addOption(new Option('--role <role>', 'api, worker (poller + deliverer) or all; overrides TASKHOOK_ROLE'))
    .action(async (o: { role?: string }) => (await server()).serve(o.role));

  program
    .command('migrate')
    .description('apply pending database migrations')
    .option('--check', 'only report: exit 1 if any migration is pending')
    .action(async (o: { check?: boolean }) => done(await (await server()).migrate(o.check === true)));

  program
    .command('sim')
    .description('run the simulated upstream (for tests and demos)')
    .addOption(new Option('--port <n>', 'port to listen on').env('SIM_PORT').default('8090'))
    .addOption(new Option('--host <host>', 'address to listen on').env('SIM_HOST').default('127.0.0.1'))
    .addOption(new Option('--keys <list>', 'comma list of accepted upstream keys').env('SIM_API_KEYS').default('sk_test'))
    .action(async (o: { port: string; host: string; keys: string }) => {
      if (!/^\d{1,5}$/.test(o.port) || Number(o.port) > 65535) throw new CliError(`--port must be a port number 0-65535 (got ${JSON.stringify(o.port)})`, 2);
      await (await server()).sim(Number(o.port), o.host, o.keys.split(',').map((k) => k.trim()).filter(Boolean));
    });

  program
    .command('rotate-encryption-key')
    .description("re-seal every tenant's upstream key with the first key of TASKHOOK_ENCRYPTION_KEY (list the old ones after it); safe to re-run")
    .action(async () => done(await (await server()).rotateEncryptionKey()));

  program
    .command('doctor')
    .description('check the database, migrations, upstream key, clock skew and callback policy from here; exit 1 if any check fails')
    .action(async () => done(await (await server()).doctor()));

  // ---- talking to a running gateway (TASKHOOK_URL, TASKHOOK_API_KEY)
  gatewayOptions(
    program
      .command('watch')
      .description('register a watch: a signed webhook goes to the callback URL when the task ends')
      .argument('<task_id>', "the upstream task's id")
      .requiredOption('--callback <url>', 'where the webhook goes')
      .option('--metadata <json>', 'a JSON object echoed in the webhook')
      .option('--events <list>', 'comma list of event types (default: task.completed,task.failed,task.cancelled,watch.failed; add task.processing)')
      .option('--wait', 'follow the watch with a live status line until it ends: exit 0 when delivered, 1 when undeliverable or cancelled')
      .option('--timeout <duration>', 'with --wait: give up (exit 1) after this long, e.g. 90s or 5m')
      .option('--interval <duration>', 'with --wait: how often to check', '500ms'),
    'tenant',
  ).action(async (taskId: string, o: GatewayOpts & Parameters<Awaited<ReturnType<typeof client>>['watch']>[3]) =>
    done(await (await client()).watch(target(o, 'tenant'), io(o), taskId, o)),
  );

  gatewayOptions(
    program
      .command('submit')
      .description("submit a task through taskhook: POSTs the body to the tenant's upstream at <path> with the tenant's upstream key and watches the task it creates")
      .argument('<path>', 'the upstream path, e.g. /api/v2/voice/clone')
      .requiredOption('--body <json|@file>', 'the JSON object to POST upstream, inline or @file.json (@- reads stdin)')
      .requiredOption('--callback <url>', 'where the webhook goes')
      .option('--metadata <json>', 'a JSON object echoed in the webhook')
      .option('--events <list>', 'comma list of event types (default: task.completed,task.failed,task.cancelled,watch.failed; add task.processing)')
      .option('--idempotency-key <key>', 'retry an earlier submit with its key: it is never submitted twice (default: a new key)')
      .option('--wait', 'follow the watch with a live status line until it ends: exit 0 when delivered, 1 when undeliverable or cancelled')
      .option('--timeout <duration>', 'with --wait: give up (exit 1) after this long, e.g. 90s or 5m')
      .option('--interval <duration>', 'with --wait: how often to check', '500ms'),
    'tenant',
  ).action(async (p: string, o: GatewayOpts & Parameters<Awaited<ReturnType<typeof client>>['submit']>[3]) =>
    done(await (await client()).submit(target(o, 'tenant'), io(o), p, o)),
  );

  gatewayOptions(
    program
      .command('list')
      .description('list watches, newest first')
      .option('--status <status>', 'only watches in this status: watching, delivering, delivered, undeliverable, cancelled')
      .option('--task-id <id>', 'only watches of this task')
      .option('--limit <n>', 'watches per page (1-100)', '20')
      .option('--cursor <id>', 'the page after this watch id (from the previous page)')
      .option('--all', 'follow the pages to the end'),
    'tenant',
  ).action(async (o: GatewayOpts & { status?: string; taskId?: string; limit?: string; cursor?: string; all?: boolean }) =>
    done(await (await client()).list(target(o, 'tenant'), io(o), o)),
  );

  gatewayOptions(
    program
      .command('get')
      .description('show a watch: status, last task snapshot, last webhook')
      .argument('<watch_id>', 'wat_…')
      .option('--deliveries', 'also list every delivery attempt'),
    'tenant',
  ).action(async (id: string, o: GatewayOpts & { deliveries?: boolean }) => done(await (await client()).get(target(o, 'tenant'), io(o), id, o)));

  gatewayOptions(program.command('cancel').description('stop watching: no webhook will be sent').argument('<watch_id>', 'wat_…'), 'tenant').action(
    async (id: string, o: GatewayOpts) => done(await (await client()).cancel(target(o, 'tenant'), io(o), id)),
  );

  gatewayOptions(
    program.command('redeliver').description("send a watch's terminal webhook again (same webhook-id)").argument('<watch_id>', 'wat_…'),
    'tenant',
  ).action(async (id: string, o: GatewayOpts) => done(await (await client()).redeliver(target(o, 'tenant'), io(o), id)));

  gatewayOptions(
    program.command('rotate-secret').description("rotate the tenant's signing secret (the old one keeps signing for 24 h)"),
    'tenant',
  ).action(async (o: GatewayOpts) => done(await (await client()).rotateSecret(target(o, 'tenant'), io(o))));

  gatewayOptions(
    program
      .command('listen')
      .description("stream the tenant's webhooks over Server-Sent Events and re-POST each, signed, to a local URL")
      .option('--forward-to <url>', 'POST each event here, e.g. http://localhost:3000/hook (without it: print the events)')
      .option('--since <id|time>', 'resume after this webhook id (msg_…) or ISO time; default: new events only'),
    'tenant',
    'one JSON object per line: each forward result (or, without --forward-to, each event)',
  ).action(async (o: GatewayOpts & { forwardTo?: string; since?: string }) => {
    const { listen } = await import('./listen.js');
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    done(
      await listen({
        target: target(o, 'tenant'),
        forwardTo: o.forwardTo,
        since: o.since,
        json: o.json === true,
        out: process.stdout,
        err: process.stderr,
        signal: ctl.signal,
      }),
    );
  });

  const tenant = program.command('tenant').description('manage tenants (admin: TASKHOOK_ADMIN_TOKEN)');
  gatewayOptions(
    tenant
      .command('create')
      .description('create a tenant; prints its gateway key and signing secret once')
      .argument('<name>', 'a name for it')
      .requiredOption('--upstream-key <key>', 'the upstream API key (sk_…) taskhook polls with for this tenant')
      .option('--upstream-url <url>', 'its upstream base URL (default: the gateway\'s UPSTREAM_BASE_URL)')
      .option('--api-rate <n>', 'API requests per second (or "unlimited"; default 50)')
      .option('--max-watches <n>', 'active watches (or "unlimited"; default 10000)')
      .option('--max-polls <n>', 'upstream polls per second (or "unlimited"; default 20)'),
    'admin',
  ).action(async (name: string, o: GatewayOpts & { upstreamKey: string; upstreamUrl?: string; apiRate?: string; maxWatches?: string; maxPolls?: string }) =>
    done(await (await client()).tenantCreate(target(o, 'admin'), io(o), name, o)),
  );
  gatewayOptions(tenant.command('list').description('list tenants'), 'admin').action(async (o: GatewayOpts) =>
    done(await (await client()).tenantList(target(o, 'admin'), io(o))),
  );
  gatewayOptions(tenant.command('disable').description('disable a tenant: its key stops working, its tasks stop being polled').argument('<tenant_id>', 'ten_…'), 'admin').action(
    async (id: string, o: GatewayOpts) => done(await (await client()).tenantDisable(target(o, 'admin'), io(o), id)),
  );

  program.addHelpText(
    'after',
    `
Client commands talk to a running gateway: --url or TASKHOOK_URL (default ${DEFAULT_URL}),
the tenant's key in --api-key or TASKHOOK_API_KEY (\`tenant …\`: --admin-token or TASKHOOK_ADMIN_TOKEN).
Server commands read the environment described in docs/configuration.md.
Reference (API, webhooks, configuration, guarantees): docs/ in the repository,
and GET /docs on a running gateway.

Examples:
  $ taskhook submit /api/v2/voice/clone --body @clone.json --callback https://example.com/hook --wait
  $ taskhook watch 7f3c… --callback https://example.com/hook --wait
  $ taskhook listen --forward-to http://localhost:3000/hook
  $ taskhook get wat_… --deliveries`,
  );
  return program;
}

/** Runs the command line; resolves with the exit code of a finite command, undefined for a long-running one. */
export async function runCli(argv: string[]): Promise<number | undefined> {
  // no command at all: serve, as `taskhook` always has
  const args = argv.length === 0 ? ['serve'] : argv;
  exitCode = undefined;
  try {
    await buildProgram().parseAsync(args, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and --version exit 0; every usage error (already printed as one line) 2
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`taskhook: ${oneLine(err)}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
