import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import the package by name (`taskhook/client`) as users do. Vite doesn't resolve
// a package's imports of itself, so map each export to its "source" condition (src/*.ts).
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  name: string;
  exports?: Record<string, string | { source?: string }>;
};
const selfImports = Object.entries(pkg.exports ?? {}).flatMap(([sub, target]) =>
  typeof target === 'object' && target.source
    ? [{ find: new RegExp(`^${pkg.name}${sub.slice(1)}$`), replacement: fileURLToPath(new URL(target.source, import.meta.url)) }]
    : [],
);

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
