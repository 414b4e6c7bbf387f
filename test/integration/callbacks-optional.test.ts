import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../activities/output-store';
import {
  chunkWorkflowId,
  type ChunkResult,
  type ChunkWorkflowInput,
  type ExportRequest,
} from '../../workflows/definitions';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';
import { until } from '../support/until';

/**
 * Issue 13, items 4 and 5: callbacks are optional (a chunk finds its file under the documented name
 * when no callback comes, or with CALLBACK_MODE=none without any), and a range without data is
 * `empty` however CC-FS says so. Real Temporal, the simulator over HTTP, rows compared with its data.
 */

const verifiedChunks = (manifest: Manifest): ChunkResult[] =>
  manifest.chunks.map((c) => {
    if (c.state !== 'verified')
      throw new Error(`chunk ${c.index} is ${c.state}: ${'error' in c ? c.error : ''}`);
    return c;
  });

/** Every CDR and recording-index row of the request's range is in the exported ZIPs, and nothing else. */
async function expectAllRows(stack: Stack, request: ExportRequest, manifest: Manifest): Promise<void> {
  const expected = stack.sim.simulator.rowKeys({
    beginTime: request.begin,
    endTime: request.end,
    dataType: request.dataType,
  });
  const got = await exportedRowKeys(stack.output.exportDir(request.exportId), manifest);
  expect(expected.call.length).toBeGreaterThan(100);
  expect([...got.call].sort()).toEqual(expected.call.map((r) => `${r.call_id}#${r.call_id_num}`).sort());
  expect([...got.record].sort()).toEqual(expected.record.map((r) => `${r.call_id}#${r.file_name}`).sort());
}

