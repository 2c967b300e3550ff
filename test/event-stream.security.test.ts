// Issue 12, finding 5 (SSE): a replay that never reads held ~90 MB per stream (100
// payloads of up to a megabyte per page, and a write waiting for drain forever). Now a
// page is bounded by bytes (the running sum is cut in Postgres) and a client that takes
// nothing for slowReaderMs is dropped, its stream slot released.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxPage } from '../src/api/events.js';
import { outboxIdPrefix } from '../src/delivery/outbox.js';
import { hashApiKey } from '../src/tenancy/keys.js';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY } from './support/env.js';

const PAYLOAD = 300 * 1024;
const ROWS = 40; // 12 MB: more than loopback socket buffers take
let s: Stack;
let tenantId: string;
const since = new Date(Date.now() - 60_000);

beforeAll(async () => {
  s = await startStack({}, { eventStream: { slowReaderMs: 1_000, maxStreamsPerTenant: 1 } });
  const [row] = await s.db.sql<{ id: string }[]>`select id from tenants where api_key_hash = ${hashApiKey(TEST_API_KEY)}`;
  tenantId = row!.id;
  // finished deliveries (status delivered: the deliverer leaves them alone), big payloads
  const prefix = outboxIdPrefix(since);
  const body = (i: number) => `{"type":"task.completed","i":${i},"p":"${'x'.repeat(PAYLOAD)}"}`;
  for (let i = 0; i < ROWS; i++) {
    const id = `${prefix}${i.toString(16).padStart(16, '0')}`;
    await s.db.sql`insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, payload, status)
                   values (${id}, ${tenantId}, 'wat_big', 'task.completed', true, 'http://127.0.0.1:9/', ${body(i)}, 'delivered')`;
  }
});
afterAll(async () => {
  await s?.close();
});

describe('event stream memory', () => {
  it('a page holds at most maxBytes of payload (at least one row), and paging still returns every row in order', async () => {
    const seen: string[] = [];
    let after = '';
    for (let pages = 0; pages < 100; pages++) {
      const { rows, more } = await outboxPage(s.db.sql, tenantId, after, 100, 1 << 20);
      expect(rows.length).toBeGreaterThan(0);
      const bytes = rows.reduce((n, r) => n + Buffer.byteLength(r.payload), 0);
      expect(bytes - Buffer.byteLength(rows[rows.length - 1]!.payload)).toBeLessThan(1 << 20);
      expect(rows.length).toBeLessThanOrEqual(4); // 300 KB each
      seen.push(...rows.map((r) => r.id));
      after = rows[rows.length - 1]!.id;
      if (!more) break;
    }
    expect(seen).toHaveLength(ROWS);
    expect([...seen].sort()).toEqual(seen);
    // one row bigger than the budget still comes, alone
    const { rows } = await outboxPage(s.db.sql, tenantId, '', 100, 10);
    expect(rows).toHaveLength(1);
  });

  it('a client that never reads is dropped after slowReaderMs and its stream slot is released', async () => {
    const url = new URL(s.gateway.url!);
    const sock = net.connect(Number(url.port), url.hostname);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(`GET /v1/events?since=${Math.floor(since.getTime() / 1000)} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_API_KEY}\r\n\r\n`);
    // read the answer's head (so the stream is known to be admitted), then never read again
    let head = '';
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (head.includes(': ready')) {
          sock.off('data', onData);
          sock.pause();
          resolve();
        }
      };
      sock.on('data', onData);
    });
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    const second = async () => {
      const ctl = new AbortController();
      const res = await fetch(`${s.gateway.url}/v1/events`, { headers: { authorization: `Bearer ${TEST_API_KEY}` }, signal: ctl.signal });
      ctl.abort();
      return res.status;
    };
    // the one slot (maxStreamsPerTenant: 1) is taken while the stream lives...
    let status = await second();
    expect(status).toBe(429);
    // ...and freed once the gateway gives up on the reader
    const started = Date.now();
    while (status === 429 && Date.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 100));
      status = await second();
    }
    expect(status).toBe(200);
    sock.destroy();
  });
});
