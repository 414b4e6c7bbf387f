import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  WORKER_MAX_CACHED_WORKFLOWS,
  WORKER_MEMORY_ENV,
  WORKER_NODE_FLAGS,
  workerNodeOptions,
} from '../../worker/memory-settings';

/** Every place that starts a worker starts it with the same memory settings (issue 14, target 4). */

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${root}/${path}`, 'utf8');

describe('worker memory settings', () => {
  it('are the image environment, for every role started from the Dockerfile', () => {
    const dockerfile = read('Dockerfile');
    expect(/NODE_OPTIONS="([^"]*)"/.exec(dockerfile)?.[1]).toBe(workerNodeOptions());
    expect(/MALLOC_ARENA_MAX=(\S+)/.exec(dockerfile)?.[1]).toBe(WORKER_MEMORY_ENV.MALLOC_ARENA_MAX);
  });

  it('bound both V8 spaces and keep a workflow cache larger than the one the SDK derives from that heap', () => {
    const flag = (name: string) =>
      Number(WORKER_NODE_FLAGS.find((f) => f.startsWith(`--${name}=`))?.split('=')[1] ?? NaN);
    expect(flag('max-old-space-size')).toBeGreaterThan(0);
    expect(flag('max-semi-space-size')).toBeGreaterThan(0);
    // The SDK's default for a heap limit of that size (reuseV8Context): at most a handful of workflows.
    const sdkDefault = Math.max(Math.floor((Math.max(flag('max-old-space-size') - 200, 0) * 600) / 1024), 10);
    expect(WORKER_MAX_CACHED_WORKFLOWS).toBeGreaterThan(sdkDefault * 10);
  });

  it('are applied by npm start (dev/launcher.ts) and by the bench, from this one module', () => {
    for (const file of ['dev/launcher.ts', 'bench/lib/stack.ts']) {
      const source = read(file);
      expect(source, file).toMatch(/from '(\.\.\/)+worker\/memory-settings'/);
      expect(source, file).toContain('workerNodeOptions()');
    }
    expect(read('worker/create-workers.ts')).toContain('maxCachedWorkflows: WORKER_MAX_CACHED_WORKFLOWS');
  });
});
