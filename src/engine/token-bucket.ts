// Per-key token buckets (key = a tenant): `ratePerS` tokens a second up to `burst`.
// Pure arithmetic over an injected clock; state is per process (the limits are
// approximate across processes, by design: no shared counter on the hot path).
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly maxKeys = 100_000) {}

  /** Takes one token if available. Returns 0 if taken, else ms until one will be. */
  take(key: string, ratePerS: number, burst: number, now: number): number {
    if (ratePerS <= 0) return 0; // 0 = unlimited
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.buckets.clear();
      b = { tokens: burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * ratePerS);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / ratePerS) * 1000 - 1e-6);
  }
}
