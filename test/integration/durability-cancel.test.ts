import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { CcfsApi } from '../../activities';
import { PARTIAL_DIR } from '../../activities/output-store';
import { chunkWorkflowId, type ChunkResult, type ExportRequest } from '../../workflows/definitions';
import { activityRuns } from '../e2e/support/history';
import { runCli, until } from '../e2e/support/processes';
import { readManifest, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/**
 * Policy: cancelling an export (`POST /exports/:id/cancel`, `ccfs-export cancel <id>`) stops the work
 * in flight — a download included — and leaves the verified files and a manifest that says what was
 * done; no temporary file remains.
 */
describe('cancellation', () => {
  let stack: Stack;
  let downloads = 0;

  beforeAll(async () => {
    stack = await startStack({
      simulator: { padCallFileToBytes: 2_000_000 },
      wrapCcfs: (real, sim): CcfsApi => ({
        queryBillData: (body, opts) => real.queryBillData(body, opts),
        downloadBillFile(name, dest, opts) {
          // The first chunk downloads at full speed; every later download crawls, so it is in flight when cancelled.
          sim.simulator.setFaults({ slowDownloadBytesPerSecond: ++downloads === 1 ? 0 : 200_000 });
          return real.downloadBillFile(name, dest, opts);
        },
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
    downloads = 0;
  });

  /** Starts a four-chunk export, one chunk at a time, and returns once chunk 0 is verified and chunk 1 is downloading. */
  async function startAndReachSecondDownload(): Promise<ExportRequest> {
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-13 00:00:00',
      options: { maxChunksInFlight: 1 },
    });
    request.options.heartbeatTimeoutMs = 2000;
    await stack.exports.start(request);
    const partialDir = join(stack.output.exportDir(request.exportId), PARTIAL_DIR);
    await until(
      'chunk 1 to be downloading',
      () => existsSync(partialDir) && readdirSync(partialDir).some((f) => f.startsWith('0001-')),
      30_000,
      20,
    );
    return request;
  }

  async function expectCancelledWithVerifiedKept(request: ExportRequest): Promise<void> {
    const error = await stack.exports.result(request.exportId).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);

    const dir = stack.output.exportDir(request.exportId);
    const manifest = await readManifest(join(dir, 'manifest.json'));
    expect(manifest.state).toBe('cancelled');
    expect(manifest.chunks.map((c) => c.state)).toEqual(['verified', 'cancelled', 'pending', 'pending']);
    expect(manifest.totals).toMatchObject({ verified: 1, cancelled: 1, failed: 0, pending: 2 });
    const verified = manifest.chunks[0] as ChunkResult;
    expect(sha256(join(dir, verified.file!))).toBe(verified.sha256);
    expect((manifest.chunks[1] as ChunkResult).error).toBe('cancelled by request');
    // Only the verified chunk's ZIP; no temporary file of any kind.
    expect(readdirSync(dir).filter((f) => f.endsWith('.zip'))).toEqual([verified.file]);
    expect(existsSync(join(dir, PARTIAL_DIR))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // The download in flight was stopped (not abandoned) before the chunk recorded "cancelled".
    const [download] = await activityRuns(
      stack.client,
      chunkWorkflowId(request.exportId, 1),
      'downloadChunk',
    );
    expect(download!.outcome).toBe('cancelled');
    const served = stack.sim.simulator.inspect().downloads;
    expect(served.map((d) => d.complete)).toEqual([true, false]);
    // Chunks 2 and 3 were never requested.
    expect(stack.sim.simulator.inspect().queries).toHaveLength(2);
  }

  it('stops a download in flight on POST /exports/:id/cancel and keeps the verified chunk', async () => {
    const request = await startAndReachSecondDownload();
    const res = await fetch(`${stack.apiUrl}/exports/${request.exportId}/cancel`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ exportId: request.exportId, cancelRequested: true });
    await expectCancelledWithVerifiedKept(request);

    const status = await fetch(`${stack.apiUrl}/exports/${request.exportId}`);
    expect(await status.json()).toMatchObject({
      state: 'cancelled',
      status: 'CANCELLED',
      counts: { verified: 1, cancelled: 3 },
    });
  });

  it('stops the same way on ccfs-export cancel <id>', async () => {
    const request = await startAndReachSecondDownload();
    const cli = await runCli(['cancel', request.exportId], {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
    });
    expect(cli).toMatchObject({ code: 0, stdout: `cancellation requested: ${request.exportId}\n` });
    await expectCancelledWithVerifiedKept(request);
  });
});
