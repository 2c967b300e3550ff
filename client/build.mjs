// Builds the `taskhook` package (npm pack ./client runs it as prepack): compiles the
// client and the verifier with declarations into dist/, copies the repository's LICENSE,
// and refuses a build that reaches anything but the three client modules (server code,
// zod, hono, drizzle would make the package neither small nor dependency-free).
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const here = import.meta.dirname;
const ALLOWED = new Set(['client', 'verify', 'api-types']);

rmSync(path.join(here, 'dist'), { recursive: true, force: true });
const tsc = createRequire(path.join(here, '..', 'package.json')).resolve('typescript/bin/tsc');
// tsc's output to stderr: stdout stays clean for `npm pack --json`
execFileSync(process.execPath, [tsc, '-p', path.join(here, 'tsconfig.json')], { stdio: ['ignore', 2, 2] });
copyFileSync(path.join(here, '..', 'LICENSE'), path.join(here, 'LICENSE'));

const files = readdirSync(path.join(here, 'dist'), { recursive: true }).map(String);
const stray = files.filter((f) => !ALLOWED.has(f.replace(/\.(d\.ts|js)$/, '')));
if (stray.length) throw new Error(`client/dist must hold only ${[...ALLOWED].join(', ')}; the build reached ${stray.join(', ')}`);
for (const f of files) {
  const text = readFileSync(path.join(here, 'dist', f), 'utf8');
  const imports = [...text.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)].map((m) => m[1] ?? m[2]);
  const foreign = imports.filter((i) => !i.startsWith('node:') && !ALLOWED.has(i.replace(/^\.\//, '').replace(/\.js$/, '')));
  if (foreign.length) throw new Error(`client/dist/${f} imports ${foreign.join(', ')}: the package has no dependencies`);
}
process.stderr.write(`client/dist: ${files.sort().join(', ')}\n`);
