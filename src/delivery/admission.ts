// Who may send now, and who may be claimed: the deliverer's isolation rules, pure.
//
// Four keys per delivery, nested: the host (`scheme://host:port`, the receiver's
// politeness ceiling), the tenant on that host, the callback URL (full string), and the
// tenant across hosts. While other URLs of the host have work, a URL may hold at most
// `perUrl` (¼) of the host's connections, and while other tenants do, a tenant at most
// `perTenantHost` (½). Alone on its host a URL may use ½ of it (one URL per receiver is
// the common self-hosted case) and a tenant ¾, so a newcomer always finds its share free
// at once: another URL of the same tenant the quarter the tenant has left, another tenant
// the quarter nobody may take. A URL that hangs, or a tenant whose URLs all do, leaves the
// rest of the host to everyone else, and waiting requests take freed slots round-robin
// across tenants, then across each tenant's URLs. See README "Fairness".

export interface Caps {
  /** requests in flight to one host (the politeness ceiling) */
  perHost: number;
  /** in flight to one callback URL while other URLs of its host have work: ¼ of the host's by default */
  perUrl: number;
  /** in flight for one tenant on one host while other tenants have work there: ½ of the host's by default */
  perTenantHost: number;
  /** in flight to a URL alone on its host: all but two quarters (another URL's, another tenant's) */
  aloneUrl: number;
  /** in flight for a tenant alone on its host: all but a quarter (another tenant's) */
  aloneTenant: number;
}

export function capsFor(perHost: number, o: { perUrl?: number | undefined; perTenantHost?: number | undefined } = {}): Caps {
  if (!Number.isInteger(perHost) || perHost < 1) throw new Error(`perHost must be a positive integer, got ${perHost}`);
  const perUrl = Math.min(perHost, o.perUrl ?? Math.max(1, Math.floor(perHost / 4)));
  const perTenantHost = Math.min(perHost, Math.max(perUrl, o.perTenantHost ?? Math.max(1, Math.floor(perHost / 2))));
  const aloneTenant = Math.max(perTenantHost, perHost - perUrl);
  return { perHost, perUrl, perTenantHost, aloneUrl: Math.min(aloneTenant, Math.max(perUrl, perHost - 2 * perUrl)), aloneTenant };
}

/** What a delivery is counted under. */
export interface Lane {
  host: string;
  url: string;
  tenant: string;
}

export const tenantHostKey = (l: Pick<Lane, 'tenant' | 'host'>) => `${l.tenant} ${l.host}`;

/** Counts per key (a multiset). */
export class Tally {
  private readonly counts = new Map<string, number>();
  inc(k: string): void {
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  dec(k: string): void {
    const n = (this.counts.get(k) ?? 1) - 1;
    if (n <= 0) this.counts.delete(k);
    else this.counts.set(k, n);
  }
  get(k: string): number {
    return this.counts.get(k) ?? 0;
  }
  entries(): Array<[string, number]> {
    return [...this.counts];
  }
  atLeast(limit: number): string[] {
    return [...this.counts].filter(([, n]) => n >= limit).map(([k]) => k);
  }
}

/** In-flight (or claimed) counts of one process along the four keys. */
export class Ledger {
  readonly host = new Tally();
  readonly url = new Tally();
  readonly tenantHost = new Tally();
  readonly tenant = new Tally();
  add(l: Lane): void {
    this.host.inc(l.host);
    this.url.inc(l.url);
    this.tenantHost.inc(tenantHostKey(l));
    this.tenant.inc(l.tenant);
  }
  remove(l: Lane): void {
    this.host.dec(l.host);
    this.url.dec(l.url);
    this.tenantHost.dec(tenantHostKey(l));
    this.tenant.dec(l.tenant);
  }
}

/**
 * May one more request of this lane start, given what is in flight and whether other URLs
 * (other tenants) of its host have work in flight or waiting? (Pure.)
 */
export function mayStart(
  inFlight: { host: number; url: number; tenantHost: number },
  shared: { urls: boolean; tenants: boolean },
  caps: Caps,
): boolean {
  return (
    inFlight.host < caps.perHost &&
    inFlight.url < (shared.urls ? caps.perUrl : caps.aloneUrl) &&
    inFlight.tenantHost < (shared.tenants ? caps.perTenantHost : caps.aloneTenant)
  );
}

/**
 * The claim's limits: how many rows this process may hold leased per key (sending or
 * waiting for a send slot): `ahead` times the in-flight caps, so the next requests are
 * leased and waiting when a slot frees rather than a claim round trip later.
 */
export interface ClaimCaps {
  perHost: number;
  perUrl: number;
  perTenantHost: number;
  perTenant: number;
}

/**
 * How far the deliverer claims ahead of its send slots (× the caps). The loop claims again
 * when a key's claimed rows fall to half of this (worker.ts, releaseClaim), so what is left
 * must outlast a claim's round trip: 2× left 12 rows of one host's 24 slots — one round
 * trip of the receiver — to cover a claim of 5–40 ms, and a one-origin burst drained at
 * ~530/s, most of it waiting for claims (bench/README.md, "The delivery bench"). At 8× the
 * half left is 4 × the slots. A hanging URL holds no more of its host's claims than before
 * in proportion (¼, ½), and what it claims and can't send in time is handed back unsent.
 */
export const CLAIM_AHEAD = 8;

export function claimCapsFor(caps: Caps, perTenant: number, ahead = CLAIM_AHEAD): ClaimCaps {
  // (per URL and tenant-on-host, what one alone may send: the send slots apply the shared caps)
  return { perHost: caps.perHost * ahead, perUrl: caps.aloneUrl * ahead, perTenantHost: caps.aloneTenant * ahead, perTenant };
}

/**
 * Which of the candidate rows (in queue order) a claim may take, given what is already
 * held: a row fits while each of its keys has room, counting the rows taken before it.
 * The claim statement applies the same rule in SQL (sql.ts, claimDeliveries); this is
 * its specification, table-tested.
 */
export function admitClaim<T extends Lane>(candidates: readonly T[], held: Ledger, caps: ClaimCaps): T[] {
  const taken = new Ledger();
  const out: T[] = [];
  for (const c of candidates) {
    const th = tenantHostKey(c);
    if (held.host.get(c.host) + taken.host.get(c.host) >= caps.perHost) continue;
    if (held.url.get(c.url) + taken.url.get(c.url) >= caps.perUrl) continue;
    if (held.tenantHost.get(th) + taken.tenantHost.get(th) >= caps.perTenantHost) continue;
    if (held.tenant.get(c.tenant) + taken.tenant.get(c.tenant) >= caps.perTenant) continue;
    taken.add(c);
    out.push(c);
  }
  return out;
}

/**
 * Send slots per host with per-URL and per-tenant-on-host caps, and fair hand-over: when
 * a slot frees, the waiting requests of that host are served round-robin across tenants,
 * then across each tenant's URLs, skipping any lane at its cap. In memory, per process.
 */
export class FairSlots {
  private readonly inFlight = new Ledger();
  /** host → tenant → url → waiters (Map order is the rotation: a served entry moves to the back) */
  private readonly waiting = new Map<string, Map<string, Map<string, Array<() => void>>>>();
  /** per host: requests in flight or waiting, by URL and by tenant (who else has work here?) */
  private readonly active = new Map<string, { urls: Tally; tenants: Tally; nUrls: number; nTenants: number }>();

