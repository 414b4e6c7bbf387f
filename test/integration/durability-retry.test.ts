import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CcfsApi } from '../../activities';
import type { ChunkResult } from '../../workflows/definitions';
import { runCli } from '../e2e/support/processes';
import { readManifest, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/**
 * Policy: an export whose chunks ran out of attempts ends `completed_with_failures` naming them, and a
 * retry (`POST /exports/:id/retry`, `ccfs-export retry <id>`) runs only those chunks again: nothing
 * already verified is requested or downloaded again.
 */
describe('partial failure and retry', () => {
  let stack: Stack;
  /** queryBillData for a chunk beginning at this time answers HTTP 500. */
  let failingBegin: string | undefined;

  beforeAll(async () => {
    stack = await startStack({
      wrapCcfs: (real, sim): CcfsApi => ({
        queryBillData(body, opts) {
          // Chunks run one at a time here, so switching the fault per query is exact.
          sim.simulator.setFaults({ queryHttp500: body.beginTime === failingBegin ? 1 : 0 });
          return real.queryBillData(body, opts);
        },
        downloadBillFile: (name, dest, opts) => real.downloadBillFile(name, dest, opts),
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('ends with failures named, then retries only the failed chunk by API and by CLI until complete', async () => {
    failingBegin = '2024-03-04 00:00:00';
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-13 00:00:00',
      options: { maxChunksInFlight: 1, retryMaximumAttempts: 2 },
    });
    await stack.exports.start(request);
    const retryWhileRunning = await fetch(`${stack.apiUrl}/exports/${request.exportId}/retry`, {
      method: 'POST',
    });
    expect(retryWhileRunning.status).toBe(409);

    const first = await stack.exports.result(request.exportId);
    expect(first.state).toBe('completed_with_failures');
    expect(first.failedChunks).toEqual([
      expect.objectContaining({
        index: 1,
        begin: '2024-03-04 00:00:00',
        end: '2024-03-07 00:00:00',
        errorType: 'CcfsUnavailable',
      }),
    ]);
    const manifest1 = await readManifest(first.manifestPath);
    expect(manifest1.state).toBe('completed_with_failures');
    expect(manifest1.chunks.map((c) => c.state)).toEqual(['verified', 'failed', 'verified', 'verified']);
    const dir = stack.output.exportDir(request.exportId);
    const verified = manifest1.chunks.filter((c): c is ChunkResult => c.state === 'verified');
    const before = new Map(verified.map((c) => [c.file!, sha256(join(dir, c.file!))]));
    const verifiedFiles = new Set(verified.map((c) => c.billFileName));
    const seen = () => stack.sim.simulator.inspect();
    const queriesBefore = seen().queries.length;
    const downloadsBefore = seen().downloads.length;

    // 1. By API, while CC-FS still fails that chunk: only it is requested again, nothing downloaded.
    const retried = await fetch(`${stack.apiUrl}/exports/${request.exportId}/retry`, { method: 'POST' });
    expect(retried.status).toBe(202);
    expect(await retried.json()).toMatchObject({ exportId: request.exportId, created: true });
    const second = await stack.exports.result(request.exportId);
    expect(second.state).toBe('completed_with_failures');
    expect(second.failedChunks.map((c) => c.index)).toEqual([1]);
    const queriesOfRetry = seen().queries.slice(queriesBefore);
    expect(queriesOfRetry).toHaveLength(2);
    expect(queriesOfRetry.every((q) => (q.msgBody as { beginTime: string }).beginTime === failingBegin)).toBe(
      true,
    );
    expect(seen().downloads.length).toBe(downloadsBefore);

    // 2. By CLI, as an operator would once CC-FS is fixed.
    failingBegin = undefined;
    // Not spawnSync: the worker that answers the CLI's query runs in this process.
    const cli = await runCli(['retry', request.exportId, '--wait'], {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
    });
    expect(cli.stderr).toContain(`retrying export ${request.exportId}`);
    expect(cli.code).toBe(0);
    expect(cli.stdout.trim()).toBe(first.manifestPath);

    const manifest = await readManifest(first.manifestPath);
    expect(manifest).toMatchObject({
      state: 'completed',
      totals: { chunks: 4, verified: 4, failed: 0, pending: 0 },
    });
    // Nothing verified before was downloaded again, and its file is untouched.
    const downloads = seen().downloads;
    expect(downloads.filter((d) => verifiedFiles.has(d.billFileName))).toHaveLength(verified.length);
    expect(downloads.slice(downloadsBefore)).toHaveLength(1);
    for (const [file, digest] of before) expect(sha256(join(dir, file))).toBe(digest);
    const retriedChunk = manifest.chunks[1] as ChunkResult;
    expect(downloads.slice(downloadsBefore)[0]!.billFileName).toBe(retriedChunk.billFileName);
    expect(sha256(join(dir, retriedChunk.file!))).toBe(retriedChunk.sha256);
    expect(readdirSync(dir).filter((f) => f.endsWith('.zip'))).toHaveLength(4);
  });
});
