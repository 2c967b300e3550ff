// The deliverer's isolation rules, pure: caps, who may start, which rows a claim takes,
// fair hand-over of a host's slots; and what an answer means for its URL and host.
import { describe, expect, it } from 'vitest';
import { admitClaim, capsFor, claimCapsFor, FairSlots, Ledger, mayStart, type Lane } from '../src/delivery/admission.js';
import { circuitGate, EndpointHealth, hostIsDown, judgeAttempt, RETRY_AFTER_MAX_MS, slotLimit } from '../src/delivery/health.js';
import type { SendResult } from '../src/delivery/send.js';

const H = 'https://hooks.example.com:443';
const lane = (tenant: string, path: string, host = H): Lane => ({ host, url: `${host}/${path}`, tenant });

describe('capsFor', () => {
  it.each([
    [32, {}, { perHost: 32, perUrl: 8, perTenantHost: 16, aloneUrl: 16, aloneTenant: 24 }],
    [4, {}, { perHost: 4, perUrl: 1, perTenantHost: 2, aloneUrl: 2, aloneTenant: 3 }],
    [1, {}, { perHost: 1, perUrl: 1, perTenantHost: 1, aloneUrl: 1, aloneTenant: 1 }],
    [32, { perUrl: 64 }, { perHost: 32, perUrl: 32, perTenantHost: 32, aloneUrl: 32, aloneTenant: 32 }],
    [32, { perUrl: 4, perTenantHost: 2 }, { perHost: 32, perUrl: 4, perTenantHost: 4, aloneUrl: 24, aloneTenant: 28 }],
  ])('perHost %i %j → %j', (perHost, o, want) => {
    expect(capsFor(perHost, o)).toEqual(want);
  });
  it.each([0, -1, 1.5, Number.NaN])('refuses perHost %s', (n) => {
    expect(() => capsFor(n)).toThrow(/perHost must be a positive integer/);
  });
});

describe('mayStart', () => {
  const caps = capsFor(32);
  const both = { urls: true, tenants: true };
  it.each([
    [{ host: 0, url: 0, tenantHost: 0 }, both, true],
    [{ host: 31, url: 7, tenantHost: 15 }, both, true],
    [{ host: 32, url: 0, tenantHost: 0 }, both, false], // the host's ceiling
    [{ host: 10, url: 8, tenantHost: 8 }, both, false], // the URL's quarter, while the host is shared
    [{ host: 20, url: 2, tenantHost: 16 }, both, false], // the tenant's half, while other tenants have work there
    [{ host: 10, url: 8, tenantHost: 10 }, { urls: false, tenants: false }, true], // alone on the host: a URL up to ½
    [{ host: 15, url: 15, tenantHost: 15 }, { urls: false, tenants: false }, true],
    [{ host: 16, url: 16, tenantHost: 16 }, { urls: false, tenants: false }, false], // half stays free for newcomers
    [{ host: 16, url: 8, tenantHost: 16 }, { urls: true, tenants: false }, false], // the tenant's only, but its other URLs wait
    [{ host: 20, url: 2, tenantHost: 20 }, { urls: true, tenants: false }, true], // one tenant's many URLs: ¾ for the tenant
    [{ host: 24, url: 2, tenantHost: 24 }, { urls: true, tenants: false }, false], // a quarter stays free for other tenants
  ])('%j %j → %s', (inFlight, shared, want) => {
    expect(mayStart(inFlight, shared, caps)).toBe(want);
  });
});

