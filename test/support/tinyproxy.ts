// A real forward proxy on loopback for the firewall tests: Debian's tinyproxy as a
// child process with a throw-away config. Its log (stdout under -d) tells which
// requests it carried. Installing it is the machine's business (.ci/run does).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TINYPROXY_MISSING =
  'tinyproxy is not installed: run `apt-get install tinyproxy` (as .ci/run does); the proxy tests need a real forward proxy';

/** Absolute path of the tinyproxy binary, or undefined. Installs nothing. */
export function findTinyproxy(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, 'tinyproxy');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface TinyproxyOptions {
  port: number;
  /** ports CONNECT may reach (tinyproxy allows all when none is listed; we always list them) */
  connectPorts: number[];
  basicAuth?: { user: string; password: string };
}

export interface Tinyproxy {
  url: string;
  port: number;
  /** request lines it received, e.g. "CONNECT 127.0.0.1:41234" */
  requests(): string[];
  log(): string;
  stop(): Promise<void>;
}

export async function startTinyproxy(opts: TinyproxyOptions): Promise<Tinyproxy> {
  const bin = findTinyproxy();
  if (!bin) throw new Error(TINYPROXY_MISSING);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-tinyproxy-'));
  const conf = [
    `Port ${opts.port}`,
    'Listen 127.0.0.1',
    'Timeout 30',
    'MaxClients 16',
    'Allow 127.0.0.1',
    'LogLevel Info', // to stdout under -d: no log file
    `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
    ...opts.connectPorts.map((p) => `ConnectPort ${p}`),
    ...(opts.basicAuth ? [`BasicAuth ${opts.basicAuth.user} ${opts.basicAuth.password}`] : []),
  ];
  fs.writeFileSync(path.join(dir, 'tinyproxy.conf'), `${conf.join('\n')}\n`);

  const child: ChildProcess = spawn(bin, ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const until = Date.now() + 10_000;
  while (!/Accepting connections/.test(out)) {
    if (child.exitCode !== null) throw new Error(`tinyproxy exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`tinyproxy did not start within 10 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${opts.port}`,
    port: opts.port,
    log: () => out,
    requests: () => [...out.matchAll(/Request \(file descriptor \d+\): (\S+) (\S+)/g)].map((m) => `${m[1]} ${m[2]}`),
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          // SIGKILL: the point is that every tunnel through it dies now, as with a proxy outage.
          child.kill('SIGKILL');
          await exited;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
