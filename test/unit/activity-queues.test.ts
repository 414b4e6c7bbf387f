import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  createCcfsActivities,
  createMainActivities,
  type ActivityDeps,
  type CcfsActivities,
  type MainActivities,
} from '../../activities';
import { OutputStore } from '../../activities/output-store';
import { silentLogger } from '../../lib/logger';
import type { proxyCcfsActivities, proxyMainActivities } from '../../workflows/activity-proxies';

type MainProxy = ReturnType<typeof proxyMainActivities>;
type CcfsProxy = ReturnType<typeof proxyCcfsActivities>;

const dir = mkdtempSync(join(tmpdir(), 'ccfs-activity-queues-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const deps: ActivityDeps = {
  // Never called: these tests only list what each factory registers.
  ccfs: () => {
    throw new Error('no CC-FS call expected');
  },
  output: new OutputStore(dir),
  callback: { baseUrl: 'http://127.0.0.1:1', key: 'k'.repeat(32) },
  logger: silentLogger,
};

describe('activities split by task queue (issue 15, item 5)', () => {
  // The assertions of this test are checked by `npm run typecheck` (tsc), which fails if they do not hold.
  it('a CC-FS activity proxied through the main-queue type does not compile, nor a queue given to a helper', () => {
    expectTypeOf<MainProxy>().not.toHaveProperty('requestChunk');
    expectTypeOf<MainProxy>().not.toHaveProperty('downloadChunk');
    expectTypeOf<MainProxy>().toHaveProperty('saveChunkResult');
    expectTypeOf<MainProxy>().toHaveProperty('loadChunk');
    expectTypeOf<CcfsProxy>().toHaveProperty('requestChunk');
    expectTypeOf<CcfsProxy>().not.toHaveProperty('saveChunkResult');
    expectTypeOf<CcfsProxy>().not.toHaveProperty('loadChunk');

    // As a workflow would write it: each line below must stay a type error.
    const misuse = (main: MainProxy, proxyMain: typeof proxyMainActivities) => {
      // @ts-expect-error requestChunk is registered only on the CC-FS task queue
      const { requestChunk } = main;
      // @ts-expect-error the helper names the queue itself; no caller may pick another
      const other = proxyMain({ startToCloseTimeout: '1 minute', taskQueue: 'ccfs-export-ccfs' });
      return [requestChunk, other] as unknown[];
    };
    expect(typeof misuse).toBe('function');
  });

  it('each factory registers exactly its queue’s activities, under the names the histories record', () => {
    const ccfs: (keyof CcfsActivities)[] = ['requestChunk', 'downloadChunk'];
    const main: (keyof MainActivities)[] = [
      'saveChunkResult',
      'saveChunkResults',
      'prepareExport',
      'writeManifest',
      'loadChunk',
      'listLoadableChunks',
      'saveChunkLoad',
    ];
    expect(Object.keys(createCcfsActivities(deps)).sort()).toEqual([...ccfs].sort());
    expect(Object.keys(createMainActivities(deps)).sort()).toEqual([...main].sort());
  });
});
