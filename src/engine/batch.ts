// Coalesces many small writes into one statement: items queue up for at most
// `maxDelayMs` (or until `maxSize`; 0 = to the end of this turn of the event loop,
// which batches whatever arrived together at no added latency), then one flush
// writes them all and each caller's promise settles with its own result.
//
// A failed flush is retried item by item at once (the flushes are single statements,
// so nothing of the failed one was written): a deadlock with a concurrent statement,
// or one row the database refuses, costs only the item it concerns, not the whole
// batch's leases. Only items that fail on their own are rejected. Not when the database
// is unreachable or shutting down: then every item fails at once, as one.
export class BatchWriter<T, R> {
  private queue: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  private timer: { cancel(): void } | undefined;
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
      else this.timer ??= this.schedule();
    });
  }

  /** Flush what is queued and wait for every flush in progress. */
  async drain(): Promise<void> {
    this.flushNow();
    await Promise.all(this.flushing);
  }

  private schedule(): { cancel(): void } {
    if (this.maxDelayMs === 0) {
      const i = setImmediate(() => this.flushNow());
      return { cancel: () => clearImmediate(i) };
    }
    const t = setTimeout(() => this.flushNow(), this.maxDelayMs);
    return { cancel: () => clearTimeout(t) };
  }

  private flushNow(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const p = this.flush(batch.map((b) => b.item)).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
      (err: unknown) => {
        if (batch.length === 1 || !isStatementError(err)) return batch.forEach((b) => b.reject(err));
        return Promise.all(
          batch.map((b) => this.flush([b.item]).then((r) => b.resolve(r[0]!), (e: unknown) => b.reject(e))),
        ).then(() => undefined);
      },
    );
    const tracked = p.finally(() => this.flushing.delete(tracked));
    this.flushing.add(tracked);
  }
}

/**
 * An error the server raised for this statement (it has a SQLSTATE), as opposed to the
 * connection failing: class 08 (connection), 53 (resources), 57 (shutdown, cancel) and
 * client-side errors (no SQLSTATE) mean retrying the items one by one would only fail more.
 */
export function isStatementError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|53|57)/.test(code);
}
