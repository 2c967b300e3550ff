// The deploy files deploy as they are: fly.toml names only commands the CLI has,
// outlives the SIGTERM drain, checks routes that exist and answer 200 in the role
// each process group runs; the Dockerfile is multi-stage, prod-only and non-root.
// (.ci/docker-smoke.sh runs what the Dockerfile builds.)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseDuration } from '../src/config.js';
import { startStack, type Stack } from './support/gateway.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const CLI = 'node bin/taskhook.js';

interface Check {
  path?: string;
  port?: number;
  type?: string;
  processes?: string[];
}
interface FlyToml {
  kill_signal?: string;
  kill_timeout?: number | string;
  env?: Record<string, string>;
  deploy?: { release_command?: string; strategy?: string };
  processes?: Record<string, string>;
  http_service?: {
    internal_port?: number;
    processes?: string[];
    auto_stop_machines?: string | boolean;
    concurrency?: { type?: string; soft_limit?: number; hard_limit?: number };
    checks?: Check[];
  };
  services?: Array<{ processes?: string[] }>;
  checks?: Record<string, Check>;
}

const fly = parse(readFileSync(path.join(ROOT, 'fly.toml'), 'utf8')) as unknown as FlyToml;
const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

/** The commands `taskhook --help` lists (two-space indented names). */
let listed: string[] | undefined;
function cliCommands(): string[] {
  if (listed) return listed;
  const r = spawnSync(process.execPath, ['bin/taskhook.js', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return (listed = [...r.stdout.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!));
}

const seconds = (v: number | string | undefined): number =>
  typeof v === 'number' ? v : v === undefined ? NaN : (parseDuration(v) ?? NaN) / 1000;

/** `--role X` of a process group's command ('all' when absent, TASKHOOK_ROLE unset). */
const roleOf = (group: string): string => /--role (\S+)/.exec(fly.processes?.[group] ?? '')?.[1] ?? 'all';

describe('fly.toml', () => {
  const commands = cliCommands();

  it('has an app and a worker process group', () => {
    expect(Object.keys(fly.processes ?? {}).sort()).toEqual(['app', 'worker']);
    expect(roleOf('app')).toBe('api');
    expect(roleOf('worker')).toBe('worker');
  });

  it.each([
    ...Object.entries(fly.processes ?? {}).map(([group, cmd]) => [`process ${group}`, cmd] as const),
    ['release_command', fly.deploy?.release_command ?? ''] as const,
  ])('%s runs `node bin/taskhook.js <a command the CLI lists>`', (_what, cmd) => {
    expect(cmd.startsWith(`${CLI} `)).toBe(true);
    const command = cmd.slice(CLI.length + 1).split(/\s+/)[0]!;
    expect(commands).toContain(command);
    const role = /--role (\S+)/.exec(cmd)?.[1];
    if (role !== undefined) expect(() => loadConfig({ TASKHOOK_ROLE: role })).not.toThrow();
  });

  it('migrates in the release command', () => {
    expect(fly.deploy?.release_command).toBe(`${CLI} migrate`);
  });

  it('stops with SIGTERM and waits longer than the drain deadline before SIGKILL', () => {
    expect(fly.kill_signal).toBe('SIGTERM');
    const killTimeoutS = seconds(fly.kill_timeout);
    // the default, and what the [env] of fly.toml makes it (which must parse)
    const drainS = Math.max(loadConfig({}).shutdownTimeoutMs, loadConfig(fly.env ?? {}).shutdownTimeoutMs) / 1000;
    expect(drainS).toBeGreaterThan(0);
    expect(killTimeoutS).toBeGreaterThan(drainS);
    expect(killTimeoutS).toBeLessThanOrEqual(300); // Fly's maximum
  });

  it('puts only the app group behind the proxy: workers are never auto-stopped', () => {
    expect(fly.http_service?.processes).toEqual(['app']);
    for (const s of fly.services ?? []) expect(s.processes ?? ['app']).not.toContain('worker');
    expect(fly.http_service?.internal_port).toBe(Number(fly.env?.PORT ?? 8080));
    const c = fly.http_service?.concurrency;
    expect(c?.soft_limit).toBeGreaterThan(0);
    expect(c!.hard_limit!).toBeGreaterThanOrEqual(c!.soft_limit!);
  });

  describe('health checks hit routes that answer 200 in the role of their process group', () => {
    const checks: Array<{ path: string; role: string }> = [];
    const ports: number[] = [];
    for (const c of fly.http_service?.checks ?? []) {
      for (const g of fly.http_service?.processes ?? ['app']) checks.push({ path: c.path ?? '', role: roleOf(g) });
    }
    for (const c of Object.values(fly.checks ?? {})) {
      if (c.type === 'http') {
        ports.push(c.port ?? NaN);
        for (const g of c.processes ?? Object.keys(fly.processes ?? {})) checks.push({ path: c.path ?? '', role: roleOf(g) });
      }
    }
    const stacks = new Map<string, Promise<Stack>>();
    const stackFor = (role: string) => {
      if (!stacks.has(role)) stacks.set(role, startStack({ TASKHOOK_ROLE: role }));
      return stacks.get(role)!;
    };
    afterAll(async () => {
      for (const s of stacks.values()) await (await s).close();
    });

    it('checks /healthz and /readyz, on the port the gateway listens on', () => {
      expect(checks.map((c) => c.path)).toEqual(expect.arrayContaining(['/healthz', '/readyz']));
      for (const port of ports) expect(port).toBe(Number(fly.env?.PORT ?? 8080));
    });

    it.each(checks)('GET $path on a $role gateway', async ({ path: p, role }) => {
      const s = await stackFor(role);
      const res = await fetch(`${s.gateway.url}${p}`);
      expect(res.status).toBe(200);
    });
  });
});

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const final = stages[stages.length - 1] ?? '';

  it('is multi-stage and installs production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev\b/m);
    expect(final).toMatch(/^COPY --from=\S+ \/app\/node_modules/m);
  });

  it('runs as a non-root user', () => {
    const user = [...final.matchAll(/^USER (\S+)/gm)].pop()?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
  });

  it('has a HEALTHCHECK on /healthz', () => {
    expect(final).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
  });

  it('starts a command the CLI lists', () => {
    const cmd = /^CMD (\[.*\])$/m.exec(final)?.[1];
    const argv = JSON.parse(cmd ?? '[]') as string[];
    expect(argv.slice(0, 2).join(' ')).toBe(CLI);
    expect(cliCommands()).toContain(argv[2]);
  });
});
