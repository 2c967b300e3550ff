// A real forward proxy on loopback for the firewall tests: the npm package `proxy`
// (HTTP and CONNECT, as Squid or tinyproxy speak them), started in this process, so the
// suite needs nothing outside npm. Like the tinyproxy config it replaces, it listens on
// 127.0.0.1 only, tunnels CONNECT only to the ports listed, may require Basic auth, and
// keeps the request line of everything it was asked ("CONNECT 127.0.0.1:41234").
// stop() cuts every open connection at once, the way a proxy outage does.
import http from 'node:http';
import type { Socket } from 'node:net';
import { createProxy } from 'proxy';

export interface ForwardProxyOptions {
  port: number;
  /** ports CONNECT may reach; any other is refused with 403 */
  connectPorts: number[];
  basicAuth?: { user: string; password: string };
}

export interface ForwardProxy {
  url: string;
  port: number;
  /** request lines it received, e.g. "CONNECT 127.0.0.1:41234" */
  requests(): string[];
  stop(): Promise<void>;
}

type Listener = (...args: unknown[]) => void;

export async function startForwardProxy(opts: ForwardProxyOptions): Promise<ForwardProxy> {
  const server = createProxy(http.createServer());
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  if (opts.basicAuth) {
    const expected = `Basic ${Buffer.from(`${opts.basicAuth.user}:${opts.basicAuth.password}`).toString('base64')}`;
    server.authenticate = (req) => req.headers['proxy-authorization'] === expected;
  }

  // Wrap the package's handlers: log first (as tinyproxy's log did), then refuse a
  // CONNECT to an unlisted port before the package dials anything.
  const [onRequest] = server.listeners('request') as Listener[];
  const [onConnect] = server.listeners('connect') as Listener[];
  server.removeAllListeners('request').removeAllListeners('connect');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    onRequest!.call(server, req, res);
  });
  server.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    const port = Number((req.url ?? '').slice((req.url ?? '').lastIndexOf(':') + 1));
    if (!opts.connectPorts.includes(port)) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    onConnect!.call(server, req, socket, head);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${opts.port}`,
    port: opts.port,
    requests: () => [...seen],
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Every tunnel dies now, as in an outage: nothing drains.
        for (const s of sockets) s.destroy();
      });
      return stopped;
    },
  };
}
