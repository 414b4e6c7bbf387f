import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], typecheck: { enabled: false } },
      },
      {
        // Real HTTP between real modules (client, simulator, API), no Temporal server.
        test: {
          name: 'component',
          include: ['test/component/**/*.test.ts'],
          pool: 'forks',
          testTimeout: 60_000,
        },
      },
      {
        // Recorded histories replayed against the current workflow bundle: no server, but the native
        // replay worker, so a process of its own.
        test: {
          name: 'replay',
          include: ['test/replay/*.test.ts'],
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
