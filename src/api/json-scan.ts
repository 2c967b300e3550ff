// What JSON.parse silently changes: it keeps the last of duplicate keys, turns 1e999 into
// Infinity (re-serialised as null) and rounds integers past 2^53 and decimals past 17
// significant digits. For metadata, which the gateway promises to echo (issue 12), that
// is data loss; this scanner finds those spots in the exact text so they can be refused.
// Iterative (no depth can overflow it); only called on text JSON.parse accepted.

export interface JsonTextIssue {
  /** where, as object keys and array indices from the top */
  path: Array<string | number>;
  message: string;
}

/** Why a JSON number literal can't come back as written (value-wise), or undefined. */
export function numberProblem(literal: string): string | undefined {
  const n = Number(literal);
  if (!Number.isFinite(n)) return `the number ${literal} is out of range (a JSON number here must be within ±1.7976931348623157e308)`;
  const m = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  if (!m) return undefined;
  const significant = `${m[1]}${m[2] ?? ''}`.replace(/^0+/, '').replace(/0+$/, '');
  if (significant.length > 17) return `the number ${literal} has more than 17 significant digits and would be rounded`;
  if (m[2] === undefined && m[3] === undefined && !Number.isSafeInteger(n)) {
    return `the integer ${literal} is beyond ±9007199254740991 and would be rounded (send it as a string)`;
  }
  return undefined;
}

type Frame = { kind: 'object'; keys: Set<string>; key: string | undefined } | { kind: 'array'; index: number };

/** Duplicate keys and numbers that would not survive JSON.parse, in a valid JSON text. */
export function scanJsonText(text: string, limit = 20): JsonTextIssue[] {
  const issues: JsonTextIssue[] = [];
  const stack: Frame[] = [];
  const path = (extra?: string | number): Array<string | number> => {
    const p: Array<string | number> = [];
    for (const f of stack) {
      if (f.kind === 'object') {
        if (f.key !== undefined) p.push(f.key);
      } else p.push(f.index);
    }
    if (extra !== undefined) p.push(extra);
    return p;
  };
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n && issues.length < limit) {
    const ch = text[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top?.kind === 'object') {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          top.key = undefined;
          issues.push({ path: path(key), message: `duplicate key ${JSON.stringify(key)}` });
        }
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (ch === '{') {
      stack.push({ kind: 'object', keys: new Set(), key: undefined });
      expectKey = true;
    } else if (ch === '[') {
      stack.push({ kind: 'array', index: 0 });
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      const top = stack[stack.length - 1];
      if (top?.kind === 'array') top.index++;
      else if (top) expectKey = true;
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      let j = i + 1;
      while (j < n && /[0-9eE.+-]/.test(text[j]!)) j++;
      const problem = numberProblem(text.slice(i, j));
      if (problem) issues.push({ path: path(), message: problem });
      i = j;
      continue;
    }
    i++;
  }
  return issues;
}
