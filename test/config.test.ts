import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration } from '../src/config.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEY32 = Buffer.alloc(32, 7).toString('base64');
const SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig defaults (CONTRACT §2)', () => {
  const cfg = loadConfig({});
  it.each([
    ['port', 8080],
    ['host', '0.0.0.0'],
    ['role', 'all'],
    ['upstreamBaseUrl', 'https://api.aiclonevoicefree.com'],
    ['notFoundGraceMs', 60_000],
    ['maxWatchAgeMs', 86_400_000],
    ['retryScheduleMs', [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000]],
    ['deliveryTimeoutMs', 15_000],
    ['dataDir', path.resolve('./.taskhook')],
    ['databaseUrl', undefined],
    ['upstreamApiKey', undefined],
    ['apiKey', undefined],
    ['signingSecret', undefined],
    ['adminToken', undefined],
    ['encryptionKey', undefined],
    ['allowPrivateCallbacks', { all: false, cidrs: [], hostnames: [] }],
  ] as const)('%s defaults to %j', (field, expected) => {
    expect(cfg[field]).toEqual(expected);
  });

  it('the data dir is absolute', () => {
    expect(path.isAbsolute(cfg.dataDir)).toBe(true);
  });

  it.each([
    { name: 'empty strings', env: { PORT: '', TASKHOOK_ROLE: '', UPSTREAM_BASE_URL: '', TASKHOOK_RETRY_SCHEDULE: '' } },
    { name: 'whitespace-only values', env: { PORT: ' ', HOST: '  ', TASKHOOK_DELIVERY_TIMEOUT_S: '\t' } },
    { name: 'undefined values', env: { PORT: undefined, DATABASE_URL: undefined } },
  ])('$name count as unset', ({ env }) => {
    expect(loadConfig(env)).toEqual(cfg);
  });

  it('ignores unrelated variables', () => {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', FOO: 'bar' })).toEqual(cfg);
  });
});

