// Issue 12, finding 2, the pure parts: stored upstream answers are spliced into responses
// as their text (src/api/raw-json.ts) and shown in the dashboard by a formatter that
// never parses (src/dashboard/json-format.ts), so no depth or number can break either.
import { describe, expect, it } from 'vitest';
import { RawJson, stringifyWithRaw } from '../src/api/raw-json.js';
import { MAX_INDENT_DEPTH, formatJsonText } from '../src/dashboard/json-format.js';

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

describe('stringifyWithRaw', () => {
  it.each([
    ['{"a":1}'],
    ['{"n":1e999,"big":123456789012345678901234567890}'],
    ['{"k":1,"k":2}'],
    ['{"s":"\\ud800\\u0000"}'],
    [`{"x":${deep(5000)}}`],
    ['  {"padded": true}\n'],
  ])('splices %s verbatim', (text) => {
    const out = stringifyWithRaw({ id: 'w', task: new RawJson(text), list: [new RawJson(text)] });
    expect(out).toBe(`{"id":"w","task":${text},"list":[${text}]}`);
  });

  it('a stored string that looks like a placeholder stays a string', () => {
    const out = stringifyWithRaw({ a: 'raw-json-0', b: new RawJson('1') });
    expect(JSON.parse(out)).toEqual({ a: 'raw-json-0', b: 1 });
  });

  it('null and plain values are JSON.stringify', () => {
    expect(stringifyWithRaw({ task: null, n: 1 })).toBe('{"task":null,"n":1}');
  });

  it('outside stringifyWithRaw a RawJson serialises as its parsed value (shallow JSON only)', () => {
    expect(JSON.stringify({ t: new RawJson('{"a":[1]}') })).toBe('{"t":{"a":[1]}}');
  });
});

describe('formatJsonText', () => {
  it('indents like JSON.stringify(v, null, 2) for ordinary JSON', () => {
    const v = { task_id: 't', status: 'completed', n: [1, 2, { a: null }], e: {}, l: [], s: 'a "quoted" [x], {y}: z' };
    expect(formatJsonText(JSON.stringify(v)).text).toBe(JSON.stringify(v, null, 2));
  });

  it('keeps numbers, duplicate keys and escapes as sent', () => {
    expect(formatJsonText('{"n":1e999,"n":2,"s":"\\ud800\\\\"}').text).toBe('{\n  "n": 1e999,\n  "n": 2,\n  "s": "\\ud800\\\\"\n}');
  });

  it('5,000 levels: no stack overflow, indentation capped', () => {
    const f = formatJsonText(`{"x":${deep(5000)}}`);
    expect(f.truncated).toBe(false);
    const widest = Math.max(...f.text.split('\n').map((l) => l.length - l.trimStart().length));
    expect(widest).toBe(2 * MAX_INDENT_DEPTH);
  });

  it('cuts long output and says so', () => {
    const f = formatJsonText(`{"p":"${'x'.repeat(1 << 20)}"}`, 1000);
    expect(f.truncated).toBe(true);
    expect(f.text.length).toBeLessThanOrEqual(1000);
  });
});
