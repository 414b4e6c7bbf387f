import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Recording histories for the replay test: real runs against the real Temporal dev server. Its own
 * config so that `npm test` never records (the files are `*.record.ts`, which no project includes).
 */
export default defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  test: {
    name: 'record-histories',
    include: ['test/replay/record/**/*.record.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
