// The `taskhook` package (client/) as a user gets it: `npm pack ./client` (its prepack
// builds dist/), installed from the tarball into a throwaway project in a temp dir, then
// type-checked by `tsc --strict` with exactOptionalPropertyTypes under NodeNext and under
// Bundler resolution (skipLibCheck off, so the shipped .d.ts are checked too), and run
// as plain Node ESM against a live gateway: register a watch, receive and verify its
// webhook with taskhook/verify, read the watch back. Also: what the tarball holds, and
// that installing it pulls nothing else (its size is printed).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET } from './support/env.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'taskhook-client-pkg-'));
const project = path.join(tmp, 'app');
let tarball: string;
let s: Stack;

beforeAll(async () => {
  s = await startStack();
  const packed = JSON.parse(execFileSync(NPM, ['pack', './client', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = path.join(tmp, packed[0]!.filename);
  files = packed[0]!.files.map((f) => f.path).sort();
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'throwaway', private: true, type: 'module' }));
  execFileSync(NPM, ['install', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: project, stdio: 'pipe' });
}, 180_000);
afterAll(async () => {
  await s?.close();
  rmSync(tmp, { recursive: true, force: true });
});
let files: string[] = [];

/** A child process, awaited without blocking this one (the gateway under test runs in it). */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (status) => resolve({ status, out, err }));
  });
}

