import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readZipRows } from '../../ccfs/zip';
import { readManifest, sha256File, testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

/**
 * Issue 13, input 6: a CSV field opens a quote that never closes (a caller display name
 * `"Anonymous,…`). The ZIP's CRCs are good, so the chunk is verified, downloaded once, and the
 * manifest counts the rows the file holds — by line where the quoting is broken — with a warning
 * naming the line. Real Temporal dev server, the simulator over real HTTP.
 */
describe('CSV content is data, not transfer', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      simulator: {
        csv: {
          unbalancedQuoteRows: [16, 60],
          unbalancedQuoteField: 'caller_no',
          lineEnding: 'crlf',
          bom: true,
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('verifies a chunk whose CSVs hold unclosed quotes, counting the file’s records by line and showing the lines in the manifest', async () => {
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      dataType: 'call_record',
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    expect(result.counts).toMatchObject({ verified: 1, failed: 0 });

    const manifest = await readManifest(result.manifestPath);
    const [chunk] = manifest.chunks;
    if (chunk?.state !== 'verified') throw new Error(`chunk is ${chunk?.state}`);

    // Downloaded once and kept: content is never a reason to fetch again.
    const downloads = stack.sim.simulator
      .inspect()
      .downloads.filter((d) => d.billFileName === chunk.billFileName);
    expect(downloads).toHaveLength(1);
    const served = downloads[0]!;
    expect(served.complete).toBe(true);
    const file = join(stack.output.exportDir(request.exportId), chunk.file!);
    expect(await sha256File(file)).toBe(served.sha256);

    // The simulator's truth: the rows it wrote per entry (each broken row is still one line).
    const truth = served.rows!;
    expect(Object.keys(truth)).toHaveLength(2);
    expect(Object.fromEntries(chunk.entries!.map((e) => [e.name, e.rows]))).toEqual(truth);
    const total = Object.values(truth).reduce((a, b) => a + b, 0);
    expect(chunk.rows).toBe(total);
    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    expect(total).toBe(expected.call.length + expected.record.length);
    expect(total).toBeGreaterThan(200);

    // The warning names the line in each entry (header = line 1, so data rows 16 and 60 are lines 18 and 62).
    const lines = [
      'line 18: quote opened here never closes; rows counted by line',
      'line 62: quote opened here never closes; rows counted by line',
    ];
    for (const e of chunk.entries!) expect(e.warnings).toEqual(lines);
    expect(chunk.warnings).toEqual(chunk.entries!.flatMap((e) => lines.map((l) => `${e.name}: ${l}`)));

    // The exported rows: every call of the range is there, and the rows read back are the rows counted.
    const callIds = { call: new Set<string>(), record: new Set<string>() };
    let read = 0;
    for await (const row of readZipRows(file)) {
      read++;
      callIds[row.kind as 'call' | 'record'].add(row.cells[4]!);
    }
    expect(read).toBe(total);
    expect(callIds.call).toEqual(new Set(expected.call.map((r) => r.call_id)));
    expect(callIds.record).toEqual(new Set(expected.record.map((r) => r.call_id)));
  });

  it('verifies chunks written in GBK with bare CR endings, no header and missing columns, counting every row', async () => {
    stack.sim.simulator.setOptions({
      headerRow: false,
      csv: { encoding: 'gbk', lineEnding: 'cr', missingColumns: 3 },
    });
    const request = testRequest({
      from: '2024-03-05 00:00:00',
      to: '2024-03-11 00:00:00',
      dataType: 'call_record',
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    expect(manifest.chunks).toHaveLength(2);
    const served = stack.sim.simulator.inspect().downloads;
    let total = 0;
    for (const chunk of manifest.chunks) {
      if (chunk.state !== 'verified') throw new Error(`chunk ${chunk.index} is ${chunk.state}`);
      const downloads = served.filter((d) => d.billFileName === chunk.billFileName);
      expect(downloads).toHaveLength(1);
      expect(Object.fromEntries(chunk.entries!.map((e) => [e.name, e.rows]))).toEqual(downloads[0]!.rows);
      for (const w of chunk.warnings ?? []) expect(w).toMatch(/_record_1\.csv: text is not valid UTF-8/);
      total += chunk.rows!;
    }
    // 录音_….wav names are in GBK in some record rows: at least one chunk says so.
    expect(manifest.chunks.some((c) => 'warnings' in c && (c.warnings?.length ?? 0) > 0)).toBe(true);
    const expected = stack.sim.simulator.rowKeys({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
    });
    expect(total).toBe(expected.call.length + expected.record.length);
  });
});
