import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputStore, writeJsonAtomic } from '../../activities/output-store';
import { combineRuns, summarise, type DayRun } from '../../lib/coverage';
import { dailyExportDay, dayRunOf, ExportRecords, LocalRecordSource } from '../../lib/export-records';
import { dayRanges } from '../../lib/schedule-service';
import type { ExportRequest } from '../../workflows/definitions';

const dir = mkdtempSync(join(tmpdir(), 'ccfs-records-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function request(exportId: string, day: string, next: string): ExportRequest {
  return {
    exportId,
    tenant: 'acc0001',
    begin: `${day} 00:00:00`,
    end: `${next} 00:00:00`,
    timeZone: 'Asia/Shanghai',
    dataType: 'call',
    filters: { accountId: 'acc0001' },
    options: {
      chunkSeconds: 259_200,
      maxChunksInFlight: 4,
      callbackTimeoutMs: 60_000,
      maxRequestsPerChunk: 4,
    } as ExportRequest['options'],
    origin: 'schedule:test',
  };
}

describe('durable record of finished exports', () => {
  it('writes an index entry only when the manifest is final, and names the day of a daily export', async () => {
    const store = new OutputStore(dir);
    const id = 'daily-acc0001-call-2024-03-10';
    await store.writeRequest(request(id, '2024-03-10', '2024-03-11'));
    await store.writeChunkResult(id, {
      index: 0,
      begin: '2024-03-10 00:00:00',
      end: '2024-03-11 00:00:00',
      state: 'failed',
      responseIds: [],
      requests: 2,
      error: 'HTTP 500',
    });
    await store.writeManifest(id, 'running');
    const records = new ExportRecords([new LocalRecordSource(dir)]);
    expect(await records.entries()).toEqual([]);

    await store.writeManifest(id, 'completed_with_failures');
    await store.writeManifest(id, 'completed_with_failures');
    const [entry] = await records.entries({ tenant: 'acc0001' });
    expect(entry).toMatchObject({
      exportId: id,
      day: '2024-03-10',
      state: 'completed_with_failures',
      counts: { failed: 1, verified: 0 },
      rangeBegin: '2024-03-09T16:00:00.000Z',
      // Two finalisations of one run count once.
      finishes: 1,
    });
    expect(dayRunOf(entry!)).toMatchObject({
      day: '2024-03-10',
      workflowId: 'ccfs-day/acc0001/call/2024-03-10',
      status: 'FAILED',
      state: 'failed',
      error: `export ${id} ended completed_with_failures: 1 failed and 0 cancelled chunk(s); 2024-03-10 00:00:00 → 2024-03-11 00:00:00: HTTP 500`,
    });
    expect((await records.find(id))?.manifestPath).toBe(join(dir, id, 'manifest.json'));
    expect(await records.find('no-such-export')).toBeUndefined();
  });

  it('rebuilds the entries missing from the index from the manifests, and leaves present ones alone', async () => {
    const records = new ExportRecords([new LocalRecordSource(dir)]);
    const before = await records.entries();
    expect(before.length).toBeGreaterThan(0);
    rmSync(join(dir, '.index'), { recursive: true, force: true });
    expect(await records.entries()).toEqual([]);
    const write = (rel: string, entry: unknown) => writeJsonAtomic(join(dir, rel), entry);
    expect(await records.rebuild(write)).toBe(before.length);
    expect((await records.entries()).map((e) => [e.exportId, e.state, e.day])).toEqual(
      before.map((e) => [e.exportId, e.state, e.day]),
    );
    expect(await records.rebuild(write)).toBe(0);
  });

  it('tells daily export IDs from look-alikes', () => {
    const r = (exportId: string, begin = '2024-03-10 00:00:00') => ({
      exportId,
      tenant: 'acc-1',
      dataType: 'call' as const,
      begin,
    });
    expect(dailyExportDay(r('daily-acc-1-call-2024-03-10'))).toEqual({ day: '2024-03-10', forced: false });
    expect(dailyExportDay(r('daily-acc-1-call-2024-03-10-f20240401T000000Z'))).toEqual({
      day: '2024-03-10',
      forced: true,
    });
    expect(dailyExportDay(r('cdr-2024-03-10'))).toBeUndefined();
    expect(dailyExportDay(r('daily-acc-1-call-2024-03-10', '2024-03-10 06:00:00'))).toBeUndefined();
  });

  it('counts a recorded run once when visibility still shows it, and keeps it when visibility has lost it', () => {
    const run = (over: Partial<DayRun>): DayRun => ({
      tenant: 'acc0001',
      dataType: 'call',
      day: '2024-03-10',
      workflowId: 'ccfs-day/acc0001/call/2024-03-10',
      runId: 'r',
      status: 'COMPLETED',
      state: 'verified',
      startTime: '2024-03-11T00:00:00Z',
      exportId: 'daily-acc0001-call-2024-03-10',
      ...over,
    });
    const recorded = run({ runId: 'record:x', finishes: 1 });
    expect(combineRuns([run({})], [recorded])).toEqual({ runs: [run({})], count: 1 });
    expect(combineRuns([], [recorded])).toEqual({ runs: [recorded], count: 1 });
    const c = summarise({
      tenant: 'acc0001',
      dataType: 'call',
      runs: [],
      recorded: [recorded],
      from: '2024-03-09',
      to: '2024-03-10',
    });
    expect(c.ranges.map((r) => [r.from, r.state])).toEqual([
      ['2024-03-09', 'missing'],
      ['2024-03-10', 'verified'],
    ]);
  });

  it('backfills consecutive days as one range', () => {
    expect(dayRanges(['2024-03-10', '2024-02-28', '2024-02-29', '2024-03-01', '2024-03-12'])).toEqual([
      ['2024-02-28', '2024-03-01'],
      ['2024-03-10', '2024-03-10'],
      ['2024-03-12', '2024-03-12'],
    ]);
  });
});
