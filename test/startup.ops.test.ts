// Starting `taskhook serve` the way a new user does, and the ways it can go wrong: a
// failure to start is one clear line on stderr naming what to change, exit 1, never a
// stack trace; a port already in use fails before anything is created. A first boot
// without UPSTREAM_API_KEY warns, once, in one line.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from './support/db.js';
import { freePort, spawnCli, type CliRun } from './support/process.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET } from './support/env.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'taskhook-startup-'));
let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db?.drop();
  rmSync(tmp, { recursive: true, force: true });
});

const base = (extra: Record<string, string>) => ({
  LOG_LEVEL: 'warn',
  TASKHOOK_API_KEY: TEST_API_KEY,
  TASKHOOK_SIGNING_SECRET: TEST_SIGNING_SECRET,
  TASKHOOK_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
  ...extra,
});

async function serve(env: Record<string, string>, timeoutMs = 60_000): Promise<CliRun> {
  const c = spawnCli(['serve'], base(env));
  const timer = setTimeout(() => void c.stop('SIGKILL'), timeoutMs);
  const r = await c.exited;
  clearTimeout(timer);
  return r;
}

function expectOneLineFailure(r: CliRun, pattern: RegExp) {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(`${r.stdout}${r.stderr}`).not.toMatch(/\n\s+at /); // no stack trace anywhere
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^taskhook: /);
  expect(lines[0]).toMatch(pattern);
}

describe('start-up failures', () => {
  it('a port in use: one line naming PORT, and nothing created (it fails before the database starts)', async () => {
    const holder = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => holder.listen(port, '127.0.0.1', () => r()));
    try {
      const dataDir = path.join(tmp, 'never-created');
      const r = await serve({ PORT: String(port), HOST: '127.0.0.1', TASKHOOK_DATA_DIR: dataDir });
      expectOneLineFailure(r, new RegExp(`^taskhook: port ${port} is already in use on 127\\.0\\.0\\.1: .*set PORT`));
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      holder.close();
    }
  });

  it('a HOST that is not this machine', async () => {
    const r = await serve({ PORT: '0', HOST: '192.0.2.1', DATABASE_URL: db.url });
    expectOneLineFailure(r, /^taskhook: cannot listen on HOST 192\.0\.2\.1/);
  });

  it.each([
    ['nothing listens there', async () => `postgres://postgres@127.0.0.1:${await freePort()}/x`, /cannot reach the database at DATABASE_URL \(ECONNREFUSED\)/],
    ['no such database', async () => db.url.replace(/\/[^/]+$/, '/taskhook_no_such_db'), /has no such database \(3D000\)/],
  ])('a DATABASE_URL where %s', async (_, url, pattern) => {
    const r = await serve({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: await url() });
    expectOneLineFailure(r, pattern);
    expect(r.stderr).not.toContain('postgres://'); // the URL may carry a password
  });

  it('a data directory it cannot create', async () => {
    const r = await serve({ PORT: '0', HOST: '127.0.0.1', TASKHOOK_DATA_DIR: '/etc/hostname/taskhook' });
    expectOneLineFailure(r, /^taskhook: cannot write \/etc\/hostname\/taskhook \(ENOTDIR\): set TASKHOOK_DATA_DIR/);
  });
});

describe('UPSTREAM_API_KEY', () => {
  const until = async (c: ReturnType<typeof spawnCli>) => c.waitFor(({ stdout }) => /"msg":"taskhook started"/.test(stdout), 60_000);

  it('unset: the boot warns in one line; set (or stored from before): no warning', async () => {
    const env = { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: db.url, LOG_LEVEL: 'info' };
    const bare = spawnCli(['serve'], base(env));
    await until(bare);
    const warned = (await bare.stop('SIGTERM')).stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warned).toEqual([expect.stringMatching(/^taskhook: warning: UPSTREAM_API_KEY is not set: .*watch\.failed \(upstream_unauthorized\); set UPSTREAM_API_KEY=sk_…$/)]);

    const keyed = spawnCli(['serve'], base({ ...env, UPSTREAM_API_KEY: 'sk_live_0123' }));
    await until(keyed);
    expect((await keyed.stop('SIGTERM')).stderr).not.toContain('warning');
    // the key is stored now: a later boot without the variable still polls with it
    const later = spawnCli(['serve'], base(env));
    await until(later);
    expect((await later.stop('SIGTERM')).stderr).not.toContain('warning');
  });
});
