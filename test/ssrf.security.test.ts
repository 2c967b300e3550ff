// The callback address policy end to end: checked at registration, and again at
// connect time with the vetted address pinned, so DNS that changes its answer
// between the two (rebinding) still can't reach an internal address.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus } from './support/wait.js';

let s: Stack;
let internal: http.Server;
let internalHits = 0;
let lookups = 0;
beforeAll(async () => {
  internal = http.createServer((_req, res) => {
    internalHits++;
    res.end('secret');
  });
  await new Promise<void>((r) => internal.listen(0, '127.0.0.1', r));
  s = await startStack(
    // The default policy: nothing private allowed.
    { TASKHOOK_ALLOW_PRIVATE_CALLBACKS: 'false' },
    {
      lookupAll: async (host) => {
        if (host === 'rebind.test') {
          lookups++;
          // public at registration, loopback afterwards: the classic rebinding attack
          return lookups === 1 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
        }
        if (host === 'mixed.test') return [{ address: '93.184.216.34', family: 4 }, { address: '::1', family: 6 }];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      },
    },
  );
});
afterAll(async () => {
  await s?.close();
  internal?.close();
});

describe('callback address policy', () => {
  const port = () => (internal.address() as AddressInfo).port;

  it.each([
    'http://127.0.0.1/',
    'http://[::1]/',
    'http://localhost./',
    'http://2130706433/',
    'http://0x7f000001/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::ffff:169.254.169.254]/',
    'http://mixed.test/',
    'http://user:pass@example.com/',
    'file:///etc/passwd',
    'gopher://example.com/',
  ])('refuses %s at registration with 422 and queues nothing', async (url) => {
    const task = s.upstream.createTask({ durationMs: 0 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: url } });
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json.errors[0].field).toBe('callback_url');
    const rows = await s.db.sql`select 1 from watches where task_id = ${task.task_id}`;
    expect(rows).toHaveLength(0);
  });

  it('a host that resolves public at registration and to loopback at delivery is never dialled', async () => {
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `http://rebind.test:${port()}/hook` } });
    expect(res.status).toBe(201);
    // TASKHOOK_RETRY_SCHEDULE in tests has three retries: four refused attempts, then undeliverable
    const w = await waitForStatus(s, res.json.id, 'undeliverable', 30_000);
    const attempts = (await s.api(`/v1/watches/${w.id}/deliveries`)).json.data;
    expect(attempts).toHaveLength(4);
    for (const a of attempts) expect(a.error).toMatch(/ERR_CALLBACK_ADDRESS_FORBIDDEN|forbidden/);
    expect(internalHits).toBe(0);
  });
});
