// The `taskhook` CLI as a user runs it: `node bin/taskhook.js …` child processes
// against a running gateway (in this process), judged by their output and exit code;
// `listen` forwarding a real event to a verifying receiver; and `npm run demo`.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/program.js';
import { startStack, type Stack } from './support/gateway.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET } from './support/env.js';
import { freePort, spawnCli, type CliChild as Child, type CliRun as Run } from './support/process.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = 'admin_token_0123456789abcdef';

let s: Stack;
let env: Record<string, string>;

/** Runs `taskhook …` to its end (as the default tenant unless env says otherwise). */
async function taskhook(args: string[], extra: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  const c = spawnCli(args, { ...env, ...extra });
  const timer = setTimeout(() => void c.stop('SIGKILL'), timeoutMs);
  const r = await c.exited;
  clearTimeout(timer);
  return r;
}

/** The one-line error convention: nothing on stdout, exactly one `taskhook: …` line on stderr. */
function expectOneLineError(r: Run, code: number, pattern: RegExp) {
  expect(r.code, r.stdout + r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^taskhook: /);
  expect(lines[0]).toMatch(pattern);
}

let demo: Child;
beforeAll(async () => {
  demo = spawnCli([], { LOG_LEVEL: 'silent' }, ['--import', 'tsx', path.join(ROOT, 'src/demo.ts')]);
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN });
  env = { TASKHOOK_URL: s.gateway.url!, TASKHOOK_API_KEY: TEST_API_KEY };
});
afterAll(async () => {
  await demo?.stop('SIGINT');
  await s?.close();
});

describe('--help', () => {
  it('every command and subcommand has help naming its usage and options', () => {
    const all: Command[] = [];
    const walk = (c: Command) => c.commands.forEach((sub) => (all.push(sub), walk(sub)));
    walk(buildProgram());
    const names = all.map((c) => c.name());
    for (const n of ['serve', 'migrate', 'sim', 'rotate-encryption-key', 'doctor', 'submit', 'watch', 'list', 'get', 'cancel', 'redeliver', 'tenant', 'create', 'rotate-secret', 'listen']) {
      expect(names).toContain(n);
    }
    for (const c of all) {
      const help = c.helpInformation();
      expect(help, c.name()).toMatch(new RegExp(`^Usage: taskhook (tenant )?${c.name()}`));
      expect(help).toContain('-h, --help');
      expect(c.description().length, c.name()).toBeGreaterThan(10);
    }
  });

  it('`taskhook --help` and `taskhook listen --help` print to stdout and exit 0', async () => {
    const [top, listen] = await Promise.all([taskhook(['--help']), taskhook(['listen', '--help'])]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^ {2}watch \[options\] <task_id>/m);
    expect(top.stdout).toMatch(/^ {2}listen \[options\]/m);
    expect(listen.code).toBe(0);
    expect(listen.stdout).toMatch(/--forward-to <url>/);
    expect(listen.stdout).toMatch(/env: TASKHOOK_API_KEY/);
  });
});

