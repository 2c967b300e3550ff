// The configuration reference (docs/configuration.md) has its table generated from the zod
// schema (src/config-doc.ts): it fails here when the document is stale, when a variable is
// undocumented, or when a variable of the public contract lost its default or meaning.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { envSchema, loadConfig } from '../src/config.js';
import { CONFIG_DOC, configVars, renderConfigTable, tableIn, withTable } from '../src/config-doc.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * The variables the public contract names, with the default and meaning users rely on.
 * (Variables of the contract that are not built yet — TASKHOOK_ALLOW_PRIVATE_UPSTREAMS,
 * TASKHOOK_POLL_STRATEGY — join this list with the code that reads them.)
 */
const CONTRACT_ROWS: Array<[env: string, dflt: string, meaning: string]> = [
  ['`DATABASE_URL`', 'unset → embedded', 'Postgres connection string'],
  ['`TASKHOOK_DATA_DIR`', '`./.taskhook`', 'embedded database and generated secrets'],
  ['`PORT` / `HOST`', '`8080` / `0.0.0.0`', 'HTTP listener'],
  ['`TASKHOOK_ROLE`', '`all`', '`api`, `worker` (poller + deliverer) or `all`'],
  ['`UPSTREAM_BASE_URL`', '`https://api.aiclonevoicefree.com`', 'default upstream'],
  ['`UPSTREAM_API_KEY`', '—', 'upstream key of the default tenant'],
  ['`TASKHOOK_API_KEY`', 'generated, printed once', 'gateway key of the default tenant'],
  ['`TASKHOOK_SIGNING_SECRET`', 'generated, printed once', '`whsec_…` of the default tenant'],
  ['`TASKHOOK_ADMIN_TOKEN`', 'unset = admin API off', 'bearer token for `/v1/admin/*`; at least 32 characters (`openssl rand -hex 32`)'],
  ['`TASKHOOK_ENCRYPTION_KEY`', 'generated into the data dir', '32 bytes, base64; encrypts upstream keys at rest'],
  ['`TASKHOOK_ALLOW_PRIVATE_CALLBACKS`', '`false`', '`true`, or a comma list of CIDRs/hostnames allowed although private'],
  ['`TASKHOOK_NOT_FOUND_GRACE_S`', '`60`', 'how long a 404 from upstream is tolerated after registration'],
  ['`TASKHOOK_MAX_WATCH_AGE_S`', '`86400`', 'give up polling after this'],
  ['`TASKHOOK_RETRY_SCHEDULE`', '`5s,30s,2m,10m,30m,1h,3h,6h,12h`', 'waits between delivery attempts'],
  ['`TASKHOOK_DELIVERY_TIMEOUT_S`', '`15`', 'per attempt, connect to last byte'],
];

describe('the configuration table of docs/configuration.md', () => {
  it('is the one generated from the schema (run `npm run docs:config` if this fails)', () => {
    expect(tableIn(readFileSync(CONFIG_DOC, 'utf8'))).toBe(renderConfigTable());
  });

  it('`npm run docs:config -- --check` agrees', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/config-doc.ts', '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout).toContain('up to date');
    expect(r.status).toBe(0);
  });

  it('documents every variable of the schema, once', () => {
    const names = configVars().flatMap((v) => v.names);
    expect(names.sort()).toEqual(Object.keys(envSchema.shape).sort());
  });

  it('shows each zod default as the default', () => {
    const defaults = loadConfig({});
    expect(defaults.retentionMs).toBe(30 * 86_400_000);
    const row = (name: string) => configVars().find((v) => v.names.includes(name))!;
    expect(row('TASKHOOK_RETENTION_DAYS').default).toBe('`30`');
    expect(row('TASKHOOK_SHUTDOWN_TIMEOUT_S').default).toBe(`\`${defaults.shutdownTimeoutMs / 1000}\``);
    expect(row('PORT').default).toBe(`\`${defaults.port}\``);
  });

  it('keeps every variable of the contract with its contract default and meaning', () => {
    const generated = new Map(configVars().flatMap((v) => v.names.map((n) => [n, v] as const)));
    for (const [envCell, dfltCell, meaning] of CONTRACT_ROWS) {
      const names = [...envCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      const defaults = names.length > 1 ? dfltCell.split(' / ') : [dfltCell];
      names.forEach((name, i) => {
        const v = generated.get(name);
        expect(v, name).toBeDefined();
        expect(v!.default, name).toBe(defaults[i]);
        expect(v!.meaning, name).toContain(meaning);
      });
    }
  });
});

describe('renderConfigTable', () => {
  it('escapes pipes, folds a second spelling into its row, and refuses an undocumented variable', () => {
    const schema = z.object({
      A_URL: z.string().default('http://x').describe('one | two'),
      B_KEY: z.string().optional().describe('a key').meta({ unset: 'generated' }),
      b_key: z.string().optional().meta({ sameAs: 'B_KEY' }),
    });
    expect(renderConfigTable(configVars(schema))).toBe(
      ['| env | default | meaning |', '|---|---|---|', '| `A_URL` | `http://x` | one \\| two |', '| `B_KEY` / `b_key` | generated | a key |'].join('\n'),
    );
    expect(() => configVars(z.object({ C: z.string().default('x') }))).toThrow(/C: no \.describe/);
    expect(() => configVars(z.object({ D: z.string().optional().describe('d') }))).toThrow(/D: no default/);
  });

  it('rewrites only what is between the markers', () => {
    const before = 'intro\n<!-- config:start -->\n| old |\n<!-- config:end -->\noutro\n';
    expect(withTable(before, '| new |')).toBe('intro\n<!-- config:start -->\n| new |\n<!-- config:end -->\noutro\n');
    expect(() => withTable('no markers', '| new |')).toThrow(/not found/);
  });
});
