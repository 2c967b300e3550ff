// Submit through taskhook across real processes on one database: the Idempotency-Key
// replays from any process and after a restart, and a gateway SIGKILLed during the
// upstream call (or right after upstream accepted) never leads to a second submit.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet } from './support/fleet.js';
import { TEST_API_KEY } from './support/env.js';

let f: Fleet;
beforeAll(async () => {
  f = await startFleet({ TASKHOOK_SUBMIT_TIMEOUT_S: '2' });
});
afterAll(async () => {
  await f?.close();
});

const VOICE = { text: 'crash test', reference_audio_url: 'https://example.com/ref.wav' };

async function submit(url: string, key: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
}

const request = () => ({ submit: { path: '/api/v2/voice/clone', body: { ...VOICE, _sim: { durationMs: 200 } } }, callback_url: `${f.receiver.url}/hook` });

/** Retries while the key's earlier attempt still holds its lease (409), as a client would. */
async function retryThrough409(url: string, key: string, body: Record<string, unknown>, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  let conflicts = 0;
  for (;;) {
    const res = await submit(url, key, body);
    if (res.status !== 409) return { ...res, conflicts };
    conflicts++;
    expect(res.headers.get('retry-after')).toBe('1');
    if (Date.now() > until) throw new Error('still 409 after the lease should have run out');
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function untilSubmitted(n: number, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (f.upstream.submits() < n) {
    if (Date.now() > until) throw new Error('the submit never reached upstream');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rowsFor(taskId: string) {
  const [r] = await f.db.sql<{ n: number }[]>`
    select ((select count(*) from watches where task_id = ${taskId}) + (select count(*) from upstream_tasks where task_id = ${taskId}))::int as n`;
  return r!.n;
}

describe('replay across processes', () => {
  it('the answer of process A is replayed by process B and after A restarts; upstream asked once; the webhook arrives', async () => {
    const a = await f.gateway();
    const b = await f.gateway();
    const key = randomUUID();
    const body = request();
    const n = f.upstream.submits();
    const first = await submit(a.url, key, body);
    expect(first.status, first.text).toBe(201);
    const fromB = await submit(b.url, key, body);
    expect(fromB.status).toBe(201);
    expect(fromB.text).toBe(first.text);
    expect(fromB.headers.get('idempotent-replayed')).toBe('true');

    await a.kill('SIGTERM');
    await b.kill('SIGKILL');
    const c = await f.gateway();
    const afterRestart = await submit(c.url, key, body);
    expect(afterRestart.status).toBe(201);
    expect(afterRestart.text).toBe(first.text);
    expect(f.upstream.submits()).toBe(n + 1);

    const hook = await f.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === first.json.watch.id), 20_000);
    const mine = hook.filter((r) => r.json?.watch_id === first.json.watch.id);
    expect(mine[0]!.verified).toBe(true);
    expect(mine[0]!.json.data).toEqual(f.upstream.store.get(first.json.task_id, Date.now()));
    await c.kill('SIGTERM');
  });
});

describe('SIGKILL during a submit', () => {
  it('killed while the upstream call is in flight (upstream took the task): after a restart the same key answers "outcome unknown", never a second submit', async () => {
    const g = await f.gateway();
    f.upstream.setSubmitFault({ mode: 'timeout', times: 1 }); // creates the task, never answers
    const key = randomUUID();
    const body = request();
    const n = f.upstream.submits();
    const inFlight = submit(g.url, key, body).catch((err: Error) => err);
    await untilSubmitted(n + 1);
    await g.kill('SIGKILL');
    expect(await inFlight).toBeInstanceOf(Error); // the connection died with the process
    const taskId = f.upstream.submitLog.at(-1)!.task_id!;
    expect(f.upstream.store.has(taskId)).toBe(true);

    const g2 = await f.gateway();
    const res = await retryThrough409(g2.url, key, body);
    expect(res.status, res.text).toBe(502);
    expect(res.json).toMatchObject({ type: 'https://taskhook.dev/problems/outcome-unknown', outcome: 'unknown', status: 502 });
    expect(res.json.detail).toMatch(/stopped while upstream was being called/);
    // and it keeps saying so, from any process, without asking upstream
    const again = await submit(g2.url, key, body);
    expect(again.status).toBe(502);
    expect(again.json.outcome).toBe('unknown');
    expect(f.upstream.submits()).toBe(n + 1);
    expect(await rowsFor(taskId)).toBe(0);
    // the task itself can still be registered by task_id, the first-class way
    const watch = await fetch(`${g2.url}/v1/watches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ task_id: taskId, callback_url: `${f.receiver.url}/hook` }),
    });
    expect(watch.status).toBe(201);
    await g2.kill('SIGTERM');
  });

  it('killed after upstream accepted, before anything was recorded: the same, never a second submit', async () => {
    const g = await f.gateway({ TASKHOOK_FAULTS: 'submit.after-upstream=kill@1' });
    const key = randomUUID();
    const body = request();
    const n = f.upstream.submits();
    const died = await submit(g.url, key, body).catch((err: Error) => err);
    expect(died).toBeInstanceOf(Error);
    await g.kill('SIGKILL'); // already dead: returns at once
    expect(f.upstream.submits()).toBe(n + 1);
    const taskId = f.upstream.submitLog.at(-1)!.task_id!;
    expect(taskId).toBeTypeOf('string');

    const g2 = await f.gateway();
    const res = await retryThrough409(g2.url, key, body);
    expect(res.status, res.text).toBe(502);
    expect(res.json.outcome).toBe('unknown');
    expect(f.upstream.submits()).toBe(n + 1);
    expect(await rowsFor(taskId)).toBe(0);
    // a new key is a new submit: the client decided to
    const fresh = await submit(g2.url, randomUUID(), body);
    expect(fresh.status).toBe(201);
    expect(f.upstream.submits()).toBe(n + 2);
    await g2.kill('SIGTERM');
  });
});
