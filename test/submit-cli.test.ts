// `taskhook submit` as a user runs it: a child process against a running gateway, the
// body from a file, the watch printed (or followed with --wait), one-line errors that
// name the Idempotency-Key to retry with, and a retry with that key never submitting twice.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY } from './support/env.js';
import { spawnCli, type CliRun } from './support/process.js';

let s: Stack;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), 'taskhook-submit-cli-'));
const clone = path.join(dir, 'clone.json');
writeFileSync(clone, JSON.stringify({ text: 'Hello from the CLI', reference_audio_url: 'https://example.com/ref.wav', _sim: { durationMs: 400, processingAfterMs: 100 } }));

beforeAll(async () => {
  s = await startStack({ TASKHOOK_SUBMIT_TIMEOUT_S: '1' });
  env = { TASKHOOK_URL: s.gateway.url!, TASKHOOK_API_KEY: TEST_API_KEY };
});
afterAll(async () => {
  await s?.close();
});

async function taskhook(args: string[]): Promise<CliRun> {
  const c = spawnCli(args, env);
  const timer = setTimeout(() => void c.stop('SIGKILL'), 30_000);
  const r = await c.exited;
  clearTimeout(timer);
  return r;
}

describe('taskhook submit', () => {
  it('--wait submits the file, prints the task and its watch, follows it and exits 0 once delivered', async () => {
    const n = s.upstream.submits();
    const r = await taskhook(['submit', '/api/v2/voice/clone', '--body', `@${clone}`, '--callback', `${s.receiver.url}/hook`, '--metadata', '{"order":1}', '--wait', '--interval', '100ms', '--timeout', '20s']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^submitted /api/v2/voice/clone → task [\\w-]+ \\(voice clone v1-real\\); watch (wat_\\w+) → ${s.receiver.url}/hook$`));
    expect(lines.at(-1)).toMatch(/^✓ wat_\w+ · delivered · task completed/);
    expect(s.upstream.submits()).toBe(n + 1);
    const watchId = /(wat_\w+)/.exec(lines[0]!)![1]!;
    const hook = s.receiver.received.find((h) => h.json?.watch_id === watchId)!;
    expect(hook.verified).toBe(true);
    expect(hook.json.metadata).toEqual({ order: 1 });
  });

  it('--json prints {task_id, upstream, watch}; --idempotency-key again replays without a second submit', async () => {
    const args = ['submit', '/api/v2/image/generate', '--body', '{"prompt":"a lighthouse"}', '--callback', `${s.receiver.url}/hook`, '--idempotency-key', 'cli-key-1', '--json'];
    const n = s.upstream.submits();
    const first = await taskhook(args);
    expect(first.code, first.stderr).toBe(0);
    const a = JSON.parse(first.stdout);
    expect(a).toMatchObject({ task_id: expect.any(String), upstream: { capability: 'image' }, watch: { status: 'watching' } });
    const again = await taskhook(args);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(a);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it('an upstream failure is one line naming the problem and the key to retry with; the retry with it submits nothing new', async () => {
    s.upstream.setSubmitFault({ mode: 'timeout', times: 1 });
    const n = s.upstream.submits();
    const r = await taskhook(['submit', '/api/v2/video/generate', '--body', '{"prompt":"a corgi"}', '--callback', `${s.receiver.url}/hook`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^taskhook: upstream did not answer \(timed out\); it may have accepted the task\..*\(HTTP 502\); Idempotency-Key ([\w-]+) \(retry with --idempotency-key \1\)$/);
    const key = /--idempotency-key ([\w-]+)\)$/.exec(lines[0]!)![1]!;
    const retry = await taskhook(['submit', '/api/v2/video/generate', '--body', '{"prompt":"a corgi"}', '--callback', `${s.receiver.url}/hook`, '--idempotency-key', key]);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toMatch(/may have accepted the task/);
    expect(s.upstream.submits()).toBe(n + 1);
  });

  it.each([
    [['--body', '[1,2]'], /--body must be a JSON object/],
    [['--body', '@/nonexistent/x.json'], /cannot read \/nonexistent\/x.json \(ENOENT\)/],
    [['--body', 'not json'], /--body must be a JSON object/],
  ])('a bad %j is a usage error (exit 2), nothing sent', async (extra, pattern) => {
    const n = s.upstream.submits();
    const r = await taskhook(['submit', '/api/v2/voice/clone', '--callback', `${s.receiver.url}/hook`, ...extra]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(s.upstream.submits()).toBe(n);
  });

  it('a path outside the allowlist: exit 1, the 422 detail', async () => {
    const r = await taskhook(['submit', '/api/v2/../admin', '--body', '{}', '--callback', `${s.receiver.url}/hook`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/submit\.path must not contain \. or \.\. segments/);
  });
});
