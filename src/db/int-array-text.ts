// A Postgres array literal of integers ('{1,-2,3}'), written as ASCII into one reused
// buffer: a column of thousands of numbers becomes one string, with nothing allocated per
// element. (postgres.js serialises a JS array by making, escaping and quoting a string per
// element; for the checkpoint's batches of thousands of rows, held while the statement ran,
// that was the largest share of what the gateway's young generation promoted: bench/README
// "round 4".) Pass `col.text()` as a parameter cast to the array type (`${t}::int[]`).
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const COMMA = 0x2c;
const MINUS = 0x2d;
const ZERO = 0x30;

export class IntArrayText {
  private buf: Buffer;
  private len = 0;
  private count = 0;

  constructor(initialBytes = 4096) {
    this.buf = Buffer.allocUnsafe(Math.max(64, initialBytes));
    this.reset();
  }

  /** elements pushed since the last reset */
  get size(): number {
    return this.count;
  }

  reset(): void {
    this.buf[0] = OPEN;
    this.len = 1;
    this.count = 0;
  }

  /** Appends `v` rounded to an integer (|v| < 2⁵³). */
  push(v: number): void {
    let n = Math.round(v);
    if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${v}`);
    // at most '-' + 16 digits + ',' + the closing '}'
    if (this.len + 19 > this.buf.length) this.grow();
    const b = this.buf;
    if (this.count++ > 0) b[this.len++] = COMMA;
    if (n < 0) {
      b[this.len++] = MINUS;
      n = -n;
    }
    const start = this.len;
    do {
      const q = Math.floor(n / 10);
      b[this.len++] = ZERO + (n - q * 10);
      n = q;
    } while (n > 0);
    // the digits went in least significant first
    for (let i = start, j = this.len - 1; i < j; i++, j--) {
      const c = b[i]!;
      b[i] = b[j]!;
      b[j] = c;
    }
  }

  /** The literal of everything pushed since the last reset. */
  text(): string {
    this.buf[this.len] = CLOSE;
    return this.buf.toString('latin1', 0, this.len + 1);
  }

  private grow(): void {
    const next = Buffer.allocUnsafe(this.buf.length * 2);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}
