// Endpoint health: a circuit breaker per callback URL, and one per host that opens only
// when most of that host's recently attempted URLs have open circuits. What an answer
// says about its URL is a pure decision (judgeAttempt), as is when a host is down as a
// whole (hostIsDown); both table-tested. State is per process on purpose: the deferral a
// breaker triggers is written to the database, which is what all processes share.
import { Breaker, overranDeadline } from '../engine/breaker.js';
import type { SendResult } from './send.js';
import type { Lane } from './admission.js';

/** Retry-After is honoured up to an hour (CONTRACT §4). */
export const RETRY_AFTER_MAX_MS = 3_600_000;
/** A host opens as a whole only when at least this many of its URLs have open circuits… */
export const HOST_MIN_OPEN_URLS = 3;
/** …and they are more than half of the URLs attempted on it within this window. */
export const HOST_WINDOW_MS = 10 * 60_000;

export type Judgement =
  /** says nothing about the receiver (this process was paused, or never sent) */
  | { kind: 'ignore' }
  /** reachable and answering, even if it said no */
  | { kind: 'success' }
  | { kind: 'failure'; error: string }
  /** the URL asked us to come back later (429/503 with Retry-After) */
  | { kind: 'retry-after'; ms: number };

export function judgeAttempt(result: SendResult, deadlineMs: number): Judgement {
  const out = result.outcome;
  if (out.kind === 'error') {
    if (overranDeadline(result.durationMs, deadlineMs)) return { kind: 'ignore' }; // we were paused, not the receiver
    return { kind: 'failure', error: out.message };
  }
  if ((out.status === 429 || out.status === 503) && out.retryAfterMs !== undefined) {
    return { kind: 'retry-after', ms: Math.min(Math.max(0, out.retryAfterMs), RETRY_AFTER_MAX_MS) };
  }
  if (out.status < 500 && out.status !== 429) return { kind: 'success' };
  return { kind: 'failure', error: `receiver answered HTTP ${out.status}` };
}

/** A host's breaker opens when most of its recently attempted URLs are open. (Pure.) */
export function hostIsDown(openUrls: number, attemptedUrls: number, minOpen = HOST_MIN_OPEN_URLS): boolean {
  return openUrls >= minOpen && openUrls * 2 > attemptedUrls;
}

/**
 * What a URL's circuit lets through now, from when it last opened until (0: it has not, or
 * an answer closed it since). Once that time passes the circuit is half open: one probe,
 * not the URL's whole backlog at once (seen in a chaos soak: a receiver that came back
 * met every deferred webhook of the URL in the same second), until an answer closes it
 * or a failure opens it again for twice as long. (Pure.)
 */
export type Gate = { kind: 'closed' } | { kind: 'open'; ms: number } | { kind: 'half-open' };
export function circuitGate(openedUntil: number, now: number): Gate {
  if (openedUntil <= 0) return { kind: 'closed' };
  if (openedUntil > now) return { kind: 'open', ms: openedUntil - now };
  return { kind: 'half-open' };
}
/**
 * A further limit on the requests a URL may have in flight, from its gate: one probe while
 * half open, else none (the caps apply). An open circuit is no limit here: its requests take
 * a slot only to be handed back unsent at once (worker.ts), and must not queue for one. (Pure.)
 */
export function slotLimit(g: Gate): number {
  return g.kind === 'half-open' ? 1 : Infinity;
}

export type EndpointState = 'healthy' | 'failing' | 'open';

/** What the deliverer must do after recording an attempt. */
export interface HealthActions {
  /** push the URL's queued deliveries past this many ms (its circuit just opened or it sent Retry-After) */
  deferUrlMs?: number;
  /** push the whole host's queue past this many ms (most of its URLs are open) */
  deferHostMs?: number;
  /** an answer closed the URL's half-open circuit: its waiting requests may start */
  closed?: boolean;
  /** the URL's state changed (for the endpoint listing and metrics) */
  changed?: { state: EndpointState; openUntil: number | null; error: string | null };
}

interface UrlSeen {
  at: number;
  open: boolean;
}

export class EndpointHealth {
  readonly urls: Breaker;
  readonly hosts: Breaker;
  /** host → url → last verdict, for hostIsDown */
  private readonly seen = new Map<string, Map<string, UrlSeen>>();
  private readonly states = new Map<string, EndpointState>();

