import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CcfsApi } from '../../activities';
import { CcfsClient } from '../../ccfs/client';
import { chunkWorkflowId, type ChunkResult } from '../../workflows/definitions';
import { activityRuns } from '../e2e/support/history';
import { readManifest, testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';

/**
 * Policy: permanent errors — bad credentials, a locked IP, a parameter CC-FS rejects — fail at once,
 * with a message that says what to fix, and without a storm of repeated calls.
 */
describe('permanent CC-FS errors', () => {
  let stack: Stack;
  /** The SK the worker's CC-FS client signs with; a wrong one makes CC-FS answer 401. */
  let sk = TEST_SK;

  beforeAll(async () => {
    stack = await startStack({
      wrapCcfs: (_real, sim): CcfsApi => {
        const client = (key: string) =>
          new CcfsClient({ baseUrl: sim.url, credentials: { ak: TEST_AK, sk: key } });
        return {
          queryBillData: (body, opts) => client(sk).queryBillData(body, opts),
          downloadBillFile: (name, dest, opts) => client(sk).downloadBillFile(name, dest, opts),
        };
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
    sk = TEST_SK;
  });

  it('fails on a 401 after one call, names the cause, and starts no further chunk', async () => {
    sk = 'not-the-secret-key';
    // Five chunks, one at a time: without the stop, every chunk would send its own bad signature.
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-16 00:00:00',
      options: { maxChunksInFlight: 1 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed_with_failures');
    // One call reached CC-FS: no retry of the 401 and no other chunk tried.
    expect(stack.sim.simulator.inspect().queries.map((q) => q.outcome)).toEqual(['http401']);
    const [query] = await activityRuns(stack.client, chunkWorkflowId(request.exportId, 0), 'requestChunk');
    expect(query).toMatchObject({ outcome: 'failed', attempts: 1, failure: { type: 'CcfsAuthRejected' } });

    expect(result.failedChunks.map((c) => [c.index, c.errorType])).toEqual([
      [0, 'CcfsAuthRejected'],
      [1, 'NotAttempted'],
      [2, 'NotAttempted'],
      [3, 'NotAttempted'],
      [4, 'NotAttempted'],
    ]);
    expect(result.failedChunks[0]!.error).toMatch(/HTTP 401.*check the AK\/SK pair/);
    expect(result.failedChunks[1]!.error).toMatch(/^not attempted: chunk 0 failed with CcfsAuthRejected/);
    const manifest = await readManifest(result.manifestPath);
    expect(manifest.totals).toMatchObject({ chunks: 5, failed: 5, pending: 0, verified: 0 });
    expect((manifest.chunks[0] as ChunkResult).errorType).toBe('CcfsAuthRejected');
    expect((manifest.chunks[4] as ChunkResult).errorType).toBe('NotAttempted');
    // The message names what to fix, never the key itself.
    expect(JSON.stringify(manifest)).not.toContain(sk);
  });

  it('runs the chunks again once the credentials are fixed and the export is retried', async () => {
    sk = 'not-the-secret-key';
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-07 00:00:00',
      options: { maxChunksInFlight: 1 },
    });
    await stack.exports.start(request);
    expect((await stack.exports.result(request.exportId)).state).toBe('completed_with_failures');

    sk = TEST_SK;
    const retried = await stack.exports.retry(request.exportId);
    expect(retried).toMatchObject({ created: true });
    const result = await stack.exports.result(request.exportId);
    expect(result).toMatchObject({ state: 'completed', counts: { verified: 2, failed: 0 } });
  });

  it('fails a chunk CC-FS rejects as a bad parameter after one call per chunk, and goes on with the others', async () => {
    // This CC-FS refuses queries over a day with a 0300004 that names another parameter: a setting to
    // fix, not a transient fault. (A refusal that names beginTime/endTime or says the range is too
    // long is not permanent: the export splits the range, see export-span.test.ts.)
    stack.sim.simulator.setOptions({
      maxSpanSeconds: 86_400,
      spanRefusalDesc: 'callerNo has a wrong format',
    });
    const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-05 00:00:00' });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed_with_failures');
    // Chunks: 3 days (rejected) and 1 day (accepted); each query sent once.
    const queries = stack.sim.simulator.inspect().queries;
    expect(queries.map((q) => q.outcome).sort()).toEqual(['0', '0300004']);
    expect(result.failedChunks).toEqual([
      expect.objectContaining({
        index: 0,
        errorType: 'CcfsBadRequest',
        error: expect.stringMatching(/0300004.*retrying will not help/) as unknown,
      }),
    ]);
    expect(result.counts).toMatchObject({ verified: 1, failed: 1 });
  });
});