describe('admitClaim (the claim statement’s rule)', () => {
  // claim-ahead: host 16, URL 8, tenant-on-host 12 (twice what one alone on its host may send: 4, 6)
  const caps = claimCapsFor(capsFor(8), 100, 2);
  const rows = (specs: Array<[string, string, string?]>) => specs.map(([t, p, h], i) => ({ ...lane(t, p, h), i }));
  it('a URL gets at most ½ of the host’s claims; the rest goes to other URLs and tenants', () => {
    const cands = rows([...Array(20).fill(['a', 'hang']), ['b', 'ok'], ['b', 'ok']]);
    const got = admitClaim(cands, new Ledger(), caps);
    expect(got.filter((r) => r.url.endsWith('/hang'))).toHaveLength(8);
    expect(got.filter((r) => r.url.endsWith('/ok'))).toHaveLength(2);
  });
  it('so does a tenant, however many URLs it spreads over', () => {
    const cands = rows(Array.from({ length: 40 }, (_, i) => ['a', `u${i % 10}`] as [string, string]));
    expect(admitClaim(cands, new Ledger(), caps)).toHaveLength(12);
  });
  it('counts what is held already', () => {
    const held = new Ledger();
    for (let i = 0; i < 7; i++) held.add(lane('a', 'x'));
    const got = admitClaim(rows([['a', 'x'], ['a', 'x'], ['b', 'y']]), held, caps);
    expect(got.map((r) => r.i)).toEqual([0, 2]);
  });
  it('other hosts are independent', () => {
    const cands = rows([...Array(15).fill(['a', 'x', 'https://one:443']), ...Array(15).fill(['a', 'x', 'https://two:443'])]);
    expect(admitClaim(cands, new Ledger(), caps)).toHaveLength(16); // each its URL's 8
  });
  it('the per-tenant cap spans hosts', () => {
    const few = claimCapsFor(capsFor(8), 3, 2);
    const cands = rows([['a', 'x', 'https://one:443'], ['a', 'x', 'https://two:443'], ['a', 'x', 'https://three:443'], ['a', 'x', 'https://four:443'], ['b', 'x']]);
    expect(admitClaim(cands, new Ledger(), few).map((r) => r.tenant)).toEqual(['a', 'a', 'a', 'b']);
  });
});

describe('FairSlots', () => {
  const start = (slots: FairSlots, l: Lane, log: string[], name: string) =>
    void slots.acquire(l).then(() => log.push(name));
  const tick = () => new Promise((r) => setImmediate(r));

  it('a URL alone on its host gets ½ of it; another URL of the same tenant, then another tenant, still start at once', async () => {
    const slots = new FairSlots(capsFor(8)); // URL 2 (alone: 4), tenant-on-host 4 (alone: 6)
    const log: string[] = [];
    const hang = lane('a', 'hang');
    for (let i = 0; i < 10; i++) start(slots, hang, log, `hang${i}`);
    await tick();
    expect(log).toEqual(['hang0', 'hang1', 'hang2', 'hang3']);
    for (let i = 0; i < 3; i++) start(slots, lane('a', 'mine'), log, `mine${i}`);
    await tick();
    expect(log.slice(4)).toEqual(['mine0', 'mine1']); // the same tenant's other URL: its quarter
    for (let i = 0; i < 3; i++) start(slots, lane('b', 'theirs'), log, `theirs${i}`);
    await tick();
    expect(log.slice(6)).toEqual(['theirs0', 'theirs1']); // another tenant: the last quarter
    expect(slots.inUse({ host: H })).toBe(8);
    // the hanging URL's requests end (time out): it gets none back while over its quarter, now the host is shared
    slots.release(hang);
    slots.release(hang);
    await tick();
    expect(slots.inUse({ url: `${H}/hang` })).toBe(2);
    expect(log).toHaveLength(8); // (everyone is at a quarter: the rest waits for one of theirs to end)
    slots.release(lane('a', 'mine'));
    slots.release(lane('b', 'theirs'));
    await tick();
    expect(log.slice(8)).toEqual(['mine2', 'theirs2']);
    expect(slots.inUse({ url: `${H}/hang` })).toBe(2);
  });

  it('freed slots go round-robin across tenants, then across a tenant’s URLs', async () => {
    const slots = new FairSlots(capsFor(4, { perUrl: 4, perTenantHost: 4 }));
    const log: string[] = [];
    const held = Array.from({ length: 4 }, () => lane('z', 'busy'));
    for (const l of held) await slots.acquire(l);
    for (let i = 0; i < 3; i++) start(slots, lane('a', 'a1'), log, 'a1');
    for (let i = 0; i < 3; i++) start(slots, lane('a', 'a2'), log, 'a2');
    for (let i = 0; i < 2; i++) start(slots, lane('b', 'b1'), log, 'b1');
    await tick();
    expect(log).toEqual([]);
    for (let i = 0; i < 4; i++) {
      slots.release(held[i]!);
      await tick();
    }
    expect(log).toEqual(['a1', 'b1', 'a2', 'b1']);
  });

  it('a waiter at its own cap does not block the next lane', async () => {
    const slots = new FairSlots(capsFor(8)); // URL 2
    const log: string[] = [];
    const a = lane('a', 'x');
    await slots.acquire(a);
    await slots.acquire(a);
    const others = Array.from({ length: 6 }, (_, i) => lane(`t${i}`, `y${i}`));
    for (const l of others) await slots.acquire(l);
    start(slots, a, log, 'a-third'); // at its URL cap
    start(slots, lane('b', 'z'), log, 'b'); // waits for the host
    await tick();
    slots.release(others[0]!);
    await tick();
    expect(log).toEqual(['b']);
    slots.release(a);
    await tick();
    expect(log).toEqual(['b', 'a-third']);
  });
});

