import { sha256File } from '../support/exports';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWallTime } from '../../domain/wall-time';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { startStack, TEST_SK, type Stack } from '../support/stack';

describe('export workflow against the simulator', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('exports nine days as three verified chunks whose files match what CC-FS served', async () => {
    const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-10 00:00:00' });
    const started = await stack.exports.start(request);
    expect(started.created).toBe(true);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    expect(result.counts).toMatchObject({ verified: 3, failed: 0, pending: 0 });
    const manifest = await readManifest(result.manifestPath);
    expect(manifest.state).toBe('completed');
    expect(manifest.chunks.map((c) => [c.begin, c.end])).toEqual([
      ['2024-03-01 00:00:00', '2024-03-04 00:00:00'],
      ['2024-03-04 00:00:00', '2024-03-07 00:00:00'],
      ['2024-03-07 00:00:00', '2024-03-10 00:00:00'],
    ]);
    const served = new Map(
      stack.sim.simulator
        .inspect()
        .downloads.filter((d) => d.complete)
        .map((d) => [d.billFileName, d.sha256]),
    );
    const dir = stack.output.exportDir(request.exportId);
    for (const chunk of manifest.chunks) {
      if (chunk.state !== 'verified') throw new Error(`chunk ${chunk.index} is ${chunk.state}`);
      expect(chunk.sha256).toBe(served.get(chunk.billFileName));
      expect(await sha256File(join(dir, chunk.file!))).toBe(chunk.sha256);
      expect(chunk.entries!.map((e) => e.kind).sort()).toEqual(['call', 'record']);
      expect(chunk.responseIds.length).toBeGreaterThan(0);
    }
    // Sorted listing = time order; nothing left behind.
    const zips = readdirSync(dir).filter((f) => f.endsWith('.zip'));
    expect(zips).toEqual([...zips].sort());
    expect(zips).toHaveLength(3);
    expect(readdirSync(dir)).not.toContain('.partial');
  });

  it('keeps every row of 92 days across a DST change in Europe/Berlin', async () => {
    const request = testRequest({
      from: '2024-09-01 00:00:00',
      to: '2024-12-02 00:00:00',
      timeZone: 'Europe/Berlin',
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');

    const manifest = await readManifest(result.manifestPath);
    manifest.chunks.forEach((c, i) => {
      if (i > 0) expect(c.begin).toBe(manifest.chunks[i - 1]!.end);
    });
    expect(manifest.chunks[0]!.begin).toBe(request.begin);
    expect(manifest.chunks.at(-1)!.end).toBe(request.end);
    const dstChunk = manifest.chunks.find(
      (c) =>
        parseWallTime(c.begin) <= parseWallTime('2024-10-27 02:00:00') &&
        parseWallTime(c.end) > parseWallTime('2024-10-27 02:00:00'),
    );
    expect(dstChunk).toBeDefined();

    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    const got = await exportedRowKeys(stack.output.exportDir(request.exportId), manifest);
    expect(expected.call.length).toBeGreaterThan(10_000);
    const missingCalls = expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`));
    const missingRecords = expected.record.filter((r) => !got.record.has(`${r.call_id}#${r.file_name}`));
    expect(missingCalls).toEqual([]);
    expect(missingRecords).toEqual([]);
  });

  it('keeps the SK out of every history and log line of the run', async () => {
    const histories: string[] = [];
    for await (const wf of stack.client.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
      const history = await stack.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      histories.push(JSON.stringify(history));
    }
    expect(histories.length).toBeGreaterThan(3);
    expect(stack.logs.length).toBeGreaterThan(10);
    for (const text of [...histories, ...stack.logs]) expect(text).not.toContain(TEST_SK);
  });
});
