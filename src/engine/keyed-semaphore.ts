// At most `limit` holders per key; the rest wait in arrival order. Used to cap the
// requests in flight to one callback origin independently of how many of its
// deliveries this process has claimed ahead.
export class KeyedSemaphore {
  private readonly held = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly limit: number) {}

  async acquire(key: string): Promise<void> {
    const n = this.held.get(key) ?? 0;
    if (n < this.limit) {
      this.held.set(key, n + 1);
      return;
    }
    await new Promise<void>((resolve) => {
      const q = this.waiting.get(key);
      if (q) q.push(resolve);
      else this.waiting.set(key, [resolve]);
    });
  }

  /** Hands the slot to the next waiter, if any (so the count doesn't dip and refill). */
  release(key: string): void {
    const q = this.waiting.get(key);
    const next = q?.shift();
    if (q && q.length === 0) this.waiting.delete(key);
    if (next) return next();
    const n = (this.held.get(key) ?? 1) - 1;
    if (n <= 0) this.held.delete(key);
    else this.held.set(key, n);
  }

  inUse(key: string): number {
    return this.held.get(key) ?? 0;
  }
}