  /**
   * `urlLimit`: a further limit per URL, asked each time (the circuit's gate, health.ts:
   * one probe while half open); after it rises, wake() its host.
   */
  constructor(
    readonly caps: Caps,
    private readonly urlLimit: (url: string) => number = () => Infinity,
  ) {}

  private activity(host: string) {
    let a = this.active.get(host);
    if (!a) this.active.set(host, (a = { urls: new Tally(), tenants: new Tally(), nUrls: 0, nTenants: 0 }));
    return a;
  }

  private join(l: Lane): void {
    const a = this.activity(l.host);
    if (a.urls.get(l.url) === 0) a.nUrls++;
    if (a.tenants.get(l.tenant) === 0) a.nTenants++;
    a.urls.inc(l.url);
    a.tenants.inc(l.tenant);
  }

  private leave(l: Lane): void {
    const a = this.activity(l.host);
    a.urls.dec(l.url);
    a.tenants.dec(l.tenant);
    if (a.urls.get(l.url) === 0) a.nUrls--;
    if (a.tenants.get(l.tenant) === 0) a.nTenants--;
    if (a.nUrls === 0) this.active.delete(l.host);
  }

  private fits(l: Lane): boolean {
    const a = this.active.get(l.host);
    if (this.inFlight.url.get(l.url) >= this.urlLimit(l.url)) return false;
    return mayStart(
      { host: this.inFlight.host.get(l.host), url: this.inFlight.url.get(l.url), tenantHost: this.inFlight.tenantHost.get(tenantHostKey(l)) },
      { urls: (a?.nUrls ?? 0) > 1, tenants: (a?.nTenants ?? 0) > 1 },
      this.caps,
    );
  }

  acquire(l: Lane): Promise<void> {
    this.join(l);
    if (this.fits(l)) {
      this.inFlight.add(l);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let tenants = this.waiting.get(l.host);
      if (!tenants) this.waiting.set(l.host, (tenants = new Map()));
      let urls = tenants.get(l.tenant);
      if (!urls) tenants.set(l.tenant, (urls = new Map()));
      const q = urls.get(l.url);
      if (q) q.push(resolve);
      else urls.set(l.url, [resolve]);
    });
  }

  release(l: Lane): void {
    this.inFlight.remove(l);
    this.leave(l);
    this.serve(l.host);
  }

  /** A limit rose (a circuit closed): hand the host's free slots to its waiters. */
  wake(host: string): void {
    this.serve(host);
  }

  /** Hands free slots of `host` to waiters: next tenant in rotation, its next URL in rotation, that fits. */
  private serve(host: string): void {
    const tenants = this.waiting.get(host);
    while (tenants && tenants.size > 0 && this.inFlight.host.get(host) < this.caps.perHost) {
      let served = false;
      for (const [tenant, urls] of tenants) {
        for (const [url, q] of urls) {
          if (!this.fits({ host, url, tenant })) continue;
          const next = q.shift()!;
          urls.delete(url);
          if (q.length > 0) urls.set(url, q); // to the back of this tenant's rotation
          tenants.delete(tenant);
          if (urls.size > 0) tenants.set(tenant, urls); // to the back of the host's rotation
          this.inFlight.add({ host, url, tenant });
          next();
          served = true;
          break;
        }
        if (served) break;
      }
      if (!served) break;
    }
    if (tenants && tenants.size === 0) this.waiting.delete(host);
  }

  inUse(key: { host?: string; url?: string }): number {
    return key.url !== undefined ? this.inFlight.url.get(key.url) : this.inFlight.host.get(key.host ?? '');
  }

  waiters(host: string): number {
    let n = 0;
    for (const urls of this.waiting.get(host)?.values() ?? []) for (const q of urls.values()) n += q.length;
    return n;
  }
}
