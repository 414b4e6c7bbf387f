import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CcfsApi } from '../../activities';
import { chunkWorkflowId, type ChunkResult } from '../../workflows/definitions';
import { activityRuns } from '../e2e/support/history';
import { readManifest, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

/** Policy: a callback that does not come in time leads to a new request, a bounded number of times. */
describe('callback timeout', () => {
  let stack: Stack;
  /** Called before each queryBillData the activities make, with its number (to set faults for it). */
  let beforeQuery: ((n: number) => void) | undefined;
  let queries = 0;

  beforeAll(async () => {
    stack = await startStack({
      wrapCcfs: (real): CcfsApi => ({
        queryBillData(body, opts) {
          beforeQuery?.(++queries);
          return real.queryBillData(body, opts);
        },
        downloadBillFile: (name, dest, opts) => real.downloadBillFile(name, dest, opts),
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
    queries = 0;
    beforeQuery = undefined;
  });

  it('requests the chunk again when the first callback never comes, and verifies it with the second', async () => {
    // The first request's callback is dropped and its file gone (0300011) when the chunk probes for it
    // before requesting again; from the second request on, callbacks and files are delivered.
    beforeQuery = (n) =>
      stack.sim.simulator.setFaults({ dropCallback: n === 1 ? 1 : 0, expireFiles: n === 1 ? 1 : 0 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 2 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const state = stack.sim.simulator.inspect();
    expect(state.queries.map((q) => q.outcome)).toEqual(['0', '0']);
    const [first, second] = state.queries.map((q) => q.responseId!);
    expect(state.faults.filter((f) => f.fault === 'dropCallback').map((f) => f.responseId)).toEqual([first]);
    expect(state.callbacks.map((c) => c.responseId)).toEqual([second]);

    const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
    expect(chunk).toMatchObject({
      state: 'verified',
      requests: 2,
      responseIds: [first, second],
      billFileName: state.queries[1]!.billFileName,
    });
    const requests = await activityRuns(stack.client, chunkWorkflowId(request.exportId, 0), 'requestChunk');
    expect(requests.map((r) => r.outcome)).toEqual(['completed', 'completed']);
  });

  it('gives up after maxRequestsPerChunk requests without a callback and names the cause', async () => {
    // No callback, and no file under its documented name either (0300011 to every probe).
    stack.sim.simulator.setFaults({ dropCallback: 1, expireFiles: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 1, maxRequestsPerChunk: 3 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed_with_failures');
    expect(result.failedChunks).toEqual([
      expect.objectContaining({
        index: 0,
        state: 'failed',
        errorType: 'CallbackTimeout',
        error: expect.stringContaining('CALLBACK_BASE_URL') as unknown,
      }),
    ]);
    // Exactly maxRequestsPerChunk requests, then no more.
    expect(stack.sim.simulator.inspect().queries).toHaveLength(3);
    // Only probes, each answered "no such file".
    expect(stack.sim.simulator.inspect().downloads.every((d) => d.outcome === '0300011')).toBe(true);
    const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
    expect(chunk).toMatchObject({ state: 'failed', requests: 3, errorType: 'CallbackTimeout' });
    expect(chunk.responseIds).toHaveLength(3);
  });
});
