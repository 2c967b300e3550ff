// Coalesces many small writes into one statement: items queue up for at most
// `maxDelayMs` (or until `maxSize`), then one flush writes them all and each
// caller's promise settles with its own result. A failed flush fails every item
// in it (their leases expire and the work comes back), never just some.
export class BatchWriter<T, R> {
  private queue: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing = new Set<Promise<void>>();

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly maxSize = 500,
    private readonly maxDelayMs = 10,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxSize) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), this.maxDelayMs);
    });
  }

  /** Flush what is queued and wait for every flush in progress. */
  async drain(): Promise<void> {
    this.flushNow();
    await Promise.all(this.flushing);
  }

  private flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const p = this.flush(batch.map((b) => b.item)).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    );
    const tracked = p.finally(() => this.flushing.delete(tracked));
    this.flushing.add(tracked);
  }
}
