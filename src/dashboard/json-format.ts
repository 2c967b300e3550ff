// The dashboard's view of a stored upstream answer: the text re-indented for reading,
// without parsing it into objects (no recursion, so no depth can overflow the stack,
// and every number, duplicate key and escape is shown as upstream sent it).
// Past MAX_INDENT_DEPTH levels the rest is printed compactly and the output is cut at MAX_CHARS,
// so a hostile answer can't blow the page up either.

export const MAX_INDENT_DEPTH = 32;
export const MAX_CHARS = 256 * 1024;

export interface FormattedJson {
  text: string;
  /** true when the text was cut at MAX_CHARS */
  truncated: boolean;
}

/** Pretty-prints a JSON text token by token (strings are copied verbatim). */
export function formatJsonText(json: string, maxChars = MAX_CHARS): FormattedJson {
  const out: string[] = [];
  let size = 0;
  let depth = 0;
  const push = (s: string) => {
    out.push(s);
    size += s.length;
  };
  // past MAX_INDENT_DEPTH the rest is printed compactly, on the line it starts on
  const newline = () => {
    if (depth <= MAX_INDENT_DEPTH) push('\n' + '  '.repeat(depth));
  };
  let i = 0;
  const n = json.length;
  while (i < n && size < maxChars) {
    const ch = json[i]!;
    if (ch === '"') {
      // copy the whole string, escapes included
      let j = i + 1;
      while (j < n && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      push(json.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') {
      i++;
      continue;
    }
    if (ch === '{' || ch === '[') {
      // an empty {} or [] stays on one line
      let j = i + 1;
      while (j < n && /\s/.test(json[j]!)) j++;
      if (json[j] === (ch === '{' ? '}' : ']')) {
        push(ch === '{' ? '{}' : '[]');
        i = j + 1;
        continue;
      }
      push(ch);
      depth++;
      newline();
      i++;
      continue;
    }
    if (ch === '}' || ch === ']') {
      depth = Math.max(0, depth - 1);
      if (depth < MAX_INDENT_DEPTH) newline();
      push(ch);
      i++;
      continue;
    }
    if (ch === ',') {
      push(',');
      newline();
      i++;
      continue;
    }
    if (ch === ':') {
      push(': ');
      i++;
      continue;
    }
    // a number, true, false or null: up to the next structural character
    let j = i + 1;
    while (j < n && !'{}[],:" \n\r\t'.includes(json[j]!)) j++;
    push(json.slice(i, j));
    i = j;
  }
  const text = out.join('');
  const truncated = i < n || text.length > maxChars;
  return { text: truncated ? text.slice(0, maxChars) : text, truncated };
}
