// Stored JSON text (upstream's task snapshots) served as the bytes it is.
//
// Issue 12: a watch object used to carry `JSON.parse(snapshot)`, re-serialised into every
// response. An upstream answering 5,000 levels of nesting (≈10 KB) made that overflow the
// stack, and every endpoint that returns a watch answered 500 — even POST/DELETE/redeliver
// after doing their work; 1e999 came back as null, big integers rounded, duplicate keys
// collapsed. Now the watch holds a RawJson and responses splice the stored text in.
import { randomBytes } from 'node:crypto';

/** Placeholders are unguessable, so no stored string can be mistaken for one. */
const MARK = `raw-json-${randomBytes(16).toString('hex')}-`;
const MARK_RE = new RegExp(`"${MARK}(\\d+)"`, 'g');

/** the texts collected by the stringifyWithRaw call in progress (it is synchronous) */
let collecting: string[] | undefined;

/** A JSON text already validated (the poller parsed it once), kept as is. */
export class RawJson {
  constructor(readonly text: string) {}

  /**
   * Inside stringifyWithRaw: a placeholder spliced out afterwards. Anywhere else (a
   * caller that serialised a watch some other way) the parsed value, which is only
   * safe for shallow JSON — serve watches with jsonResponse().
   */
  toJSON(): unknown {
    if (collecting) return `${MARK}${collecting.push(this.text) - 1}`;
    return JSON.parse(this.text);
  }
}

/** JSON.stringify, with every RawJson replaced by its text, untouched. */
export function stringifyWithRaw(value: unknown): string {
  const outer = collecting;
  const texts: string[] = [];
  collecting = texts;
  let out: string;
  try {
    out = JSON.stringify(value);
  } finally {
    collecting = outer;
  }
  return texts.length === 0 ? out : out.replace(MARK_RE, (_, i: string) => texts[Number(i)]!);
}
