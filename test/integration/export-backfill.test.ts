import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { CcfsApi } from '../../activities';
import { parseWallTime } from '../../domain/wall-time';
import {
  chunkWorkflowId,
  exportWorkflowId,
  type ChunkResult,
  type ExportRequest,
} from '../../workflows/definitions';
import { until } from '../support/until';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A gate the test opens; until then the held chunk's download waits (or stops when cancelled). */
function gate(): { wait: (signal?: AbortSignal) => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    open,
    wait: (signal) =>
      new Promise<void>((resolve, reject) => {
        // The signal's reason is the activity's cancellation, which Temporal then reports as such.
        if (signal?.aborted) return reject(signal.reason as Error);
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        void opened.then(resolve);
      }),
  };
}

/**
 * Issue 18 item 7: a backfill never stalls behind one slow chunk. Chunks outlive the export run that
 * started them and report by signal, so the export continues as new (small `maxHistoryEvents`) and
 * keeps starting pending chunks while one chunk waits; it says what it waits for; cancelling it still
 * stops chunks that an earlier run started.
 */
describe('a backfill with one slow chunk', () => {
  let stack: Stack;
  // The chunk whose download is held back (by its beginTime), and the responseIds CC-FS gave it.
  let slowBegin: string | undefined;
  let held = gate();
  const slowIds = new Set<string>();

  beforeAll(async () => {
    stack = await startStack({
      wrapCcfs: (real): CcfsApi => ({
        async queryBillData(body, opts) {
          const answer = await real.queryBillData(body, opts);
          if (answer.kind === 'accepted' && body.beginTime === slowBegin)
            slowIds.add(answer.responseId.replace(/-/g, '').toLowerCase());
          return answer;
        },
        async downloadBillFile(name, dest, opts) {
          if ([...slowIds].some((id) => name.toLowerCase().includes(id))) await held.wait(opts?.signal);
          return real.downloadBillFile(name, dest, opts);
        },
      }),
    });
  });
  afterAll(async () => {
    held.open();
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
    held = gate();
    slowIds.clear();
  });

  /** Ten one-day chunks, two at a time, continuing as new every few events; chunk #0 is held back. */
  async function startWithSlowFirstChunk(): Promise<ExportRequest> {
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-11 00:00:00',
      options: { maxChunksInFlight: 2, chunkHours: 24 },
    });
    // Below what the API accepts (200): a run holds about one chunk, so the export continues as new
    // many times while chunk #0 waits.
    request.options.maxHistoryEvents = 40;
    request.options.heartbeatTimeoutMs = 2000;
    slowBegin = request.begin;
    await stack.exports.start(request);
    return request;
  }

  async function runsOf(exportId: string): Promise<number> {
    let n = 0;
    for await (const _ of stack.client.workflow.list({
      query: `WorkflowId = '${exportWorkflowId(exportId)}'`,
    }))
      n++;
    return n;
  }

  it('continues as new and finishes every other chunk while one chunk waits, then completes with each chunk once', async () => {
    const request = await startWithSlowFirstChunk();
    const env = { TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_TASK_QUEUE: stack.taskQueue };
    // The CLI follows the export as a user would, on a pipe.
    const child = spawn(process.execPath, ['bin/ccfs-export.mjs', 'status', request.exportId, '--watch'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let cliOutput = '';
    child.stdout.on('data', (d: Buffer) => (cliOutput += d.toString()));
    child.stderr.on('data', (d: Buffer) => (cliOutput += d.toString()));
    const cliDone = new Promise<number | null>((resolve) => child.once('exit', resolve));

    try {
      // Across the runs, never more chunks at once than maxChunksInFlight.
      let mostRunning = 0;
      const waiting = await until(
        'every chunk but #0 to be verified',
        async () => {
          const status = await stack.exports.status(request.exportId);
          mostRunning = Math.max(mostRunning, status?.counts.running ?? 0);
          return status && status.counts.verified === 9 ? status : undefined;
        },
        110_000,
        100,
      );
      expect(mostRunning).toBeLessThanOrEqual(2);
      expect(waiting.chunks.find((c) => c.index === 0)?.state).toBe('running');
      expect(waiting.counts).toMatchObject({ running: 1, pending: 0, verified: 9 });
      // The export says what it waits for: the query, and the details the Temporal UI shows.
      expect(waiting.waitingFor?.map((c) => [c.index, c.begin, c.end])).toEqual([
        [0, '2024-03-01 00:00:00', '2024-03-02 00:00:00'],
      ]);
      const meta = await stack.client.workflow
        .getHandle(exportWorkflowId(request.exportId))
        .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(meta.currentDetails).toContain('**Waiting for 1 chunk:**');
      expect(meta.currentDetails).toMatch(/- #0 2024-03-01 → 03-02 /);
      // Later chunks finished before the slow one, over several runs of the export.
      expect(await runsOf(request.exportId)).toBeGreaterThan(2);
      // The CLI's progress line names the chunk that holds the export up (once it has for a while).
      await until(
        'the CLI to name the waiting chunk',
        () => (/waiting for 1 chunk: #0 2024-03-01 → 03-02 /.test(cliOutput) ? true : undefined),
        60_000,
        200,
      );
    } finally {
      held.open();
    }

    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    expect(await cliDone).toBe(0);
    expect(cliOutput).toMatch(
      /^9\/10 chunks \(90%\), 1 running, [\d,]+ rows, .*, waiting for 1 chunk: #0 2024-03-01 → 03-02 downloading since \d\d:\d\d UTC \([^,]+, request 1 of \d+\)/m,
    );

    const manifest = await readManifest(result.manifestPath);
    expect(manifest.chunks.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(manifest.chunks.every((c) => c.state === 'verified')).toBe(true);
    manifest.chunks.forEach((c, i) =>
      expect(c.begin).toBe(i === 0 ? request.begin : manifest.chunks[i - 1]!.end),
    );
    expect(manifest.chunks.at(-1)!.end).toBe(request.end);
    // Each range was requested once: no chunk ran twice across the runs of the export.
    const begins = stack.sim.simulator
      .inspect()
      .queries.map((q) => (q.msgBody as { beginTime?: string } | undefined)?.beginTime);
    expect(begins.sort()).toEqual(manifest.chunks.map((c) => c.begin));
    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    const got = await exportedRowKeys(stack.output.exportDir(request.exportId), manifest);
    expect(expected.call.length).toBeGreaterThan(100);
    expect(expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`))).toEqual([]);
    expect(expected.record.filter((r) => !got.record.has(`${r.call_id}#${r.file_name}`))).toEqual([]);
    expect(got.call.size).toBe(expected.call.length);
  });

  it('cancels a chunk an earlier run started and records it cancelled', async () => {
    const request = await startWithSlowFirstChunk();
    await until(
      'the export to continue as new while chunk #0 waits',
      async () => {
        const status = await stack.exports.status(request.exportId);
        return status && status.counts.verified >= 3 && (await runsOf(request.exportId)) > 1
          ? true
          : undefined;
      },
      110_000,
      200,
    );
    const slow = stack.client.workflow.getHandle(chunkWorkflowId(request.exportId, 0));
    expect((await slow.describe()).status.name).toBe('RUNNING');

    await stack.exports.cancel(request.exportId);
    const error = await stack.exports.result(request.exportId).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect((await slow.describe()).status.name).toBe('CANCELLED');

    const manifest = await readManifest(stack.output.manifestPath(request.exportId));
    expect(manifest.state).toBe('cancelled');
    const first = manifest.chunks[0] as ChunkResult;
    expect([first.index, first.state, first.errorType]).toEqual([0, 'cancelled', 'Cancelled']);
    // Nothing of the export runs on: every chunk workflow it started has closed.
    for (const c of manifest.chunks.filter((c) => c.state !== 'pending')) {
      const d = await stack.client.workflow.getHandle(chunkWorkflowId(request.exportId, c.index)).describe();
      expect(d.status.name).not.toBe('RUNNING');
    }
    expect(parseWallTime(manifest.chunks.at(-1)!.end)).toBe(parseWallTime(request.end));
  });
});