  constructor(o: { urls?: Breaker; hosts?: Breaker } = {}) {
    this.urls = o.urls ?? new Breaker({ threshold: 5, baseOpenMs: 30_000, maxOpenMs: 600_000 });
    this.hosts = o.hosts ?? new Breaker({ threshold: 1, baseOpenMs: 30_000, maxOpenMs: 600_000 });
  }

  /** ms this lane must wait (its URL's circuit, or its host's), else 0 */
  openFor(l: Lane, now: number): number {
    return Math.max(this.urls.openFor(l.url, now), this.hosts.openFor(l.host, now));
  }

  /** The URL's circuit now (see circuitGate). */
  gate(url: string, now: number): Gate {
    return circuitGate(this.urls.openedUntil(url), now);
  }

  /** Circuits open now, URLs and hosts (the gauge). */
  openCount(now: number): { urls: number; hosts: number } {
    let urls = 0;
    let hosts = 0;
    for (const m of this.seen.values()) for (const [url] of m) if (this.urls.openFor(url, now) > 0) urls++;
    for (const host of this.seen.keys()) if (this.hosts.openFor(host, now) > 0) hosts++;
    return { urls, hosts };
  }

  record(l: Lane, j: Judgement, now: number): HealthActions {
    if (j.kind === 'ignore') return {};
    const actions: HealthActions = {};
    let open = false;
    if (j.kind === 'success') {
      if (this.urls.openedUntil(l.url) > 0) actions.closed = true;
      this.urls.success(l.url);
      this.hosts.success(l.host);
    } else if (j.kind === 'retry-after') {
      if (this.urls.block(l.url, now, j.ms)) actions.deferUrlMs = j.ms;
      open = true;
    } else {
      const ms = this.urls.failure(l.url, now);
      if (ms > 0) actions.deferUrlMs = ms;
      open = this.urls.openFor(l.url, now) > 0;
    }
    const hostMs = this.noteHost(l, open, now);
    if (hostMs > 0) actions.deferHostMs = hostMs;
    const state: EndpointState = j.kind === 'success' ? 'healthy' : open ? 'open' : 'failing';
    if (this.states.get(l.url) !== state || actions.deferUrlMs !== undefined) {
      // (healthy is kept too: the first answer this process sees from a URL is reported, so
      // a recovery is recorded even when another process saw the failures)
      if (this.states.size >= 100_000) this.states.clear();
      this.states.set(l.url, state);
      actions.changed = {
        state,
        openUntil: state === 'open' ? now + this.urls.openFor(l.url, now) : null,
        error: j.kind === 'failure' ? j.error : j.kind === 'retry-after' ? `asked to retry after ${j.ms} ms` : null,
      };
    }
    return actions;
  }

  /** Updates the host's view of its URLs; returns ms the host's breaker just opened for, else 0. */
  private noteHost(l: Lane, open: boolean, now: number): number {
    let m = this.seen.get(l.host);
    if (!m) {
      if (this.seen.size >= 10_000) this.seen.clear();
      this.seen.set(l.host, (m = new Map()));
    }
    m.delete(l.url);
    m.set(l.url, { at: now, open });
    let attempted = 0;
    let openUrls = 0;
    for (const [url, s] of m) {
      if (now - s.at > HOST_WINDOW_MS || m.size > 1_000) {
        m.delete(url);
        continue;
      }
      attempted++;
      if (s.open && this.urls.openFor(url, now) > 0) openUrls++;
    }
    if (!open || !hostIsDown(openUrls, attempted) || this.hosts.openFor(l.host, now) > 0) return 0;
    return this.hosts.failure(l.host, now);
  }
}

/** What the API shows of a stored state: an open circuit whose time has passed is failing until an answer says otherwise. */
export const ENDPOINT_STATES = ['healthy', 'failing', 'circuit_open'] as const;
export type PublicEndpointState = (typeof ENDPOINT_STATES)[number];
export function publicState(state: string, openUntil: Date | null, now: number): PublicEndpointState {
  if (state === 'open') return openUntil !== null && openUntil.getTime() > now ? 'circuit_open' : 'failing';
  return state === 'failing' ? 'failing' : 'healthy';
}
