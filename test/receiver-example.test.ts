// examples/receiver.mjs, the dependency-free receiver the README's "How it works" starts
// first: it acknowledges real webhooks from a gateway (printing each), and refuses forged,
// unsigned and stale ones with 400.
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_SIGNING_SECRET } from './support/env.js';
import { freePort, spawnCli, type CliChild } from './support/process.js';
import { waitForStatus } from './support/wait.js';

const ROOT = path.resolve(import.meta.dirname, '..');
let s: Stack;
let receiver: CliChild;
let url: string;
beforeAll(async () => {
  s = await startStack();
  const port = await freePort();
  receiver = spawnCli(['--port', String(port)], { TASKHOOK_SIGNING_SECRET: TEST_SIGNING_SECRET }, [path.join(ROOT, 'examples/receiver.mjs')]);
  await receiver.waitFor(({ stdout }) => stdout.includes('listening on'));
  url = `http://127.0.0.1:${port}/hook`;
});
afterAll(async () => {
  await receiver?.stop('SIGTERM');
  await s?.close();
});

const sign = (id: string, ts: number, body: string, secret = TEST_SIGNING_SECRET) =>
  `v1,${createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(`${id}.${ts}.${body}`).digest('base64')}`;

describe('examples/receiver.mjs', () => {
  it('acknowledges and prints the webhooks of a real gateway', async () => {
    const task = s.upstream.createTask({ capability: 'image', durationMs: 150 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: url, metadata: { order: 42 } } });
    expect(res.status, res.text).toBe(201);
    const w = await waitForStatus(s, res.json.id, 'delivered');
    expect(w.last_delivery.last_response_status).toBe(204);
    await receiver.waitFor(({ stdout }) => stdout.includes(res.json.id));
    expect(receiver.stdout()).toMatch(new RegExp(`✓ task\\.completed msg_\\w+ watch ${res.json.id} task ${task.task_id}: https://\\S+\\.png metadata \\{"order":42\\}`));
  });

  it('refuses a forged, an unsigned and a stale webhook with 400', async () => {
    const body = JSON.stringify({ type: 'task.completed', watch_id: 'wat_x', data: {} });
    const now = Math.floor(Date.now() / 1000);
    const post = (headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
    const forged = await post({ 'webhook-id': 'msg_f', 'webhook-timestamp': String(now), 'webhook-signature': sign('msg_f', now, body, 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') });
    const unsigned = await post({ 'webhook-id': 'msg_u', 'webhook-timestamp': String(now) });
    const stale = await post({ 'webhook-id': 'msg_s', 'webhook-timestamp': String(now - 3600), 'webhook-signature': sign('msg_s', now - 3600, body) });
    const good = await post({ 'webhook-id': 'msg_g', 'webhook-timestamp': String(now), 'webhook-signature': `v1,bm9wZQ== ${sign('msg_g', now, body)}` });
    expect([forged.status, unsigned.status, stale.status, good.status]).toEqual([400, 400, 400, 204]);
    await receiver.waitFor(({ stdout }) => stdout.includes('msg_g'));
    expect(receiver.stdout()).toMatch(/✗ POST \/hook msg_f: refused \(no signature matches\)/);
    expect(receiver.stdout()).toMatch(/✗ POST \/hook msg_s: refused \(stale or bad webhook-timestamp\)/);
  });

  it('without a signing secret it says what to set and exits 2', async () => {
    const r = await spawnCli([], {}, [path.join(ROOT, 'examples/receiver.mjs')]).exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/set TASKHOOK_SIGNING_SECRET/);
  });
});
