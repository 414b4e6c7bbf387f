import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../activities/output-store';
import { parseWallTime } from '../../domain/wall-time';
import { exportWorkflowId, type ChunkResult, type ExportStatus } from '../../workflows/definitions';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { until } from '../support/until';
import { startStack, type Stack } from '../support/stack';

const seconds = (c: { begin: string; end: string }) => parseWallTime(c.end) - parseWallTime(c.begin);

/**
 * Issue 13 item 6: a CC-FS that reads "at most three days" more strictly than the plan refuses the
 * range (`0300004 … endTime`); the export splits the refused chunk, uses the shorter span for every
 * later chunk, and exports every row. The manifest lists the ranges as requested and the span used.
 */
describe('span refusal adapts', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function expectEveryRow(
    request: { exportId: string; begin: string; end: string },
    manifest: Manifest,
  ): Promise<void> {
    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    const got = await exportedRowKeys(stack.output.exportDir(request.exportId), manifest);
    expect(expected.call.length).toBeGreaterThan(100);
    expect(expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`))).toEqual([]);
    expect(expected.record.filter((r) => !got.record.has(`${r.call_id}#${r.file_name}`))).toEqual([]);
  }

  function expectAbutting(manifest: Manifest, begin: string, end: string): void {
    expect(manifest.chunks[0]!.begin).toBe(begin);
    expect(manifest.chunks.at(-1)!.end).toBe(end);
    manifest.chunks.forEach((c, i) => {
      if (i > 0) expect(c.begin).toBe(manifest.chunks[i - 1]!.end);
    });
    expect(new Set(manifest.chunks.map((c) => c.index)).size).toBe(manifest.chunks.length);
  }

  it('exports every row when CC-FS refuses exactly 72 h, with chunks of at most 71:59:59', async () => {
    stack.sim.simulator.setOptions({ maxSpanSeconds: 259_199 });
    try {
      // One chunk at a time: only the first chunk is refused, every later one is planned shorter.
      const request = testRequest({
        from: '2024-03-01 00:00:00',
        to: '2024-03-10 00:00:00',
        options: { maxChunksInFlight: 1 },
      });
      await stack.exports.start(request);
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed');

      const manifest = await readManifest(result.manifestPath);
      expect(manifest.chunks.filter((c) => c.state !== 'verified' && c.state !== 'empty')).toEqual([]);
      expectAbutting(manifest, request.begin, request.end);
      expect(Math.max(...manifest.chunks.map(seconds))).toBe(259_199);
      expect(manifest.span).toMatchObject({
        plannedSeconds: 259_200,
        usedSeconds: 259_199,
        acceptedSeconds: 259_199,
      });
      expect(manifest.span.refused).toEqual([
        { index: 0, begin: '2024-03-01 00:00:00', end: '2024-03-04 00:00:00', seconds: 259_200 },
      ]);
      // CC-FS saw one refused range, and every range the manifest lists.
      const asked = stack.sim.simulator
        .inspect()
        .queries.map((q) => q.msgBody as { beginTime: string; endTime: string })
        .filter((q) => q.beginTime >= request.begin && q.beginTime < request.end);
      expect(asked.filter((q) => seconds({ begin: q.beginTime, end: q.endTime }) > 259_199)).toHaveLength(1);
      for (const c of manifest.chunks)
        expect(asked).toContainEqual(expect.objectContaining({ beginTime: c.begin, endTime: c.end }));
      await expectEveryRow(request, manifest);

      // The export says so, in its status and in the details the Temporal UI shows.
      const handle = stack.client.workflow.getHandle(exportWorkflowId(request.exportId));
      const status = await handle.query<ExportStatus>('exportStatus');
      expect(status.span).toMatchObject({ plannedSeconds: 259_200, usedSeconds: 259_199 });
      const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(meta.currentDetails).toContain('chunks now span at most 71:59:59 (planned 3 d)');
    } finally {
      stack.sim.simulator.setOptions({ maxSpanSeconds: 259_200 });
    }
  });

  it('halves the span until CC-FS accepts it when CC-FS refuses anything over a day', async () => {
    stack.sim.simulator.setOptions({ maxSpanSeconds: 86_400 });
    try {
      const request = testRequest({
        from: '2024-04-01 00:00:00',
        to: '2024-04-07 00:00:00',
        options: { maxChunksInFlight: 2 },
      });
      await stack.exports.start(request);
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed');

      const manifest = await readManifest(result.manifestPath);
      expect(manifest.chunks.filter((c) => c.state !== 'verified' && c.state !== 'empty')).toEqual([]);
      expectAbutting(manifest, request.begin, request.end);
      // 72 h refused, 71:59:59 refused, then halved to 35:59:59 (refused) and 17:59:59 (accepted).
      expect(manifest.span.usedSeconds).toBe(64_799);
      expect(Math.max(...manifest.chunks.map(seconds))).toBeLessThanOrEqual(64_799);
      expect(manifest.span.refused.length).toBeGreaterThanOrEqual(3);
      await expectEveryRow(request, manifest);
    } finally {
      stack.sim.simulator.setOptions({ maxSpanSeconds: 259_200 });
    }
  });

  it('retries only the failed ranges of a split export, with the span CC-FS accepted, and completes it', async () => {
    stack.sim.simulator.setOptions({ maxSpanSeconds: 259_199 });
    try {
      const request = testRequest({
        from: '2024-06-01 00:00:00',
        to: '2024-06-13 00:00:00',
        options: { maxChunksInFlight: 1, retryMaximumAttempts: 2 },
      });
      await stack.exports.start(request);
      // Two chunks verified at the learned span, then CC-FS fails every query: the rest fail.
      await until('two verified chunks', async () => {
        const status = await stack.exports.status(request.exportId);
        return status && status.counts.verified >= 2 ? true : undefined;
      });
      stack.sim.simulator.setFaults({ queryHttp500: 1 });
      const first = await stack.exports.result(request.exportId);
      stack.sim.simulator.setFaults({ queryHttp500: 0 });
      expect(first.state).toBe('completed_with_failures');
      const before = await readManifest(first.manifestPath);
      const kept = before.chunks.filter((c) => c.state === 'verified') as ChunkResult[];
      expect(kept.length).toBeGreaterThanOrEqual(2);
      const queriesBefore = stack.sim.simulator.inspect().queries.length;

      const retried = await stack.exports.retry(request.exportId);
      expect(retried).toMatchObject({ exportId: request.exportId });
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed');

      const manifest = await readManifest(result.manifestPath);
      expect(manifest.chunks.filter((c) => c.state !== 'verified' && c.state !== 'empty')).toEqual([]);
      expectAbutting(manifest, request.begin, request.end);
      // The verified chunks of the first run are kept as they were (same index, range and file).
      for (const k of kept)
        expect(manifest.chunks).toContainEqual(
          expect.objectContaining({ index: k.index, begin: k.begin, end: k.end, sha256: k.sha256 }),
        );
      // The retry planned only the gaps, with the span CC-FS had accepted: no range was refused again.
      const retryQueries = stack.sim.simulator
        .inspect()
        .queries.slice(queriesBefore)
        .map((q) => q.msgBody as { beginTime: string; endTime: string });
      expect(retryQueries.length).toBeGreaterThan(0);
      expect(retryQueries.filter((q) => seconds({ begin: q.beginTime, end: q.endTime }) > 259_199)).toEqual(
        [],
      );
      expect(retryQueries.filter((q) => kept.some((k) => k.begin === q.beginTime))).toEqual([]);
      expect(Math.max(...manifest.chunks.map(seconds))).toBeLessThanOrEqual(259_199);
      await expectEveryRow(request, manifest);
    } finally {
      stack.sim.simulator.setFaults({ queryHttp500: 0 });
      stack.sim.simulator.setOptions({ maxSpanSeconds: 259_200 });
    }
  });

  it('fails a chunk with a clear message when CC-FS refuses even an hour, and does not split further', async () => {
    stack.sim.simulator.setOptions({ maxSpanSeconds: 1800 });
    try {
      const request = testRequest({
        from: '2024-05-01 00:00:00',
        to: '2024-05-02 00:00:00',
        options: { maxChunksInFlight: 1 },
      });
      await stack.exports.start(request);
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed_with_failures');
      expect(result.failedChunks[0]).toMatchObject({ errorType: 'CcfsSpanRefused' });
      expect(result.failedChunks[0]!.error).toMatch(/does not split below 1:00:00/);

      const manifest = await readManifest(result.manifestPath);
      const failed = manifest.chunks.filter((c) => c.state === 'failed') as ChunkResult[];
      expect(failed.length).toBeGreaterThan(0);
      expect(failed[0]!.error).toMatch(/refused this .* range as too long/);
      expect(manifest.span.usedSeconds).toBeGreaterThanOrEqual(3600);
      expectAbutting(manifest, request.begin, request.end);
    } finally {
      stack.sim.simulator.setOptions({ maxSpanSeconds: 259_200 });
    }
  });
});