const answer = (status: number, retryAfterMs?: number, durationMs = 10): SendResult => ({ outcome: { kind: 'response', status, retryAfterMs }, durationMs, excerpt: undefined });
const failed = (message: string, durationMs = 10): SendResult => ({ outcome: { kind: 'error', message }, durationMs, excerpt: undefined });

describe('judgeAttempt', () => {
  it.each([
    ['2xx', answer(204), { kind: 'success' }],
    ['4xx is reachable', answer(404), { kind: 'success' }],
    ['410', answer(410), { kind: 'success' }],
    ['500', answer(500), { kind: 'failure', error: 'receiver answered HTTP 500' }],
    ['429 without Retry-After', answer(429), { kind: 'failure', error: 'receiver answered HTTP 429' }],
    ['429 with Retry-After', answer(429, 7_000), { kind: 'retry-after', ms: 7_000 }],
    ['503 with Retry-After past the cap', answer(503, 10 * RETRY_AFTER_MAX_MS), { kind: 'retry-after', ms: RETRY_AFTER_MAX_MS }],
    ['a timeout', failed('timed out after 15000 ms', 15_000), { kind: 'failure', error: 'timed out after 15000 ms' }],
    ['we were paused', failed('timed out after 15000 ms', 40_000), { kind: 'ignore' }],
  ])('%s', (_, result, want) => {
    expect(judgeAttempt(result, 15_000)).toEqual(want);
  });
});

describe('hostIsDown', () => {
  it.each([
    [0, 0, false],
    [1, 1, false], // one URL is that URL's problem
    [2, 2, false],
    [3, 3, true],
    [3, 6, false], // half is not most
    [4, 7, true],
    [10, 30, false],
  ])('%i open of %i attempted → %s', (open, attempted, want) => {
    expect(hostIsDown(open, attempted)).toBe(want);
  });
});

describe('EndpointHealth', () => {
  it("a failing URL's circuit opens; the host's other URLs are untouched", () => {
    const h = new EndpointHealth();
    const bad = lane('a', 'bad');
    const good = lane('b', 'good');
    h.record(good, { kind: 'success' }, 0);
    let opened: number | undefined;
    for (let i = 0; i < 5; i++) opened = h.record(bad, { kind: 'failure', error: 'x' }, i).deferUrlMs ?? opened;
    expect(opened).toBe(30_000);
    expect(h.openFor(bad, 10)).toBeGreaterThan(0);
    expect(h.openFor(good, 10)).toBe(0);
    expect(h.openCount(10)).toEqual({ urls: 1, hosts: 0 });
  });

  it('Retry-After applies to the URL that sent it', () => {
    const h = new EndpointHealth();
    const a = h.record(lane('a', 'slow'), { kind: 'retry-after', ms: 5_000 }, 0);
    expect(a.deferUrlMs).toBe(5_000);
    expect(a.deferHostMs).toBeUndefined();
    expect(h.openFor(lane('a', 'slow'), 1)).toBe(4_999);
    expect(h.openFor(lane('a', 'other'), 1)).toBe(0);
  });

  it('the host opens when most of its URLs are open, and closes on any success', () => {
    const h = new EndpointHealth();
    h.record(lane('a', 'fine'), { kind: 'success' }, 0);
    let hostMs: number | undefined;
    for (const p of ['u1', 'u2', 'u3']) for (let i = 0; i < 5; i++) hostMs = h.record(lane('a', p), { kind: 'failure', error: 'x' }, 1).deferHostMs ?? hostMs;
    expect(hostMs).toBe(30_000);
    expect(h.openFor(lane('c', 'never-seen'), 2)).toBeGreaterThan(0);
    h.record(lane('a', 'fine'), { kind: 'success' }, 3);
    expect(h.openFor(lane('c', 'never-seen'), 4)).toBe(0);
  });

  it('reports state changes, not every attempt', () => {
    const h = new EndpointHealth();
    const l = lane('a', 'x');
    // the first answer this process sees from a URL is news (another process may have recorded failures)
    expect(h.record(l, { kind: 'success' }, 0).changed).toEqual({ state: 'healthy', openUntil: null, error: null });
    expect(h.record(l, { kind: 'success' }, 0.5).changed).toBeUndefined();
    expect(h.record(l, { kind: 'failure', error: 'boom' }, 1).changed).toEqual({ state: 'failing', openUntil: null, error: 'boom' });
    expect(h.record(l, { kind: 'failure', error: 'boom' }, 2).changed).toBeUndefined();
    expect(h.record(l, { kind: 'success' }, 3).changed).toEqual({ state: 'healthy', openUntil: null, error: null });
    expect(h.record(l, { kind: 'ignore' }, 4)).toEqual({});
  });
});

