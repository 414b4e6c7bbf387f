import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { defaultPayloadConverter } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import type { CcfsApi, DownloadHeartbeat } from '../../activities';
import { PARTIAL_DIR } from '../../activities/output-store';
import { CcfsClient } from '../../ccfs/client';
import { callbackKey } from '../../lib/callback-token';
import { ExportService } from '../../lib/export-service';
import { createWorkers, runWorkers } from '../../worker/create-workers';
import { chunkWorkflowId, type ChunkResult } from '../../workflows/definitions';
import { activityRuns } from '../e2e/support/history';
import { freePortPair, spawnNode, until, type NodeProcess } from '../e2e/support/processes';
import { readManifest, testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, workflowBundle, type Stack } from '../support/stack';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/**
 * Policy: an interrupted download is downloaded again (from the first byte), a cut-off file is never
 * recorded as verified, and a download lost with a crashed worker is taken over by another worker
 * after the heartbeat timeout; no temporary file survives.
 */
describe('interrupted downloads', () => {
  let stack: Stack;
  /** Called before each downloadBillFile of the stack's worker, with its number (to set faults for it). */
  let beforeDownload: ((n: number) => void) | undefined;
  let downloads = 0;

  beforeAll(async () => {
    stack = await startStack({
      // ~2 MB per chunk, so that a throttled download is in flight for a while.
      simulator: { padCallFileToBytes: 2_000_000 },
      wrapCcfs: (real): CcfsApi => ({
        queryBillData: (body, opts) => real.queryBillData(body, opts),
        downloadBillFile(name, dest, opts) {
          beforeDownload?.(++downloads);
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
    beforeDownload = undefined;
    downloads = 0;
  });

  it('downloads again after cut-off transfers and records only the complete file', async () => {
    // Cut the first two transfers; from the third on, serve whole files.
    beforeDownload = (n) => stack.sim.simulator.setFaults({ truncateDownload: n <= 2 ? 1 : 0 });
    {
      const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00' });
      await stack.exports.start(request);
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed');

      const served = stack.sim.simulator.inspect().downloads;
      expect(served.map((d) => d.complete)).toEqual([false, false, true]);
      expect(served[0]!.bytesSent).toBeLessThan(served[0]!.bytes!);
      const [download] = await activityRuns(
        stack.client,
        chunkWorkflowId(request.exportId, 0),
        'downloadChunk',
      );
      expect(download).toMatchObject({ outcome: 'completed', attempts: 3 });
      expect(['CcfsTruncated', 'ZipCorrupt']).toContain(download!.lastFailure!.type);

      const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
      const dir = stack.output.exportDir(request.exportId);
      expect(chunk).toMatchObject({ state: 'verified', sha256: served[2]!.sha256, bytes: served[2]!.bytes });
      expect(sha256(join(dir, chunk.file!))).toBe(served[2]!.sha256);
      expect(existsSync(join(dir, PARTIAL_DIR))).toBe(false);
    }
  });

  it('fails a chunk whose every transfer is cut off, leaving neither a ZIP nor a temporary file', async () => {
    stack.sim.simulator.setFaults({ truncateDownload: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { retryMaximumAttempts: 3 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed_with_failures');
    expect(stack.sim.simulator.inspect().downloads.map((d) => d.complete)).toEqual([false, false, false]);
    expect(result.failedChunks[0]).toMatchObject({
      index: 0,
      error: expect.stringContaining('downloadChunk gave up after 3 attempts') as unknown,
    });
    const dir = stack.output.exportDir(request.exportId);
    expect(readdirSync(dir).filter((f) => f.endsWith('.zip'))).toEqual([]);
    expect(existsSync(join(dir, PARTIAL_DIR))).toBe(false);
    const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
    expect(chunk.sha256).toBeUndefined();
  });

  describe('when the worker running a download is killed', () => {
    let worker: NodeProcess | undefined;
    let stopSecond: (() => Promise<void>) | undefined;
    afterAll(async () => {
      await worker?.kill('SIGKILL');
      await stopSecond?.();
    });

    it('lets another worker take the download over after the heartbeat timeout, and cleans up the first one’s temporary file', async () => {
      const taskQueue = `crash-${randomUUID()}`;
      const exports = new ExportService(stack.client, {
        taskQueue,
        namespace: 'default',
        uiUrl: 'http://localhost:8233',
      });
      // ~2 MB at 400 kB/s: the download is in flight for about five seconds.
      stack.sim.simulator.setFaults({ slowDownloadBytesPerSecond: 400_000 });
      const metricsPort = await freePortPair();
      worker = spawnNode('worker', 'worker/main.ts', {
        ...process.env,
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_TASK_QUEUE: taskQueue,
        CCFS_BASE_URL: stack.sim.url,
        CCFS_AK: TEST_AK,
        CCFS_SK: TEST_SK,
        OUTPUT_DIR: stack.outputDir,
        CALLBACK_BASE_URL: stack.apiUrl,
        WORKER_METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
      });
      await worker.waitForLine(/"msg":"worker started"/);

      const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00' });
      request.options.heartbeatTimeoutMs = 2000;
      await exports.start(request);
      const chunkHandle = stack.client.workflow.getHandle(chunkWorkflowId(request.exportId, 0));

      // Mid-download: the activity has heartbeated some bytes, and its temporary file exists.
      const progress = await until(
        'the download to heartbeat its progress',
        async () => {
          const { raw } = await chunkHandle.describe().catch(() => ({ raw: { pendingActivities: [] } }));
          const pending = raw.pendingActivities?.find((a) => a.activityType?.name === 'downloadChunk');
          const payload = pending?.heartbeatDetails?.payloads?.[0];
          const details = payload
            ? defaultPayloadConverter.fromPayload<DownloadHeartbeat>(payload)
            : undefined;
          return details && details.bytes > 0
            ? { details, identity: pending!.lastWorkerIdentity }
            : undefined;
        },
        30_000,
      );
      expect(progress.identity).toContain(String(worker.pid));
      const partialDir = join(stack.output.exportDir(request.exportId), PARTIAL_DIR);
      const orphan = readdirSync(partialDir).filter((f) => f.startsWith('0000-'));
      expect(orphan.length).toBeGreaterThan(0);

      await worker.kill('SIGKILL');

      // A second worker on the same task queue, in this process.
      const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
      const second = await createWorkers(
        {
          connection,
          namespace: 'default',
          taskQueue,
          ccfsCallsPerSecond: 200,
          ccfsConcurrency: 20,
          workflowBundle: await workflowBundle(),
        },
        {
          ccfs: new CcfsClient({ baseUrl: stack.sim.url, credentials: { ak: TEST_AK, sk: TEST_SK } }),
          output: stack.output,
          callback: { baseUrl: stack.apiUrl, key: callbackKey(undefined, TEST_SK) },
          logger: stack.logger,
        },
      );
      const running = runWorkers(second);
      stopSecond = async () => {
        for (const w of second) if (w.getState() === 'RUNNING') w.shutdown();
        await running.catch(() => undefined);
        await connection.close();
      };
      stack.sim.simulator.setFaults({ slowDownloadBytesPerSecond: 0 });

      const result = await exports.result(request.exportId);
      expect(result.state).toBe('completed');
      const [download] = await activityRuns(
        stack.client,
        chunkWorkflowId(request.exportId, 0),
        'downloadChunk',
      );
      expect(download).toMatchObject({
        outcome: 'completed',
        attempts: 2,
        lastFailure: { type: 'timeout:HEARTBEAT' },
      });
      expect(download!.identity).not.toContain(String(worker.pid));

      const served = stack.sim.simulator.inspect().downloads;
      expect(served.map((d) => d.complete)).toEqual([false, true]);
      const chunk = (await readManifest(result.manifestPath)).chunks[0] as ChunkResult;
      expect(chunk).toMatchObject({ state: 'verified', sha256: served[1]!.sha256, downloadAttempts: 1 });
      expect(sha256(join(stack.output.exportDir(request.exportId), chunk.file!))).toBe(served[1]!.sha256);
      for (const name of orphan) expect(existsSync(join(partialDir, name))).toBe(false);
      expect(existsSync(partialDir)).toBe(false);
    }, 90_000);
  });
});
