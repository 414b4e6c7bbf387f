import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CcfsApi } from '../../activities';
import { CcfsClient } from '../../ccfs/client';
import { DOWNLOAD_BILL_FILE_PATH, QUERY_BILL_DATA_PATH } from '../../ccfs/protocol';
import { chunkWorkflowId, type ChunkResult } from '../../workflows/definitions';
import { startFaultProxy, type FaultProxy } from '../e2e/support/fault-proxy';
import { activityRuns } from '../e2e/support/history';
import { readManifest, testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';

/**
 * Policy: flow control (0300008/0300009), HTTP 5xx/429 and network errors are retried with backoff,
 * a bounded number of times. The CC-FS client goes through a proxy that can play a gateway (429 with
 * Retry-After) or a broken network (reset); the simulator's own faults give 0300008/9 and 500.
 */
describe('retries of CC-FS calls', () => {
  let stack: Stack;
  let proxy: FaultProxy;
  let beforeCall: ((operation: 'query' | 'download', n: number) => void) | undefined;
  const calls = { query: 0, download: 0 };

  beforeAll(async () => {
    proxy = await startFaultProxy(() => stack.sim.url);
    stack = await startStack({
      wrapCcfs: (): CcfsApi => {
        const client = new CcfsClient({
          baseUrl: proxy.url,
          credentials: { ak: TEST_AK, sk: TEST_SK },
          requestTimeoutMs: 5000,
        });
        return {
          queryBillData(body, opts) {
            beforeCall?.('query', ++calls.query);
            return client.queryBillData(body, opts);
          },
          downloadBillFile(name, dest, opts) {
            beforeCall?.('download', ++calls.download);
            return client.downloadBillFile(name, dest, opts);
          },
        };
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await proxy?.close();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
    proxy.reset();
    calls.query = calls.download = 0;
    beforeCall = undefined;
  });

  const oneDay = () => testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00' });

  it('retries queryBillData through query flow control (0300009) and verifies the chunk', async () => {
    beforeCall = (op, n) =>
      op === 'query' && stack.sim.simulator.setFaults({ queryFlowControl: n <= 2 ? 1 : 0 });
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    expect(stack.sim.simulator.inspect().queries.map((q) => q.outcome)).toEqual(['0300009', '0300009', '0']);
    const [query] = await activityRuns(stack.client, chunkWorkflowId(request.exportId, 0), 'requestChunk');
    expect(query).toMatchObject({
      outcome: 'completed',
      attempts: 3,
      lastFailure: { type: 'CcfsFlowControl' },
    });
    expect(query!.lastFailure!.message).toContain('0300009');
  });

  it('retries downloadBillFile through download flow control (0300008) and HTTP 500, and keeps what was served', async () => {
    beforeCall = (op, n) =>
      op === 'download' &&
      stack.sim.simulator.setFaults({
        downloadFlowControl: n === 1 ? 1 : 0,
        downloadHttp500: n === 2 ? 1 : 0,
      });
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const downloads = stack.sim.simulator.inspect().downloads;
    expect(downloads.map((d) => d.outcome)).toEqual(['0300008', 'http500', '0']);
    const [download] = await activityRuns(
      stack.client,
      chunkWorkflowId(request.exportId, 0),
      'downloadChunk',
    );
    expect(download).toMatchObject({
      outcome: 'completed',
      attempts: 3,
      lastFailure: { type: 'CcfsUnavailable' },
    });
    const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
    expect(chunk.sha256).toBe(downloads[2]!.sha256);
  });

  it('retries after a gateway 429 (honouring Retry-After) and a connection reset', async () => {
    proxy.decide = (path, n) =>
      path !== QUERY_BILL_DATA_PATH
        ? 'pass'
        : n === 1
          ? { status: 429, retryAfterSeconds: 1 }
          : n === 2
            ? 'reset'
            : 'pass';
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const queries = proxy.records.filter((r) => r.path === QUERY_BILL_DATA_PATH);
    expect(queries.map((r) => r.action)).toEqual([429, 'reset', 'pass']);
    // The 429's Retry-After (1 s) wins over the policy's 0.2 s first interval.
    expect(queries[1]!.at - queries[0]!.at).toBeGreaterThanOrEqual(950);
    expect(stack.sim.simulator.inspect().queries).toHaveLength(1);
    const [query] = await activityRuns(stack.client, chunkWorkflowId(request.exportId, 0), 'requestChunk');
    expect(query).toMatchObject({
      outcome: 'completed',
      attempts: 3,
      lastFailure: { type: 'CcfsUnavailable' },
    });
    expect(query!.lastFailure!.message).toMatch(/could not reach CC-FS/);
  });

  it('retries a download whose connection is reset or answered 503 by a gateway', async () => {
    proxy.decide = (path, n) =>
      path !== DOWNLOAD_BILL_FILE_PATH ? 'pass' : n === 1 ? 'reset' : n === 2 ? { status: 503 } : 'pass';
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    expect(proxy.records.filter((r) => r.path === DOWNLOAD_BILL_FILE_PATH).map((r) => r.action)).toEqual([
      'reset',
      503,
      'pass',
    ]);
    const [download] = await activityRuns(
      stack.client,
      chunkWorkflowId(request.exportId, 0),
      'downloadChunk',
    );
    expect(download).toMatchObject({
      outcome: 'completed',
      attempts: 3,
      lastFailure: { type: 'CcfsUnavailable' },
    });
    expect(download!.lastFailure!.message).toContain('HTTP 503');
  });

  it('stops after maximumAttempts when CC-FS keeps answering 500, and fails the chunk with an actionable error', async () => {
    stack.sim.simulator.setFaults({ queryHttp500: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-04 00:00:00',
      options: { retryMaximumAttempts: 3 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed_with_failures');
    // Exactly maximumAttempts calls reached CC-FS: bounded, no endless loop.
    expect(stack.sim.simulator.inspect().queries.map((q) => q.outcome)).toEqual([
      'http500',
      'http500',
      'http500',
    ]);
    const [query] = await activityRuns(stack.client, chunkWorkflowId(request.exportId, 0), 'requestChunk');
    expect(query).toMatchObject({ outcome: 'failed', attempts: 3, failure: { type: 'CcfsUnavailable' } });
    expect(result.failedChunks).toEqual([
      {
        index: 0,
        begin: '2024-03-01 00:00:00',
        end: '2024-03-04 00:00:00',
        state: 'failed',
        errorType: 'CcfsUnavailable',
        error: expect.stringMatching(
          /^requestChunk gave up after 3 attempts; last error: queryBillData failed at CC-FS: HTTP 500.*Retry the export/,
        ) as unknown,
      },
    ]);
    const manifest = await readManifest(result.manifestPath);
    expect(manifest).toMatchObject({ state: 'completed_with_failures', totals: { failed: 1, verified: 0 } });
  });
});