describe('loadConfig bad values', () => {
  const bad: Array<[string, string]> = [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['TASKHOOK_ROLE', 'boss'],
    ['TASKHOOK_ROLE', 'ALL'],
    ['UPSTREAM_BASE_URL', 'ftp://x'],
    ['UPSTREAM_BASE_URL', 'not a url'],
    ['UPSTREAM_BASE_URL', 'api.aiclonevoicefree.com'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'mysql://user:hunter2hunter2@db/x'],
    ['TASKHOOK_SIGNING_SECRET', 'nope'],
    ['TASKHOOK_SIGNING_SECRET', 'whsec_'],
    ['TASKHOOK_SIGNING_SECRET', 'whsec_c2hvcnQ='],
    ['TASKHOOK_SIGNING_SECRET', 'whsec_not base64!'],
    ['TASKHOOK_SIGNING_SECRET', Buffer.alloc(32).toString('base64')],
    ['TASKHOOK_ENCRYPTION_KEY', 'short'],
    ['TASKHOOK_ENCRYPTION_KEY', Buffer.alloc(31).toString('base64')],
    ['TASKHOOK_ENCRYPTION_KEY', Buffer.alloc(33).toString('base64')],
    ['TASKHOOK_ALLOW_PRIVATE_CALLBACKS', '10/8'],
    ['TASKHOOK_ALLOW_PRIVATE_CALLBACKS', 'yes'],
    ['TASKHOOK_ALLOW_PRIVATE_CALLBACKS', '127.0.0.0/8,yes'],
    ['TASKHOOK_ALLOW_PRIVATE_CALLBACKS', '10.0.0.0/33'],
    ['TASKHOOK_RETRY_SCHEDULE', '5s,,x'],
    ['TASKHOOK_RETRY_SCHEDULE', '5'],
    ['TASKHOOK_RETRY_SCHEDULE', '-1s'],
    ['TASKHOOK_RETRY_SCHEDULE', '0s'],
    ['TASKHOOK_RETRY_SCHEDULE', '5s,30x'],
    ['TASKHOOK_RETRY_SCHEDULE', ','],
    ['TASKHOOK_DELIVERY_TIMEOUT_S', '0'],
    ['TASKHOOK_DELIVERY_TIMEOUT_S', 'x'],
    ['TASKHOOK_DELIVERY_TIMEOUT_S', '301'],
    ['TASKHOOK_MAX_WATCH_AGE_S', '-5'],
    ['TASKHOOK_MAX_WATCH_AGE_S', '0'],
    ['TASKHOOK_MAX_WATCH_AGE_S', '1.5'],
    ['TASKHOOK_NOT_FOUND_GRACE_S', 'x'],
    ['TASKHOOK_NOT_FOUND_GRACE_S', '-1'],
    ['TASKHOOK_API_KEY', 'short'],
    ['TASKHOOK_API_KEY', 'fifteen-chars!!'],
    ['TASKHOOK_API_KEY', 'has a space in the key'],
    ['TASKHOOK_ADMIN_TOKEN', 'tooshort'],
    ['TASKHOOK_ADMIN_TOKEN', 'admin_token_0123456789abcdef'], // 28: fine before issue 12, not now
    ['TASKHOOK_POLL_SCALE', '0'],
    ['TASKHOOK_HEAP_GROWING_PERCENT', '-1'],
    ['TASKHOOK_HEAP_GROWING_PERCENT', '301'],
    ['TASKHOOK_HEAP_GROWING_PERCENT', '12.5'],
    ['TASKHOOK_HEAP_GROWING_PERCENT', 'lots'],
    ['PORT', '65536'],
    ['LOG_LEVEL', 'loud'],
  ];

  it('a heap growing percent out of range says the range and what 0 means', () => {
    expect(configError({ TASKHOOK_HEAP_GROWING_PERCENT: '400' }).message).toBe('invalid TASKHOOK_HEAP_GROWING_PERCENT: expected a percentage 0-300 (0 = V8 decides) (got "400")');
  });

  it('a short admin token says how long, and how to make one', () => {
    expect(configError({ TASKHOOK_ADMIN_TOKEN: 'x'.repeat(31) }).message).toBe(
      'invalid TASKHOOK_ADMIN_TOKEN: expected at least 32 characters (generate one: openssl rand -hex 32)',
    );
    expect(loadConfig({ TASKHOOK_ADMIN_TOKEN: 'x'.repeat(32) }).adminToken).toBe('x'.repeat(32));
  });

  it.each(bad)('%s=%j throws a one-line ConfigError naming it', (name, value) => {
    const err = configError({ [name]: value });
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain(name);
    expect(err.message).toMatch(/expected/i);
    expect(err.message.length).toBeLessThan(300);
  });

  it.each(bad)('%s=%j is named even among other good values', (name, value) => {
    const env = { PORT: '9000', HOST: '127.0.0.1', TASKHOOK_ROLE: 'api', [name]: value };
    expect(configError(env).message).toContain(name);
  });

  it.each([
    ['DATABASE_URL', 'mysql://user:hunter2hunter2@db/x', 'hunter2hunter2'],
    ['TASKHOOK_API_KEY', 'thk_leak', 'thk_leak'],
    ['TASKHOOK_ADMIN_TOKEN', 'leakytoken', 'leakytoken'],
    ['TASKHOOK_SIGNING_SECRET', 'whsec_c2hvcnQ=', 'c2hvcnQ='],
    ['TASKHOOK_ENCRYPTION_KEY', Buffer.alloc(31, 5).toString('base64'), Buffer.alloc(31, 5).toString('base64')],
  ])('a bad %s does not echo the secret value', (name, value, secret) => {
    const err = configError({ [name]: value });
    expect(err.message).toContain(name);
    expect(err.message).not.toContain(secret);
  });

  it('a non-secret bad value is echoed to help the operator', () => {
    expect(configError({ PORT: 'abc' }).message).toContain('"abc"');
  });

  it('a value containing a newline still gives a one-line message', () => {
    const err = configError({ TASKHOOK_ROLE: 'boss\nINJECTED' });
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain('TASKHOOK_ROLE');
  });
});