describe('npm pack ./client', () => {
  it('holds the compiled client and verifier with their declarations, the license, a readme and nothing else', () => {
    expect(files).toEqual([
      'LICENSE',
      'README.md',
      'dist/api-types.d.ts',
      'dist/api-types.js',
      'dist/client.d.ts',
      'dist/client.js',
      'dist/verify.d.ts',
      'dist/verify.js',
      'package.json',
    ]);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'client/package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.name).toBe('taskhook');
    expect(pkg.version).toBe((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    expect(pkg.license).toBe('MIT');
    expect(pkg).not.toHaveProperty('dependencies');
    expect(pkg).not.toHaveProperty('peerDependencies');
  });

  it('installs alone: node_modules holds taskhook and nothing else', () => {
    expect(readdirSync(path.join(project, 'node_modules')).filter((n) => !n.startsWith('.'))).toEqual(['taskhook']);
    const du = execFileSync('du', ['-sk', path.join(project, 'node_modules')], { encoding: 'utf8' });
    const kib = Number(du.split('\t')[0]);
    process.stdout.write(`client install size: ${kib} KiB (du -sk node_modules of a project with only the taskhook tarball)\n`);
    expect(kib).toBeLessThan(1024);
  });

  it('refuses to pack the repository root, which is the (private) gateway', () => {
    const r = spawnSync(NPM, ['pack', '--dry-run'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('npm pack ./client');
  });
});

const TYPED = `import { createClient, TaskhookError, type RegisterWatch, type Watch, type WatchPage } from 'taskhook/client';
import { verifyWebhook, WebhookVerificationError, type WebhookEvent } from 'taskhook/verify';

const client = createClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: 'thk_x', timeoutMs: undefined });
// exactOptionalPropertyTypes: an optional request field may be given as undefined
const input: RegisterWatch = { task_id: 't', callback_url: 'https://example.com/h', metadata: undefined, events: ['task.completed'] };
export async function run(): Promise<string> {
  const { watch, created }: { watch: Watch; created: boolean } = await client.watches.create(input);
  const outcome: 'task.completed' | 'task.failed' | 'task.cancelled' | 'watch.failed' | null = watch.outcome;
  const failing: { at: string; message: string } | null = watch.last_poll_error;
  // Each @ts-expect-error fails the check when there is no error, so these prove the types
  // are precise (not any): a status the API never answers, a request without callback_url.
  // @ts-expect-error
  if (watch.status === 'finished') return 'never';
  // @ts-expect-error
  await client.watches.create({ task_id: 't' });
  const page: WatchPage = await client.watches.list({ status: 'delivered', limit: 5, cursor: undefined });
  for await (const w of client.watches.iterate({ status: 'undeliverable' })) await client.watches.redeliver(w.id);
  try {
    await client.watches.get('wat_x');
  } catch (err) {
    if (err instanceof TaskhookError) return err.problem.detail + err.code + String(err.retryAfterSec);
  }
  return [watch.id, created, outcome, failing?.message, page.next_cursor ?? ''].join();
}
export function onWebhook(body: string, headers: Record<string, string>): string {
  try {
    const event: WebhookEvent = verifyWebhook(body, headers, ['whsec_a', 'whsec_b'], { toleranceSec: 60 });
    if (event.type === 'task.completed') {
      const status: 'completed' = event.data.status;
      return status + String(event.data['audioUrl']);
    }
    if (event.type === 'watch.failed') return event.data.error.code;
    return event.type;
  } catch (err) {
    return err instanceof WebhookVerificationError ? err.reason : 'other';
  }
}
`;

const RUNTIME = `import http from 'node:http';
import { createClient } from 'taskhook/client';
import { verifyWebhook } from 'taskhook/verify';

const { GATEWAY, API_KEY, SECRET, TASK_ID } = process.env;
const hooks = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c)).on('end', () => {
    hooks.push(verifyWebhook(Buffer.concat(chunks), req.headers, SECRET)); // throws (500) on a bad signature
    res.writeHead(204).end();
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const taskhook = createClient({ baseUrl: GATEWAY, apiKey: API_KEY });
const { watch, created } = await taskhook.watches.create({ task_id: TASK_ID, callback_url: 'http://127.0.0.1:' + server.address().port + '/hook' });
let w = watch;
for (const until = Date.now() + 20000; w.status !== 'delivered' && Date.now() < until; ) {
  await new Promise((r) => setTimeout(r, 50));
  w = await taskhook.watches.get(watch.id);
}
server.close();
console.log(JSON.stringify({ created, status: w.status, outcome: w.outcome, hooks: hooks.map((h) => h.type + ':' + h.data.status) }));
`;

describe('a fresh project using the installed package', () => {
  const typeRoots = path.join(ROOT, 'node_modules/@types');
  const tsconfig = (compilerOptions: Record<string, unknown>) =>
    JSON.stringify({
      compilerOptions: {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        noEmit: true,
        target: 'ES2022',
        types: ['node'],
        typeRoots: [typeRoots],
        ...compilerOptions,
      },
      files: ['typed.ts'],
    });

  it('tsc --strict accepts it under NodeNext and Bundler resolution (exactOptionalPropertyTypes; its .d.ts checked too)', async () => {
    writeFileSync(path.join(project, 'typed.ts'), TYPED);
    const modes = {
      NodeNext: { module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'] },
      Bundler: { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'] },
    };
    const results = await Promise.all(
      Object.entries(modes).map(async ([name, options]) => {
        writeFileSync(path.join(project, `tsconfig.${name}.json`), tsconfig(options));
        return { name, ...(await run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], { cwd: project })) };
      }),
    );
    for (const r of results) expect({ mode: r.name, status: r.status, output: r.out + r.err }).toEqual({ mode: r.name, status: 0, output: '' });
  }, 180_000);

  it('plain Node ESM registers a watch against a live gateway, verifies its webhook and reads it back', async () => {
    writeFileSync(path.join(project, 'run.mjs'), RUNTIME);
    const task = s.upstream.createTask({ capability: 'voice', durationMs: 200 });
    const r = await run(process.execPath, ['run.mjs'], {
      cwd: project,
      env: { PATH: process.env.PATH ?? '', GATEWAY: s.gateway.url!, API_KEY: TEST_API_KEY, SECRET: TEST_SIGNING_SECRET, TASK_ID: task.task_id },
    });
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ created: true, status: 'delivered', outcome: 'task.completed', hooks: ['task.completed:completed'] });
  });
});
