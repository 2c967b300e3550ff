// `taskhook doctor` and `taskhook migrate --check` as an operator runs them: child
// processes against a real database and the simulated upstream, judged by their
// table and exit code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { createTestDb, type TestDb } from './support/db.js';
import { testEnv } from './support/env.js';
import { freePort, spawnCli, type CliRun } from './support/process.js';

/** `taskhook <args>` to its end; SIGKILLed (and the test failed) past `timeoutMs`. */
async function taskhook(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliRun> {
  const c = spawnCli(args, env);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void c.stop('SIGKILL');
      reject(new Error(`taskhook ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${c.stdout()}${c.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([c.exited, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** The line of one check in the doctor's table. */
const line = (stdout: string, name: string) => stdout.split('\n').find((l) => new RegExp(`^  [✓✗–] ${name}\\b`).test(l)) ?? `(no ${name} line in:\n${stdout})`;

let db: TestDb;
let upstream: SimUpstream;
const drops: Array<() => Promise<void>> = [];
beforeAll(async () => {
  db = await createTestDb();
  upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
});
afterAll(async () => {
  for (const drop of drops) await drop();
  await upstream?.close();
  await db?.drop();
});

describe('taskhook doctor', () => {
  it('all ✓ and exit 0 against a migrated database and an upstream that accepts the key', async () => {
    const before = upstream.requests();
    const r = await taskhook(['doctor'], testEnv(db.url, upstream.url, { TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.1/32,hooks.internal' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain('✗');
    expect(line(r.stdout, 'database')).toMatch(/✓ database\s+PostgreSQL \d+/);
    expect(line(r.stdout, 'migrations')).toMatch(/✓ migrations\s+all applied/);
    expect(line(r.stdout, 'upstream')).toMatch(/✓ upstream\s+.*key accepted/);
    expect(line(r.stdout, 'clock skew')).toMatch(/✓ clock skew\s+[+-]\d+ ms/);
    expect(line(r.stdout, 'callbacks')).toMatch(/✓ callbacks\s+public addresses, plus private: 127\.0\.0\.1\/32, hooks\.internal/);
    expect(r.stdout).toMatch(/all checks passed/);
    // exactly one upstream request, for a task id that cannot exist
    expect(upstream.requests()).toBe(before + 1);
    // the connection string's password never reaches the output
    const password = new URL(db.url).password;
    if (password) expect(r.stdout + r.stderr).not.toContain(password);
  });

  it('✗ "upstream rejected the key" and exit 1 with a wrong UPSTREAM_API_KEY', async () => {
    const r = await taskhook(['doctor'], testEnv(db.url, upstream.url, { UPSTREAM_API_KEY: 'sk_wrong' }));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(line(r.stdout, 'upstream')).toMatch(/✗ upstream\s+upstream rejected the key/);
    expect(line(r.stdout, 'database')).toMatch(/✓ database/);
    expect(r.stdout).toMatch(/1 check\(s\) failed/);
    expect(r.stdout + r.stderr).not.toContain('sk_wrong');
  });

  it('✗ migrations pending and exit 1 on a database without migrations', async () => {
    const empty = await createTestDb({ empty: true });
    drops.push(empty.drop);
    const r = await taskhook(['doctor'], testEnv(empty.url, upstream.url));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(line(r.stdout, 'migrations')).toMatch(/✗ migrations\s+\d+ migration\(s\) pending: run `taskhook migrate`/);
    expect(line(r.stdout, 'database')).toMatch(/✓ database/);
    expect(line(r.stdout, 'upstream')).toMatch(/✓ upstream/);
  });

  it('✗ database and exit 1 when the database is unreachable, without hanging', async () => {
    const r = await taskhook(['doctor'], testEnv(`postgres://postgres@127.0.0.1:${await freePort()}/none`, upstream.url));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(line(r.stdout, 'database')).toMatch(/✗ database\s+unreachable/);
    expect(line(r.stdout, 'migrations')).toMatch(/– migrations\s+not checked/);
  });
});

describe('taskhook migrate --check', () => {
  it('exits 1 on an empty database, and 0 once `taskhook migrate` has run', async () => {
    const empty = await createTestDb({ empty: true });
    drops.push(empty.drop);
    const env = testEnv(empty.url, upstream.url);

    const pending = await taskhook(['migrate', '--check'], env);
    expect(pending.code, pending.stdout + pending.stderr).toBe(1);
    expect(pending.stdout).toMatch(/\d+ migration\(s\) pending/);

    const migrate = await taskhook(['migrate'], env);
    expect(migrate.code, migrate.stdout + migrate.stderr).toBe(0);
    expect(migrate.stdout).toMatch(/migrations applied/);

    const clean = await taskhook(['migrate', '--check'], env);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/migrations up to date/);

    const doctor = await taskhook(['doctor'], env);
    expect(line(doctor.stdout, 'migrations')).toMatch(/✓ migrations/);
  }, 180_000); // four child processes, each starting tsx
});