describe('loadConfig good values', () => {
  it.each([
    { env: { PORT: '0' }, field: 'port', expected: 0 },
    { env: { PORT: '65535' }, field: 'port', expected: 65535 },
    { env: { PORT: '3000' }, field: 'port', expected: 3000 },
    { env: { HOST: '127.0.0.1' }, field: 'host', expected: '127.0.0.1' },
    { env: { TASKHOOK_ROLE: 'api' }, field: 'role', expected: 'api' },
    { env: { TASKHOOK_ROLE: 'worker' }, field: 'role', expected: 'worker' },
    { env: { UPSTREAM_BASE_URL: 'http://localhost:8090/' }, field: 'upstreamBaseUrl', expected: 'http://localhost:8090' },
    { env: { UPSTREAM_BASE_URL: 'https://up.example.com/base//' }, field: 'upstreamBaseUrl', expected: 'https://up.example.com/base' },
    { env: { DATABASE_URL: 'postgres://u:p@h:5432/d' }, field: 'databaseUrl', expected: 'postgres://u:p@h:5432/d' },
    { env: { DATABASE_URL: 'postgresql://h/d' }, field: 'databaseUrl', expected: 'postgresql://h/d' },
    { env: { TASKHOOK_SIGNING_SECRET: SECRET }, field: 'signingSecret', expected: SECRET },
    { env: { TASKHOOK_SIGNING_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, field: 'signingSecret', expected: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
    { env: { TASKHOOK_ENCRYPTION_KEY: KEY32 }, field: 'encryptionKey', expected: KEY32 },
    { env: { TASKHOOK_API_KEY: 'thk_0123456789abcdef' }, field: 'apiKey', expected: 'thk_0123456789abcdef' },
    { env: { TASKHOOK_ADMIN_TOKEN: 'admin-token-0123456789-0123456789' }, field: 'adminToken', expected: 'admin-token-0123456789-0123456789' },
    { env: { UPSTREAM_API_KEY: 'sk_test' }, field: 'upstreamApiKey', expected: 'sk_test' },
    { env: { TASKHOOK_ALLOW_PRIVATE_CALLBACKS: 'true' }, field: 'allowPrivateCallbacks', expected: { all: true, cidrs: [], hostnames: [] } },
    { env: { TASKHOOK_ALLOW_PRIVATE_CALLBACKS: 'false' }, field: 'allowPrivateCallbacks', expected: { all: false, cidrs: [], hostnames: [] } },
    { env: { TASKHOOK_RETRY_SCHEDULE: '1s' }, field: 'retryScheduleMs', expected: [1_000] },
    { env: { TASKHOOK_RETRY_SCHEDULE: '250ms, 1.5s ,2m,1h,1d' }, field: 'retryScheduleMs', expected: [250, 1_500, 120_000, 3_600_000, 86_400_000] },
    { env: { TASKHOOK_DELIVERY_TIMEOUT_S: '0.5' }, field: 'deliveryTimeoutMs', expected: 500 },
    { env: { TASKHOOK_DELIVERY_TIMEOUT_S: '300' }, field: 'deliveryTimeoutMs', expected: 300_000 },
    { env: { TASKHOOK_MAX_WATCH_AGE_S: '3600' }, field: 'maxWatchAgeMs', expected: 3_600_000 },
    { env: { TASKHOOK_NOT_FOUND_GRACE_S: '0' }, field: 'notFoundGraceMs', expected: 0 },
    { env: { TASKHOOK_NOT_FOUND_GRACE_S: '2.5' }, field: 'notFoundGraceMs', expected: 2_500 },
    { env: { TASKHOOK_DATA_DIR: '/tmp/th-data' }, field: 'dataDir', expected: '/tmp/th-data' },
    { env: { TASKHOOK_DATA_DIR: 'rel/dir' }, field: 'dataDir', expected: path.resolve('rel/dir') },
    { env: { TASKHOOK_POLL_SCALE: '0.01' }, field: 'pollScale', expected: 0.01 },
    { env: {}, field: 'heapGrowingPercent', expected: 50 },
    { env: { TASKHOOK_HEAP_GROWING_PERCENT: '0' }, field: 'heapGrowingPercent', expected: 0 },
    { env: { TASKHOOK_HEAP_GROWING_PERCENT: '300' }, field: 'heapGrowingPercent', expected: 300 },
  ] as const)('$env → $field = $expected', ({ env, field, expected }) => {
    expect(loadConfig(env)[field]).toEqual(expected);
  });

  it('TASKHOOK_ALLOW_PRIVATE_CALLBACKS "127.0.0.0/8,localhost" parses into a CIDR and a hostname', () => {
    const a = loadConfig({ TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8,localhost' }).allowPrivateCallbacks;
    expect(a.all).toBe(false);
    expect(a.cidrs).toHaveLength(1);
    expect(a.hostnames).toEqual(['localhost']);
  });
});

describe('parseDuration', () => {
  it.each([
    ['5s', 5_000],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['250ms', 250],
    ['1d', 86_400_000],
    [' 5s ', 5_000],
    ['5', undefined],
    ['-1s', undefined],
    ['', undefined],
    ['5 s', undefined],
    ['5S', undefined],
    ['s', undefined],
  ] as const)('%j → %j', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });
});

describe('the CLI', () => {
  it('`taskhook serve` with PORT=abc exits 1 with one stderr line naming PORT', () => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith('TASKHOOK_') && !k.startsWith('UPSTREAM_') && k !== 'DATABASE_URL' && k !== 'HOST') env[k] = v;
    }
    env.PORT = 'abc';
    const r = spawnSync(process.execPath, ['bin/taskhook.js', 'serve'], { cwd: repoRoot, env, encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(lines[0]).toContain('PORT');
    expect(r.stdout).toBe('');
  });
});
