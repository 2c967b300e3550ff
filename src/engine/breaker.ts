// A per-key circuit breaker (key = a callback endpoint, or a tenant's upstream):
// after `threshold` consecutive failures it opens for an exponentially growing
// while; the caller defers the key's queued work until then, in the database, so
// an endpoint that keeps failing doesn't burn the retry budget of every event.
// State is per process on purpose: the deferral it triggers is what all processes share.
/**
 * A request that took longer than its own deadline by more than this was not slow at the
 * other end: this process was frozen or starved (SIGSTOP, a long GC pause, an overloaded
 * box) and its timers fired late. Such a failure says nothing about the endpoint or the
 * upstream, and must not open a breaker — whose deferral every process shares (found by
 * the soak: one worker resumed from SIGSTOP opened the circuit of every healthy receiver).
 */
export const PAUSED_OVERRUN_MS = 1_000;
export const overranDeadline = (tookMs: number, deadlineMs: number) => tookMs > deadlineMs + PAUSED_OVERRUN_MS;

export interface BreakerOptions {
  threshold?: number;
  baseOpenMs?: number;
  maxOpenMs?: number;
  maxKeys?: number;
}

interface State {
  failures: number;
  opens: number;
  openUntil: number;
}

export class Breaker {
  private readonly states = new Map<string, State>();
  private readonly threshold: number;
  private readonly baseOpenMs: number;
  private readonly maxOpenMs: number;
  private readonly maxKeys: number;

  constructor(o: BreakerOptions = {}) {
    this.threshold = o.threshold ?? 5;
    this.baseOpenMs = o.baseOpenMs ?? 30_000;
    this.maxOpenMs = o.maxOpenMs ?? 600_000;
    this.maxKeys = o.maxKeys ?? 100_000;
  }

  /** ms left while open, else 0. */
  openFor(key: string, now: number): number {
    const s = this.states.get(key);
    return s && s.openUntil > now ? s.openUntil - now : 0;
  }

  /**
   * When the key's circuit last opened until (ms), while no success has closed it since;
   * 0 if it has not opened (or a success closed it). Past `now`: the circuit is half open.
   */
  openedUntil(key: string): number {
    return this.states.get(key)?.openUntil ?? 0;
  }

  success(key: string): void {
    this.states.delete(key);
  }

  /** Records a failure; returns how long the breaker just opened for (ms), or 0 if it did not open now. */
  failure(key: string, now: number): number {
    const s = this.state(key);
    s.failures++;
    if (s.openUntil > now || s.failures < this.threshold) return 0;
    const ms = Math.min(this.maxOpenMs, this.baseOpenMs * 2 ** s.opens);
    s.opens++;
    s.openUntil = now + ms;
    return ms;
  }

  /** The server told us when to come back (Retry-After): open until then. Returns whether that extended it. */
  block(key: string, now: number, ms: number): boolean {
    const s = this.state(key);
    if (s.openUntil >= now + ms) return false;
    s.openUntil = now + ms;
    return true;
  }

  private state(key: string): State {
    let s = this.states.get(key);
    if (!s) {
      if (this.states.size >= this.maxKeys) this.states.clear();
      s = { failures: 0, opens: 0, openUntil: 0 };
      this.states.set(key, s);
    }
    return s;
  }
}
