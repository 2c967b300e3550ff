// Issue 12, finding 5 (log flooding): a client aborting mid-body got a 500 and an
// error-level stack trace each time. A client that went away is a client event: logged
// at debug, never answered (or counted) as a server error, and nothing is half-written.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { createTestDb, type TestDb } from './support/db.js';
import { TEST_API_KEY, testEnv } from './support/env.js';

let db: TestDb;
let upstream: SimUpstream;
let gw: Gateway;
const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];

beforeAll(async () => {
  db = await createTestDb();
  upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  const cfg = loadConfig(testEnv(db.url, upstream.url, { LOG_LEVEL: 'debug' }));
  const log = createLogger('debug', { destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
  gw = await startGateway(cfg, log, { idleMs: 50 });
});
afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
  await db?.drop();
});

/** Sends the head and part of the body, then cuts the connection. → whatever came back before it closed. */
async function abortMidBody(path: string, contentType: string, extra = '') {
  const url = new URL(gw.url!);
  const sock = net.connect(Number(url.port), url.hostname);
  await new Promise<void>((r) => sock.once('connect', () => r()));
  let answer = '';
  sock.on('data', (c: Buffer) => (answer += c.toString()));
  sock.on('error', () => {});
  sock.write(`POST ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_API_KEY}\r\ncontent-type: ${contentType}\r\ncontent-length: 5000\r\n${extra}\r\n{"task_id":"abort-1","callback_url":"http://127.0.0.1:9/`);
  await new Promise((r) => setTimeout(r, 100));
  sock.destroy();
  await new Promise((r) => setTimeout(r, 300));
  return answer;
}

describe('a client that aborts mid-body', () => {
  it.each([
    ['/v1/watches', 'application/json', ''],
    ['/v1/watches', 'application/json; charset=utf-8', ''],
    ['/dashboard/sign-in', 'application/x-www-form-urlencoded', `origin: http://x\r\n`],
  ])('POST %s (%s): no 500, no error log, logged at debug as a client event, nothing written', async (path, type, extra) => {
    const before = lines.length;
    for (let i = 0; i < 5; i++) {
      const answer = await abortMidBody(path, type, extra);
      expect(answer).not.toMatch(/^HTTP\/1\.1 5/);
    }
    const mine = lines.slice(before);
    expect(mine.filter((l) => l.msg === 'client went away mid-request' && l.level === 20 && l.path === path).length).toBeGreaterThanOrEqual(1);
    expect(mine.filter((l) => l.level >= 50), JSON.stringify(mine.filter((l) => l.level >= 50)).slice(0, 500)).toEqual([]);
    expect(mine.filter((l) => l.msg === 'request' && typeof l.status === 'number' && (l.status as number) >= 500)).toEqual([]);
    expect(await db.sql`select 1 from watches where task_id = 'abort-1'`).toHaveLength(0);
  });

  it('the gateway still answers normally afterwards', async () => {
    const res = await fetch(`${gw.url}/v1/watches`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(res.status).toBe(200);
  });
});
