// Who may send now, and who may be claimed: the deliverer's isolation rules, pure.
//
// Four keys per delivery, nested: the host (`scheme://host:port`, the receiver's
// politeness ceiling), the tenant on that host, the callback URL (full string), and the
// tenant across hosts. A URL may hold at most `perUrl` (¼) of its host's connections and
// a tenant at most `perTenantHost` (½): a URL that hangs, or a tenant whose URLs all do,
// leaves the rest of the host's slots to everyone else, and waiting requests take freed
// slots round-robin across tenants, then across each tenant's URLs. See README "Fairness".

export interface Caps {
  /** requests in flight to one host (the politeness ceiling) */
  perHost: number;
  /** in flight to one callback URL: ¼ of the host's by default */
  perUrl: number;
  /** in flight for one tenant on one host: ½ of the host's by default */
  perTenantHost: number;
}

export function capsFor(perHost: number, o: { perUrl?: number | undefined; perTenantHost?: number | undefined } = {}): Caps {
  if (!Number.isInteger(perHost) || perHost < 1) throw new Error(`perHost must be a positive integer, got ${perHost}`);
  const perUrl = Math.min(perHost, o.perUrl ?? Math.max(1, Math.floor(perHost / 4)));
  const perTenantHost = Math.min(perHost, Math.max(perUrl, o.perTenantHost ?? Math.max(1, Math.floor(perHost / 2))));
  return { perHost, perUrl, perTenantHost };
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

/** May one more request of this lane start, given what is in flight? (Pure.) */
export function mayStart(inFlight: { host: number; url: number; tenantHost: number }, caps: Caps): boolean {
  return inFlight.host < caps.perHost && inFlight.url < caps.perUrl && inFlight.tenantHost < caps.perTenantHost;
}

/**
 * The claim's limits: how many rows this process may hold leased per key (sending or
 * waiting for a send slot). Twice the in-flight caps, so the next requests are leased
 * and waiting when a slot frees rather than a claim round trip later.
 */
export interface ClaimCaps {
  perHost: number;
  perUrl: number;
  perTenantHost: number;
  perTenant: number;
}

export function claimCapsFor(caps: Caps, perTenant: number): ClaimCaps {
  return { perHost: caps.perHost * 2, perUrl: caps.perUrl * 2, perTenantHost: caps.perTenantHost * 2, perTenant };
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

  constructor(readonly caps: Caps) {}

  private fits(l: Lane): boolean {
    return mayStart(
      { host: this.inFlight.host.get(l.host), url: this.inFlight.url.get(l.url), tenantHost: this.inFlight.tenantHost.get(tenantHostKey(l)) },
      this.caps,
    );
  }

  acquire(l: Lane): Promise<void> {
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
    this.serve(l.host);
  }

  /** Hands free slots of `host` to waiters: next tenant in rotation, its next URL in rotation, that fits. */
  private serve(host: string): void {
    const tenants = this.waiting.get(host);
    while (tenants && tenants.size > 0 && this.inFlight.host.get(host) < this.caps.perHost) {
      let served = false;
      for (const [tenant, urls] of tenants) {
        if (this.inFlight.tenantHost.get(tenantHostKey({ tenant, host })) >= this.caps.perTenantHost) continue;
        for (const [url, q] of urls) {
          if (this.inFlight.url.get(url) >= this.caps.perUrl) continue;
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