describe('half-open circuits (one probe when a circuit re-closes, not the whole backlog)', () => {
  it.each([
    [0, 100, { kind: 'closed' }, Infinity], // never opened, or closed by an answer
    [150, 100, { kind: 'open', ms: 50 }, Infinity], // open: its requests are handed back unsent, they don't queue for a slot
    [100, 100, { kind: 'half-open' }, 1], // its time has come: one probe
    [40, 100, { kind: 'half-open' }, 1], // and stays half open until an answer says otherwise
  ])('opened until %i, now %i → %j, slot limit %s', (openedUntil, now, gate, limit) => {
    expect(circuitGate(openedUntil, now)).toEqual(gate);
    expect(slotLimit(circuitGate(openedUntil, now))).toBe(limit);
  });

  const openUrl = (h: EndpointHealth, l: Lane, at = 0) => {
    for (let i = 0; i < 5; i++) h.record(l, { kind: 'failure', error: 'x' }, at);
  };

  it.each([
    ['a 2xx closes it', { kind: 'success' } as const, { kind: 'closed' }, true],
    ['a failure opens it again, for twice as long', { kind: 'failure', error: 'x' } as const, { kind: 'open', ms: 60_000 }, undefined],
    ['Retry-After opens it for that long', { kind: 'retry-after', ms: 5_000 } as const, { kind: 'open', ms: 5_000 }, undefined],
    ['a paused process says nothing: still one probe', { kind: 'ignore' } as const, { kind: 'half-open' }, undefined],
  ])("the probe's answer: %s", (_, judgement, gate, closed) => {
    const h = new EndpointHealth();
    const l = lane('a', 'flaky');
    openUrl(h, l);
    expect(h.gate(l.url, 29_999)).toEqual({ kind: 'open', ms: 1 });
    expect(h.gate(l.url, 30_000)).toEqual({ kind: 'half-open' });
    const actions = h.record(l, judgement, 30_000);
    expect(actions.closed).toBe(closed);
    expect(h.gate(l.url, 30_000)).toEqual(gate);
  });

  it('a circuit that never opened is not half open after failures below the threshold', () => {
    const h = new EndpointHealth();
    const l = lane('a', 'wobbly');
    for (let i = 0; i < 4; i++) h.record(l, { kind: 'failure', error: 'x' }, i);
    expect(h.gate(l.url, 10)).toEqual({ kind: 'closed' });
  });

  it('FairSlots: one probe in flight; the rest start when the circuit closes', async () => {
    let limit = 1;
    const slots = new FairSlots(capsFor(32), (url) => (url.endsWith('/flaky') ? limit : Infinity));
    const log: string[] = [];
    const l = lane('a', 'flaky');
    for (let i = 0; i < 5; i++) void slots.acquire(l).then(() => log.push(`flaky${i}`));
    void slots.acquire(lane('a', 'fine')).then(() => log.push('fine'));
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['flaky0', 'fine']); // the probe; another URL of the host is not held up
    limit = Infinity; // the probe's answer closed it
    slots.wake(H);
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['flaky0', 'fine', 'flaky1', 'flaky2', 'flaky3', 'flaky4']);
  });
});
