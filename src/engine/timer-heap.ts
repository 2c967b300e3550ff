// A binary min-heap of items by due time (ms): the in-memory schedule of the tasks a
// worker owns. O(log n) push and pop; an item is removed lazily (the owner marks it gone
// and skips it when it surfaces), so dropping a task costs nothing here.
export class TimerHeap<T> {
  private readonly due: number[] = [];
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(at: number, item: T): void {
    this.due.push(at);
    this.items.push(item);
    this.up(this.items.length - 1);
  }

  /** The earliest due time (undefined: empty). */
  peekDue(): number | undefined {
    return this.due[0];
  }

  /** Removes and returns the earliest item if it is due at or before `now`. */
  popDue(now: number): T | undefined {
    if (this.items.length === 0 || this.due[0]! > now) return undefined;
    const top = this.items[0]!;
    const lastDue = this.due.pop()!;
    const lastItem = this.items.pop()!;
    if (this.items.length > 0) {
      this.due[0] = lastDue;
      this.items[0] = lastItem;
      this.down(0);
    }
    return top;
  }

  clear(): void {
    this.due.length = 0;
    this.items.length = 0;
  }

  private up(i: number): void {
    const d = this.due[i]!;
    const it = this.items[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.due[p]! <= d) break;
      this.due[i] = this.due[p]!;
      this.items[i] = this.items[p]!;
      i = p;
    }
    this.due[i] = d;
    this.items[i] = it;
  }

  private down(i: number): void {
    const n = this.items.length;
    const d = this.due[i]!;
    const it = this.items[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.due[r]! < this.due[l]! ? r : l;
      if (this.due[c]! >= d) break;
      this.due[i] = this.due[c]!;
      this.items[i] = this.items[c]!;
      i = c;
    }
    this.due[i] = d;
    this.items[i] = it;
  }
}
