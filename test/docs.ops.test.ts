// The reference a user of this repository reads is all inside it: every relative link of
// the README, docs/ and client/README.md resolves to a file (and a heading, for #anchors)
// that exists, nothing points outside the repository (../shared, CONTRACT.md), and the
// CLI's --help sends people to docs/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnCli } from './support/process.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const DOCS = ['README.md', 'client/README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

describe('the documentation', () => {
  it.each(DOCS)('%s: every relative link resolves inside the repository', (file) => {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    for (const link of links) {
      const [target, anchor] = link.split('#') as [string, string | undefined];
      const resolved = target ? path.resolve(path.dirname(path.join(ROOT, file)), target) : path.join(ROOT, file);
      expect(resolved.startsWith(ROOT + path.sep), `${file}: ${link} leaves the repository`).toBe(true);
      expect(existsSync(resolved), `${file}: ${link}`).toBe(true);
      if (anchor && resolved.endsWith('.md')) {
        const headings = [...readFileSync(resolved, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1]!));
        expect(headings, `${file}: ${link}`).toContain(anchor);
      }
    }
  });

  it.each(DOCS)('%s: refers to nothing outside the repository', (file) => {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    expect(text).not.toMatch(/\.\.\/shared|CONTRACT\.md|CONTRACT §/);
  });

  it('`taskhook --help` points to docs/, which is there', async () => {
    const r = await spawnCli(['--help']).exited;
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/CONTRACT/);
    const cited = [...r.stdout.matchAll(/\bdocs\/[\w.-]+\.md\b/g)].map((m) => m[0]);
    expect(cited).toContain('docs/configuration.md');
    for (const f of cited) expect(existsSync(path.join(ROOT, f)), f).toBe(true);
  });
});
