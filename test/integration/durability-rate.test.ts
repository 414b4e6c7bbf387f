import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NativeConnection } from '@temporalio/worker';
import type { CcfsApi } from '../../activities';
import { CcfsClient } from '../../ccfs/client';
import { callbackKey } from '../../lib/callback-token';
import { ExportService } from '../../lib/export-service';
import { createWorkers, runWorkers } from '../../worker/create-workers';
import { testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, workflowBundle, type Stack } from '../support/stack';

/** The most calls in any window of `windowMs` that starts at a call. */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[j]! < sorted[i]! - windowMs + 1) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/**
 * Policy: the CC-FS calls of every export together stay under one configured rate. The limit is
 * Temporal's task-queue rate limit (`maxTaskQueueActivitiesPerSecond`) on `<queue>-ccfs`, enforced by
 * the server for all workers of the queue; the worker's `maxConcurrentActivityTaskExecutions` caps the
 * calls one worker runs at once. Measured here at the simulator, from when each call arrived.
 */
describe('rate governor', () => {
  const RATE = 4;
  const CONCURRENCY = 2;
  let stack: Stack;
  let exports: ExportService;
  let inFlight = 0;
  let maxInFlight = 0;
  let stopWorkers: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    stack = await startStack();
    // A worker of its own, on its own task queue, with a low limit.
    const taskQueue = `rate-${randomUUID()}`;
    exports = new ExportService(stack.client, {
      taskQueue,
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    });
    const client = new CcfsClient({ baseUrl: stack.sim.url, credentials: { ak: TEST_AK, sk: TEST_SK } });
    const counted = <T>(call: () => Promise<T>): Promise<T> => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      return call().finally(() => inFlight--);
    };
    const ccfs: CcfsApi = {
      queryBillData: (body, opts) => counted(() => client.queryBillData(body, opts)),
      downloadBillFile: (name, dest, opts) => counted(() => client.downloadBillFile(name, dest, opts)),
    };
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const workers = await createWorkers(
      {
        connection,
        namespace: 'default',
        taskQueue,
        ccfsCallsPerSecond: RATE,
        ccfsConcurrency: CONCURRENCY,
        workflowBundle: await workflowBundle(),
      },
      {
        ccfs,
        output: stack.output,
        callback: { baseUrl: stack.apiUrl, key: callbackKey(undefined, TEST_SK) },
        logger: stack.logger,
      },
    );
    const running = runWorkers(workers);
    stopWorkers = async () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running.catch(() => undefined);
      await connection.close();
    };
  });
  afterAll(async () => {
    await stopWorkers?.();
    await stack?.stop();
  });

  it('keeps the CC-FS calls of two concurrent exports within the configured rate and concurrency', async () => {
    // Three chunks each, all in flight at once: 6 queries and 6 downloads that would otherwise
    // reach CC-FS within a fraction of a second. Slow downloads make the concurrency cap matter.
    stack.sim.simulator.setFaults({ slowDownloadBytesPerSecond: 1_000_000 });
    const requests = [1, 2].map(() =>
      testRequest({
        from: '2024-03-01 00:00:00',
        to: '2024-03-10 00:00:00',
        options: { maxChunksInFlight: 3 },
      }),
    );
    await Promise.all(requests.map((r) => exports.start(r)));
    const results = await Promise.all(requests.map((r) => exports.result(r.exportId)));
    expect(results.map((r) => r.state)).toEqual(['completed', 'completed']);

    const state = stack.sim.simulator.inspect();
    const times = [...state.queries, ...state.downloads].map((c) => Date.parse(c.at));
    expect(times).toHaveLength(12);
    const span = Math.max(...times) - Math.min(...times);
    const stats = {
      calls: times.length,
      spanMs: span,
      max1s: maxInWindow(times, 1000),
      max2s: maxInWindow(times, 2000),
      max3s: maxInWindow(times, 3000),
      maxInFlight,
    };
    console.info('rate governor:', JSON.stringify(stats));
    // A token bucket allows a burst of about one second's worth on top of the rate: W·rate + rate.
    expect(stats.max1s).toBeLessThanOrEqual(2 * RATE);
    expect(stats.max2s).toBeLessThanOrEqual(3 * RATE);
    expect(stats.max3s).toBeLessThanOrEqual(4 * RATE);
    // 12 calls at 4/s cannot take less than (12 − burst)/rate seconds.
    expect(span).toBeGreaterThanOrEqual(((times.length - 2 * RATE) / RATE) * 1000);
    expect(maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
  });
});
