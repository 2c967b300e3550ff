// The gateway as a real child process (`node bin/taskhook.js serve`), for tests
// that kill, pause or race whole processes.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export { freePort } from '../../src/net/free-port.js';
import { freePort } from '../../src/net/free-port.js';

/** `root`: the source tree to run (another release's, for the rolling-upgrade test); default this one. */
export async function spawnGateway(env: Record<string, string>, timeoutMs = 30_000, root = ROOT): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'bin/taskhook.js'), 'serve'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // the tail of its output kept for output(); GATEWAY_OUTPUT_KEEP for a test that reads its logs
  const keep = Number(process.env.GATEWAY_OUTPUT_KEEP) || 20_000;
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-keep)));
  child.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-keep)));
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode} before it was ready:\n${out}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    output: () => out,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Linux: the state letter in /proc/<pid>/stat (T = stopped), or 'gone'. */
export function processState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] ?? '?';
  } catch {
    return 'gone';
  }
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliChild {
  stdout: () => string;
  stderr: () => string;
  waitFor(pred: (out: { stdout: string; stderr: string }) => boolean, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<CliRun>;
  exited: Promise<CliRun>;
}

/**
 * `node bin/taskhook.js <args>` (or `argv0` instead of bin/taskhook.js) with nothing of this
 * process's environment but PATH and HOME: output collected, await `exited` or `stop()`.
 */
export function spawnCli(args: string[], env: Record<string, string> = {}, argv0: string[] = [path.join(ROOT, 'bin/taskhook.js')]): CliChild {
  const child = spawn(process.execPath, [...argv0, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<CliRun>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    async waitFor(pred, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (!pred({ stdout, stderr })) {
        if (child.exitCode !== null) throw new Error(`taskhook ${args.join(' ')} exited ${child.exitCode}:\n${stdout}${stderr}`);
        if (Date.now() > until) throw new Error(`taskhook ${args.join(' ')}: condition not met within ${timeoutMs} ms:\n${stdout}${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    exited,
  };
}