describe('client commands against a running gateway', () => {
  let delivered: string; // a watch id that reached `delivered`

  it('watch --wait registers, follows the watch line by line and exits 0 once delivered', async () => {
    const task = s.upstream.createTask({ capability: 'image', durationMs: 600, processingAfterMs: 100 });
    const r = await taskhook(['watch', task.task_id, '--callback', `${s.receiver.url}/hook`, '--metadata', '{"order":42}', '--wait', '--interval', '100ms', '--timeout', '20s']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^registered (wat_\\w+): task ${task.task_id} → ${s.receiver.url}/hook$`));
    // not a TTY: one plain line per change, no carriage returns; the last one says delivered
    expect(r.stdout).not.toContain('\r');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.at(-1)).toMatch(/^✓ wat_\w+ · delivered · task completed · \d+ polls? · webhook msg_\w+ delivered \(1 attempt, HTTP 204\)$/);
    delivered = /(wat_\w+)/.exec(lines[0]!)![1]!;
    const hook = s.receiver.received.find((h) => h.json?.watch_id === delivered);
    expect(hook?.verified).toBe(true);
    expect(hook?.json.metadata).toEqual({ order: 42 });
  });

  it('watch --wait exits 1 with one line when the watch ends undeliverable', async () => {
    const gone = await startReceiver([TEST_SIGNING_SECRET]);
    gone.fallback = { status: 410 };
    try {
      const task = s.upstream.createTask({ durationMs: 100 });
      const r = await taskhook(['watch', task.task_id, '--callback', `${gone.url}/hook`, '--wait', '--interval', '100ms', '--timeout', '20s']);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^✗ wat_\w+ · undeliverable/);
      expect(r.stderr).toMatch(/^taskhook: watch wat_\w+ ended undeliverable; the receiver last answered HTTP 410\n$/);
    } finally {
      await gone.close();
    }
  });

  it('a watch that ended in task.failed is never a plain ✓ delivered; failing polls show while they fail', async () => {
    const failing = s.upstream.createTask({ outcome: 'failed', durationMs: 200 });
    const wait = await taskhook(['watch', failing.task_id, '--callback', `${s.receiver.url}/hook`, '--wait', '--interval', '100ms', '--timeout', '20s']);
    expect(wait.code, wait.stdout + wait.stderr).toBe(0); // the webhook was delivered
    const last = wait.stdout.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^! wat_\w+ · delivered \(task\.failed\) · task failed · /);
    const failedId = /(wat_\w+)/.exec(last)![1]!;

    const down = s.upstream.createTask({ durationMs: 600_000 });
    s.upstream.store.setOverride(down.task_id, { status: 502 });
    const reg = await s.api('/v1/watches', { body: { task_id: down.task_id, callback_url: `${s.receiver.url}/hook` } });
    for (const deadline = Date.now() + 15_000; !(await s.api(`/v1/watches/${reg.json.id}`)).json.last_poll_error; ) {
      if (Date.now() > deadline) throw new Error('no poll error shown');
      await new Promise((r) => setTimeout(r, 50));
    }
    const [list, get, getDown] = await Promise.all([taskhook(['list', '--limit', '100']), taskhook(['get', failedId]), taskhook(['get', reg.json.id])]);
    expect(list.stdout).toMatch(new RegExp(`^${failedId}\\s+delivered\\s+task\\.failed\\s`, 'm'));
    expect(list.stdout).toMatch(new RegExp(`^${reg.json.id}\\s+watching \\(polls failing\\)\\s+-\\s`, 'm'));
    expect(get.stdout).toMatch(/^ {2}outcome\s+task\.failed$/m);
    expect(getDown.stdout).toMatch(/^ {2}outcome\s+not decided yet$/m);
    expect(getDown.stdout).toMatch(/^ {2}polls failing\s+upstream answered HTTP 502 \(since \d{4}-/m);
    s.upstream.store.setOverride(down.task_id, undefined);
    await s.api(`/v1/watches/${reg.json.id}`, { method: 'DELETE' });
  });

  it('list, get --deliveries and redeliver show and act on that watch; --json prints the API objects', async () => {
    const [list, listJson, get] = await Promise.all([
      taskhook(['list', '--status', 'delivered']),
      taskhook(['list', '--json', '--limit', '1']),
      taskhook(['get', delivered, '--deliveries']),
    ]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+OUTCOME\s+TASK\s+CALLBACK\s+UPDATED$/);
    expect(list.stdout).toMatch(new RegExp(`^${delivered}\\s+delivered\\s+task\\.completed\\s`, 'm'));

    expect(listJson.code, listJson.stderr).toBe(0);
    const page = JSON.parse(listJson.stdout);
    expect(page.data).toHaveLength(1);
    expect(page).toHaveProperty('next_cursor');

    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toMatch(new RegExp(`^${delivered}\\n  status\\s+delivered\\n  outcome\\s+task\\.completed$`, 'm'));
    expect(get.stdout).toMatch(/^ {2}result\s+imageUrl=https:\/\//m);
    expect(get.stdout).toMatch(/^ {2}metadata\s+\{"order":42\}$/m);
    expect(get.stdout).toMatch(/^ATTEMPTED\s+WEBHOOK\s+EVENT\s+HTTP\s+MS\s+ERROR$/m);
    expect(get.stdout).toMatch(/\smsg_\w+\s+task\.completed\s+204\s+\d+/);

    const webhookId = s.receiver.received.find((h) => h.json?.watch_id === delivered)!.headers['webhook-id'];
    const before = s.receiver.received.length;
    const again = await taskhook(['redeliver', delivered]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`queued webhook ${webhookId} (same webhook-id) for redelivery`);
    const hooks = await s.receiver.waitFor((all) => all.slice(before).some((h) => h.json?.watch_id === delivered));
    expect(hooks.slice(before).find((h) => h.json?.watch_id === delivered)!.headers['webhook-id']).toBe(webhookId);
  });

  it('watch (no --wait) and cancel', async () => {
    const task = s.upstream.createTask({ durationMs: 60_000 });
    const reg = await taskhook(['watch', task.task_id, '--callback', `${s.receiver.url}/hook`, '--json']);
    expect(reg.code, reg.stderr).toBe(0);
    const w = JSON.parse(reg.stdout);
    expect(w).toMatchObject({ task_id: task.task_id, status: 'watching' });
    const [cancel, ended] = await Promise.all([taskhook(['cancel', w.id]), taskhook(['cancel', delivered])]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toBe(`cancelled ${w.id} (task ${task.task_id})\n`);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toBe(`${delivered} had already ended delivered; nothing to cancel\n`);
    expect((await s.api(`/v1/watches/${w.id}`)).json.status).toBe('cancelled');
  });

  it('tenant create | list with the admin token; rotate-secret with the new tenant\'s key', async () => {
    const admin = { TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN };
    const created = await taskhook(['tenant', 'create', 'acme', '--upstream-key', 'sk_test', '--max-watches', '100', '--json'], admin);
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout);
    expect(t).toMatchObject({ name: 'acme', tenant_id: expect.stringMatching(/^ten_/), api_key: expect.stringMatching(/^thk_/), signing_secret: expect.stringMatching(/^whsec_/) });

    const [human, list, rotate, noToken] = await Promise.all([
      taskhook(['tenant', 'create', 'globex', '--upstream-key', 'sk_test'], admin),
      taskhook(['tenant', 'list'], admin),
      taskhook(['rotate-secret'], { TASKHOOK_API_KEY: t.api_key }),
      taskhook(['tenant', 'list']),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^created tenant ten_\w+ \(globex\); its credentials are shown once, store them now:\n {2}TASKHOOK_API_KEY=thk_\S+\n {2}TASKHOOK_SIGNING_SECRET=whsec_\S+\n$/);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${t.tenant_id}\\s+acme\\s+http`, 'm'));
    expect(list.stdout).toMatch(/^ten_default\s+default\s/m);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(rotate.stdout).toMatch(/^new signing secret \(shown once, store it now\):\n {2}TASKHOOK_SIGNING_SECRET=whsec_\S+\nwebhooks carry signatures by both/);
    expect(rotate.stdout).not.toContain(t.signing_secret);
    expectOneLineError(noToken, 2, /no admin token: set TASKHOOK_ADMIN_TOKEN or pass --admin-token/);
  });

  it('errors: one line on stderr, exit 1 (2 for usage errors), without any server configuration', async () => {
    const closedPort = await freePort();
    const [badKey, unknown, notFound, noCallback, badMetadata, unreachable, unknownCommand, noKey] = await Promise.all([
      taskhook(['list'], { TASKHOOK_API_KEY: 'thk_wrong_key_0123456789' }),
      taskhook(['get', 'wat_00000000000000000000000000']),
      taskhook(['redeliver', 'nope']),
      taskhook(['watch', 'task-1']),
      taskhook(['watch', 'task-1', '--callback', 'http://127.0.0.1:1/x', '--metadata', '[1]']),
      taskhook(['list', '--url', `http://127.0.0.1:${closedPort}`]),
      taskhook(['frobnicate']),
      taskhook(['list'], { TASKHOOK_API_KEY: '' }),
    ]);
    expectOneLineError(badKey, 1, /^taskhook: a valid gateway key is required: Authorization: Bearer <key> \(HTTP 401\)$/);
    expectOneLineError(unknown, 1, /no watch wat_0+ \(HTTP 404\)$/);
    expectOneLineError(notFound, 1, /no watch nope \(HTTP 404\)$/);
    expectOneLineError(noCallback, 2, /required option '--callback <url>' not specified/);
    expectOneLineError(badMetadata, 2, /--metadata must be a JSON object/);
    expectOneLineError(unreachable, 1, new RegExp(`^taskhook: cannot reach the gateway at http://127\\.0\\.0\\.1:${closedPort}: ECONNREFUSED$`));
    expectOneLineError(unknownCommand, 2, /^taskhook: unknown command 'frobnicate'$/);
    expectOneLineError(noKey, 2, /no gateway key: set TASKHOOK_API_KEY or pass --api-key/);
  });
});