describe('callbacks optional', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
  });

  it('completes a multi-chunk export whose every callback is lost, each chunk found by its documented file name', async () => {
    stack.sim.simulator.setFaults({ dropCallback: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-07 12:00:00',
      // A callback timeout far longer than the test: only probing can finish the chunks.
      options: { callbackTimeoutSeconds: 120, probeIntervalSeconds: 0.3 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    const chunks = verifiedChunks(manifest);
    expect(chunks).toHaveLength(3);
    const state = stack.sim.simulator.inspect();
    // One query per chunk: no chunk requested again, and no callback ever reached the API.
    expect(state.queries.map((q) => q.outcome)).toEqual(['0', '0', '0']);
    expect(state.callbacks).toEqual([]);
    expect(state.faults.filter((f) => f.fault === 'dropCallback')).toHaveLength(3);
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ requests: 1, foundBy: 'probe' });
      const query = state.queries.find((q) => q.responseId === chunk.responseIds[0]);
      expect(chunk.billFileName).toBe(query!.billFileName);
      expect(chunk.requestLog).toEqual([
        { responseId: query!.responseId, requestedAt: expect.any(String) as unknown },
      ]);
    }
    await expectAllRows(stack, request, manifest);
  });

  it('finds the file by probing before it requests again when the callback timeout passes first', async () => {
    stack.sim.simulator.setFaults({ dropCallback: 1 });
    // Probes only at the callback timeout: the one before the second request finds the file.
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 1, probeIntervalSeconds: 3600, maxRequestsPerChunk: 2 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    expect(verifiedChunks(manifest)[0]).toMatchObject({ requests: 1, foundBy: 'probe' });
    expect(stack.sim.simulator.inspect().queries).toHaveLength(1);
    await expectAllRows(stack, request, manifest);
  });

  it('tries the files of the earlier requests before requesting again when a failed chunk is retried', async () => {
    // CC-FS is slow to generate and its callbacks are lost: the first run gives up before the file exists.
    stack.sim.simulator.setOptions({ callbackDelayMs: 2_500 });
    stack.sim.simulator.setFaults({ dropCallback: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 1, probeIntervalSeconds: 3600, maxRequestsPerChunk: 1 },
    });
    await stack.exports.start(request);
    const first = await stack.exports.result(request.exportId);
    expect(first.state).toBe('completed_with_failures');
    expect(first.failedChunks[0]).toMatchObject({ errorType: 'CallbackTimeout' });
    const record = (await stack.output.readChunkResults(request.exportId)).get(0)!;
    const [query] = stack.sim.simulator.inspect().queries;
    expect(record.requestLog).toEqual([
      { responseId: query!.responseId, requestedAt: expect.any(String) as unknown },
    ]);
    await until('the simulator to generate the file', () =>
      stack.sim.simulator.inspect().files.every((f) => f.generatedAt !== undefined),
    );

    // What a retry of the export starts for this chunk: its workflow again, with the requests the
    // record on disk keeps (prepareExport returns them as previousRequests).
    const chunk = await stack.client.workflow.start('chunkWorkflow', {
      taskQueue: stack.taskQueue,
      workflowId: chunkWorkflowId(request.exportId, 0),
      args: [
        {
          exportId: request.exportId,
          chunk: { index: 0, begin: request.begin, end: request.end },
          timeZone: request.timeZone,
          dataType: request.dataType,
          filters: request.filters,
          options: request.options,
          previousRequests: record.requestLog,
        } satisfies ChunkWorkflowInput,
      ],
    });
    const result = (await chunk.result()) as ChunkResult;

    // No new queryBillData: the file of the first run's request was downloaded.
    expect(stack.sim.simulator.inspect().queries).toHaveLength(1);
    expect(result).toMatchObject({
      state: 'verified',
      requests: 0,
      foundBy: 'probe',
      billFileName: query!.billFileName,
    });
    expect(result.responseIds).toEqual([query!.responseId]);
    const saved = (await stack.output.readChunkResults(request.exportId)).get(0)!;
    expect(saved).toMatchObject({ state: 'verified', billFileName: query!.billFileName });
    const manifest = { chunks: [saved] } as unknown as Manifest;
    await expectAllRows(stack, request, manifest);
  });

  it('ccfs-export retry of a chunk that failed after its callbacks were lost downloads the earlier file without a new query', async () => {
    stack.sim.simulator.setOptions({ callbackDelayMs: 2_500 });
    stack.sim.simulator.setFaults({ dropCallback: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 1, probeIntervalSeconds: 3600, maxRequestsPerChunk: 1 },
    });
    await stack.exports.start(request);
    const first = await stack.exports.result(request.exportId);
    expect(first.failedChunks[0]).toMatchObject({ errorType: 'CallbackTimeout' });
    const [query] = stack.sim.simulator.inspect().queries;
    await until('the simulator to generate the file', () =>
      stack.sim.simulator.inspect().files.every((f) => f.generatedAt !== undefined),
    );

    const retried = await stack.exports.retry(request.exportId);
    expect(retried).not.toHaveProperty('error');
    const result = await until('the retried export to finish', async () => {
      const r = await stack.exports.result(request.exportId);
      return r.state === 'running' ? undefined : r;
    });

    expect(result.state).toBe('completed');
    expect(stack.sim.simulator.inspect().queries).toHaveLength(1);
    const manifest = await readManifest(result.manifestPath);
    expect(verifiedChunks(manifest)[0]).toMatchObject({
      requests: 0,
      foundBy: 'probe',
      billFileName: query!.billFileName,
    });
    await expectAllRows(stack, request, manifest);
  });

  it('records a ZIP lacking a requested kind as verified with a warning in the manifest and the chunk details', async () => {
    stack.sim.simulator.setOptions({ omitEntryKinds: ['record'] });
    const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00' });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    const [chunk] = verifiedChunks(manifest);
    expect(chunk!.entries!.map((e) => e.kind)).toEqual(['call']);
    expect(chunk!.warnings).toEqual([expect.stringMatching(/record/)]);
    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call',
    });
    const got = await exportedRowKeys(stack.output.exportDir(request.exportId), manifest);
    expect([...got.call].sort()).toEqual(expected.call.map((r) => `${r.call_id}#${r.call_id_num}`).sort());
    expect(got.record.size).toBe(0);
    expect(chunk!.rows).toBe(expected.call.length);
    const meta = await stack.client.workflow
      .getHandle(chunkWorkflowId(request.exportId, 0))
      .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(meta.currentDetails).toContain('warning');
    expect(meta.currentDetails).toMatch(/record/);
  });

  describe('a range CC-FS refuses as too long', () => {
    it.each([
      ['0300004', 'endTime - beginTime exceeds {max} seconds'],
      ['0300003', 'endTime is too long'],
      ['0300001', 'The query interval cannot exceed three days'],
    ])(
      '%s %j: the chunk returns CcfsSpanRefused and saves no record, for the export to split it',
      async (code, desc) => {
        // The strict reading of "at most three days": exactly 72 h is refused.
        stack.sim.simulator.setOptions({
          maxSpanSeconds: 259_199,
          spanRefusalCode: code,
          spanRefusalDesc: desc,
        });
        const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-04 00:00:00' });
        const result = (await stack.client.workflow.execute('chunkWorkflow', {
          taskQueue: stack.taskQueue,
          workflowId: chunkWorkflowId(request.exportId, 0),
          args: [
            {
              exportId: request.exportId,
              chunk: { index: 0, begin: request.begin, end: request.end },
              timeZone: request.timeZone,
              dataType: request.dataType,
              filters: request.filters,
              options: request.options,
            } satisfies ChunkWorkflowInput,
          ],
        })) as ChunkResult;

        expect(result).toMatchObject({ state: 'failed', errorType: 'CcfsSpanRefused', requests: 1 });
        expect(result.error).toContain(code);
        // Refused at once: not retried, no record on disk.
        expect(stack.sim.simulator.inspect().queries.map((q) => q.outcome)).toEqual([code]);
        expect((await stack.output.readChunkResults(request.exportId)).size).toBe(0);
      },
    );
  });

  describe('a range without data is empty in every form', () => {
    it.each(['query-0300012', 'download-0300012', 'header-only', 'no-entries'] as const)(
      'emptyRange %s',
      async (emptyRange) => {
        stack.sim.simulator.setOptions({ callsPerHour: 0, emptyRange });
        const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-05 00:00:00' });
        await stack.exports.start(request);
        const result = await stack.exports.result(request.exportId);

        expect(result.state).toBe('completed');
        expect(result.counts).toMatchObject({ empty: 2, verified: 0, failed: 0 });
        expect(result.totals.rows).toBe(0);
        const state = stack.sim.simulator.inspect();
        if (emptyRange === 'query-0300012') {
          expect(state.queries.map((q) => q.outcome)).toEqual(['0300012', '0300012']);
          expect(state.downloads).toEqual([]);
        } else {
          // Accepted and called back; the download said "nothing" in its own way.
          expect(state.queries.map((q) => q.outcome)).toEqual(['0', '0']);
          expect(state.downloads.map((d) => d.outcome)).toEqual(
            emptyRange === 'download-0300012' ? ['0300012', '0300012'] : ['0', '0'],
          );
          if (emptyRange === 'header-only')
            expect(
              state.downloads.every(
                (d) => Object.values(d.rows!).every((n) => n === 0) && Object.keys(d.rows!).length === 2,
              ),
            ).toBe(true);
          if (emptyRange === 'no-entries') expect(state.downloads.map((d) => d.rows)).toEqual([{}, {}]);
        }
        // An empty chunk keeps no file.
        expect(
          readdirSync(stack.output.exportDir(request.exportId)).filter((f) => f.endsWith('.zip')),
        ).toEqual([]);
        const manifest = await readManifest(result.manifestPath);
        expect(manifest.chunks.map((c) => c.state)).toEqual(['empty', 'empty']);
      },
    );
  });
});

describe('CALLBACK_MODE=none', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workerCallback: { mode: 'none' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('completes a multi-chunk export by probing alone, every chunk verified', async () => {
    // CC-FS cannot reach the API at all.
    stack.sim.simulator.setFaults({ dropCallback: 1 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-07 00:00:00',
      options: { callbackTimeoutSeconds: 120, probeIntervalSeconds: 0.3 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    const chunks = verifiedChunks(manifest);
    expect(chunks).toHaveLength(2);
    for (const chunk of chunks) expect(chunk).toMatchObject({ requests: 1, foundBy: 'probe' });
    expect(stack.sim.simulator.inspect().queries).toHaveLength(2);
    await expectAllRows(stack, request, manifest);
  });
});
