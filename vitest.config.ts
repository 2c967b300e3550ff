import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import the package by name (`taskhook/client`) as users do. Here each entry point of
// the package (client/package.json `exports`) is its source, src/<name>.ts (tsconfig's
// `paths` says the same to tsc).
const pkg = JSON.parse(readFileSync(new URL('./client/package.json', import.meta.url), 'utf8')) as { name: string; exports: Record<string, unknown> };
const selfImports = Object.keys(pkg.exports)
  .filter((sub) => sub !== './package.json')
  .map((sub) => ({ find: new RegExp(`^${pkg.name}/${sub.slice(2)}$`), replacement: fileURLToPath(new URL(`./src/${sub.slice(2)}.ts`, import.meta.url)) }));

export default defineConfig({
  resolve: { alias: selfImports },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: two files at a time (each with its own database and gateway processes).
    maxWorkers: 2,
    pool: 'forks',
  },
});