describe('listen --forward-to', () => {
  let local: Receiver;
  beforeAll(async () => {
    local = await startReceiver([TEST_SIGNING_SECRET]);
  });
  afterAll(async () => {
    await local?.close();
  });

  it('re-POSTs a real event, byte for byte and verifiably signed, to a local URL; keeps going when that URL fails', async () => {
    const listen = spawnCli(['listen', '--forward-to', `${local.url}/fwd`], env);
    try {
      await listen.waitFor(({ stderr }) => /listening for events on /.test(stderr));
      expect(listen.stderr()).toBe(`taskhook: listening for events on ${s.gateway.url}, forwarding to ${local.url}/fwd (Ctrl-C to stop)\n`);

      local.replies.push({ status: 500 }); // the first forward fails locally: printed, not fatal
      const tasks = [s.upstream.createTask({ durationMs: 100, outcome: 'failed' }), s.upstream.createTask({ durationMs: 1_000, capability: 'video' })];
      const ids: string[] = [];
      for (const task of tasks) {
        const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook` } });
        expect(res.status, res.text).toBe(201);
        ids.push(res.json.id);
      }
      const forwarded = await local.waitFor((all) => ids.every((id) => all.some((r) => r.json?.watch_id === id)), 20_000);
      for (const id of ids) {
        const fwd = forwarded.find((r) => r.json?.watch_id === id)!;
        expect(fwd.path).toBe('/fwd');
        expect(fwd.verified, fwd.verifyError).toBe(true);
        expect(fwd.headers['user-agent']).toMatch(/^taskhook-cli\//);
        // the same bytes and webhook-id as the gateway's own delivery to the callback
        const direct = (await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === id))).find((r) => r.json?.watch_id === id)!;
        expect(fwd.body).toBe(direct.body);
        expect(fwd.headers['webhook-id']).toBe(direct.headers['webhook-id']);
      }
      await listen.waitFor(({ stdout }) => stdout.split('\n').filter(Boolean).length >= 2);
      const lines = listen.stdout().trim().split('\n');
      expect(lines[0]).toMatch(/^✗ 500 task\.failed msg_\w+ \(\d+ ms\)$/);
      expect(lines[1]).toMatch(/^→ 204 task\.completed msg_\w+ \(\d+ ms\)$/);
    } finally {
      const r = await listen.stop('SIGINT');
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('a bad key ends listen with one line and exit 1; a bad --forward-to is a usage error', async () => {
    const [bad, usage] = await Promise.all([
      taskhook(['listen', '--forward-to', `${local.url}/fwd`], { TASKHOOK_API_KEY: 'thk_wrong_key_0123456789' }),
      taskhook(['listen', '--forward-to', 'localhost:3000']),
    ]);
    expectOneLineError(bad, 1, /a valid gateway key is required.*\(HTTP 401\)$/);
    expectOneLineError(usage, 2, /--forward-to must be an http\(s\) URL/);
  });
});

describe('npm run demo', () => {
  // started with the file (it runs by itself meanwhile: its own Postgres, upstream, receiver), judged last
  it('starts everything, prints each of 6 verified webhooks and exits 0, leaving nothing behind', async () => {
    const timer = setTimeout(() => void demo.stop('SIGKILL'), 40_000);
    const r = await demo.exited;
    clearTimeout(timer);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hooks = r.stdout.split('\n').filter((l) => /^ {2}✓ task\./.test(l));
    expect(hooks).toHaveLength(6);
    for (const capability of ['voice', 'image', 'video']) expect(hooks.filter((l) => l.includes(` ${capability} `))).toHaveLength(2);
    expect(r.stdout).toMatch(/all 6 webhooks arrived, every signature verified/);
    const dir = /embedded Postgres in (\S+)/.exec(r.stdout)![1]!;
    expect(existsSync(dir)).toBe(false);
  }, 45_000);

  it('--keep stays up and prints what to try it with: the URL and key, the signing secret, the dashboard; Ctrl-C cleans up', async () => {
    const kept = spawnCli(['--keep'], { LOG_LEVEL: 'silent' }, ['--import', 'tsx', path.join(ROOT, 'src/demo.ts')]);
    try {
      await kept.waitFor(({ stdout }) => stdout.includes('Ctrl-C to stop.'), 60_000);
      const out = kept.stdout();
      const [, url, key] = /export TASKHOOK_URL=(\S+) TASKHOOK_API_KEY=(thk_\S+)/.exec(out)!;
      expect(out).toMatch(/export TASKHOOK_SIGNING_SECRET=whsec_[A-Za-z0-9+/]+=*\s/);
      expect(out).toContain(`dashboard  ${url}/dashboard`);
      expect(out).toContain(`API docs   ${url}/docs`);
      const page = await fetch(`${url}/dashboard`, { redirect: 'manual' });
      expect(page.headers.get('location')).toBe('/dashboard/sign-in');
      const list = await fetch(`${url}/v1/watches`, { headers: { authorization: `Bearer ${key}` } });
      expect(list.status).toBe(200);
      expect(((await list.json()) as { data: unknown[] }).data).toHaveLength(6);
    } finally {
      const r = await kept.stop('SIGINT');
      expect(r.code).toBe(130);
      const dir = /embedded Postgres in (\S+)/.exec(r.stdout)![1]!;
      expect(existsSync(dir)).toBe(false);
    }
  }, 90_000);
});
