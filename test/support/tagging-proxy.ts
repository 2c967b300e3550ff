// A forwarding HTTP proxy for one worker's upstream polls: the worker's UPSTREAM_BASE_URL
// points here, every GET /api/v2/tasks/:id is passed on to the simulated upstream and
// recorded (when, which task), so a test can tell which process polled what.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TaggingProxy {
  url: string;
  /** [ms, task_id] per poll passed on */
  polls: Array<[number, string]>;
  close(): Promise<void>;
}

export async function startTaggingProxy(target: string): Promise<TaggingProxy> {
  const polls: Array<[number, string]> = [];
  const server = http.createServer((req, res) => {
    const m = /^\/api\/v2\/tasks\/([^/?]+)/.exec(req.url ?? '');
    if (m) polls.push([Date.now(), decodeURIComponent(m[1]!)]);
    const headers: Record<string, string> = {};
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    fetch(`${target}${req.url}`, { headers }).then(
      async (up) => {
        const body = await up.text();
        const out: Record<string, string> = { 'content-type': up.headers.get('content-type') ?? 'application/json' };
        const ra = up.headers.get('retry-after');
        if (ra) out['retry-after'] = ra;
        res.writeHead(up.status, out).end(body);
      },
      () => res.writeHead(502).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    polls,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
