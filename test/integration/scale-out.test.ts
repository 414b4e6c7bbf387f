import { sha256File } from '../support/exports';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { OutputStore } from '../../activities/output-store';
import { freePort } from '../../dev/temporal-server';
import { ExportService } from '../../lib/export-service';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import { chunkWorkflowId, exportWorkflowId, type ExportRequest } from '../../workflows/definitions';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { freePortPair, startService, writeWorkflowBundle, type ServiceProcess } from '../support/processes';

/**
 * Several worker processes on one Temporal server, as on several machines: Temporal spreads one
 * export's workflow and activity tasks over all of them, and the work of a worker that dies
 * (SIGKILL) or is stopped (SIGTERM) is finished by the others. Only OUTPUT_DIR is shared.
 */

const AK = 'scale-ak';
const SK = `sk-${randomUUID()}`;
const CALLBACK_SECRET = `cb-${randomUUID()}`;

describe('three worker processes on one Temporal server', () => {
  const taskQueue = `scale-${randomUUID()}`;
  const dir = mkdtempSync(join(tmpdir(), 'ccfs-scale-'));
  const outputDir = join(dir, 'exports');
  const output = new OutputStore(outputDir);
  let sim: RunningSimulator;
  let api: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let connection: Connection;
  let client: Client;
  let exports: ExportService;
  let workerEnv: (metricsPort: number) => Record<string, string>;

  beforeAll(async () => {
    const address = inject('temporalAddress');
    sim = await startSimulator({
      port: 0,
      accounts: [{ ak: AK, sk: SK }],
      seed: 11,
      callbackDelayMs: 50,
      callbackRetryIntervalMs: 300,
      // A day's ZIP is about 10 kB: downloads take a few seconds, so every worker holds several at once.
      faults: { slowDownloadBytesPerSecond: 4_000 },
    });
    const bundle = await writeWorkflowBundle(dir, { shortActivityTimeouts: true });
    const apiPort = await freePort();
    const common = {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      CCFS_BASE_URL: sim.url,
      CCFS_AK: AK,
      CCFS_SK: SK,
      CALLBACK_SECRET,
      CALLBACK_BASE_URL: `http://127.0.0.1:${apiPort}`,
      OUTPUT_DIR: outputDir,
    };
    workerEnv = (metricsPort) => ({
      ...common,
      WORKFLOW_BUNDLE_PATH: bundle,
      WORKER_METRICS_PORT: String(metricsPort),
      CCFS_MAX_CALLS_PER_SECOND: '500',
      CCFS_MAX_CONCURRENT_CALLS: '6',
      WORKER_SHUTDOWN_GRACE_SECONDS: '1',
    });
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) ports.push(await freePortPair());
    [api, ...workers] = await Promise.all([
      startService('api', { ...common, API_PORT: String(apiPort), API_HOST: '127.0.0.1' }),
      ...ports.map((p, i) => startService('worker', workerEnv(p), `worker-${i + 1}`)),
    ]);
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    exports = new ExportService(client, { taskQueue, namespace: 'default', uiUrl: 'http://localhost:8233' });
    // Every worker polls before the export starts, so each can take a share from the first task on.
    await Promise.all(workers.map((w) => w.waitForLog('Worker state changed')));
  });

  afterAll(async () => {
    await Promise.all([...workers, api].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await connection?.close();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every ActivityTaskStarted of the export's workflows: who ran the last attempt, and why the one before it ended. */
  async function activityStarts(request: ExportRequest, chunks: number) {
    const starts: Array<{
      workflowId: string;
      scheduledEventId: number;
      identity: string;
      attempt: number;
      lastFailure?: temporal.api.failure.v1.IFailure;
    }> = [];
    const ids = [
      exportWorkflowId(request.exportId),
      ...Array.from({ length: chunks }, (_, i) => chunkWorkflowId(request.exportId, i)),
    ];
    for (const workflowId of ids) {
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      for (const e of history.events ?? []) {
        const a = e.activityTaskStartedEventAttributes;
        if (!a) continue;
        starts.push({
          workflowId,
          scheduledEventId: Number(a.scheduledEventId),
          identity: a.identity ?? '',
          attempt: a.attempt ?? 1,
          lastFailure: a.lastFailure ?? undefined,
        });
      }
    }
    return starts;
  }

  /**
   * Polls the chunks' pending activities until `worker` has just started a download (which then runs
   * for seconds more); returns its chunk workflow ID.
   */
  async function downloadRunningOn(
    request: ExportRequest,
    chunks: number,
    worker: ServiceProcess,
  ): Promise<string> {
    let found: string | undefined;
    await until(async () => {
      for (let i = 0; i < chunks && !found; i++) {
        const workflowId = chunkWorkflowId(request.exportId, i);
        const d = await client.workflow
          .getHandle(workflowId)
          .describe()
          .catch(() => undefined);
        const pending = d?.raw.pendingActivities ?? [];
        const justStarted = pending.some(
          (a) =>
            a.activityType?.name === 'downloadChunk' &&
            a.lastWorkerIdentity === worker.identity &&
            Number(a.state) === 2 && // PENDING_ACTIVITY_STATE_STARTED
            Date.now() - Number(a.lastStartedTime?.seconds ?? 0) * 1000 < 1_000,
        );
        if (justStarted) found = workflowId;
      }
      return found !== undefined;
    }, `a download just started on ${worker.name}`);
    return found!;
  }

  async function expectNothingLost(request: ExportRequest, manifestPath: string): Promise<number> {
    const manifest = await readManifest(manifestPath);
    expect(manifest.state).toBe('completed');
    expect(manifest.totals.pending).toBe(0);
    expect(manifest.totals.failed).toBe(0);
    const served = new Map(
      sim.simulator
        .inspect()
        .downloads.filter((d) => d.complete)
        .map((d) => [d.billFileName, d.sha256]),
    );
    const exportDir = output.exportDir(request.exportId);
    for (const chunk of manifest.chunks) {
      if (chunk.state !== 'verified') continue;
      expect(chunk.sha256).toBe(served.get(chunk.billFileName));
      expect(await sha256File(join(exportDir, chunk.file!))).toBe(chunk.sha256);
    }
    const expected = sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    const got = await exportedRowKeys(exportDir, manifest);
    expect(expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`))).toEqual([]);
    expect(expected.record.filter((r) => !got.record.has(`${r.call_id}#${r.file_name}`))).toEqual([]);
    expect(readdirSync(exportDir)).not.toContain('.partial');
    return manifest.chunks.length;
  }

  it('shares one export among all three workers and completes it without loss when one is SIGKILLed mid-run', async () => {
    const request = testRequest({
      from: '2024-01-01 00:00:00',
      to: '2024-01-25 00:00:00',
      options: { chunkHours: 24, maxChunksInFlight: 12 },
    });
    await exports.start(request);
    const chunks = 24;

    // Kill a worker while it holds a started CC-FS activity, so its work must be taken over.
    const victim = workers[0]!;
    const held = await downloadRunningOn(request, chunks, victim);
    expect((await exports.status(request.exportId))?.state).toBe('running');
    await victim.stop('SIGKILL');

    const result = await exports.result(request.exportId);
    expect(result.state).toBe('completed');
    expect(result.counts.verified + result.counts.empty).toBe(chunks);
    expect(await expectNothingLost(request, result.manifestPath)).toBe(chunks);

    const starts = await activityStarts(request, chunks);
    const identities = new Set(starts.map((e) => e.identity));
    for (const w of workers) expect(identities).toContain(w.identity);
    // What the victim held timed out (heartbeat or start-to-close) and ran again on another worker.
    const takenOver = starts.filter((e) => e.workflowId === held && e.attempt > 1);
    expect(takenOver.length).toBeGreaterThan(0);
    for (const e of takenOver) {
      expect(e.identity).not.toBe(victim.identity);
      expect(e.lastFailure?.timeoutFailureInfo).toBeTruthy();
    }
  });

  it('hands a SIGTERMed worker’s running downloads back within the grace period, and the others finish them', async () => {
    // Slow downloads (about 7 s each) outlast the 1 s grace period.
    sim.simulator.setFaults({ slowDownloadBytesPerSecond: 1_500 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-09 00:00:00',
      options: { chunkHours: 24, maxChunksInFlight: 8 },
    });
    await exports.start(request);
    const chunks = 8;
    const leaving = workers[1]!;
    const held = await downloadRunningOn(request, chunks, leaving);
    const stopping = Date.now();
    const exit = await leaving.stop('SIGTERM');
    const tookMs = Date.now() - stopping;
    expect(exit).toEqual({ code: 0, signal: null });
    sim.simulator.setFaults({ slowDownloadBytesPerSecond: 0 });

    const result = await exports.result(request.exportId);
    expect(result.state).toBe('completed');
    await expectNothingLost(request, result.manifestPath);
    // The stopped worker failed its download when the grace period ended (the shutdown cancelled
    // it) instead of leaving it to time out, and another worker downloaded the chunk.
    const starts = (await activityStarts(request, chunks)).filter(
      (e) => e.workflowId === held && e.attempt > 1,
    );
    expect(starts.length).toBeGreaterThan(0);
    for (const e of starts) {
      expect(e.identity).not.toBe(leaving.identity);
      expect(e.lastFailure).toBeTruthy();
      expect(e.lastFailure?.timeoutFailureInfo ?? undefined).toBeUndefined();
    }
    expect(tookMs).toBeLessThan(15_000);
    expect(leaving.lines.join('\n')).toContain(
      'shutting down: running activities may finish within the grace period',
    );
  });
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
