import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyZip } from '../../ccfs/zip';
import { type RunningSimulator, type SimulatorOptions, startSimulator } from '../../simulator/app';
import yauzl from 'yauzl';
import {
  type CallbackReceiver,
  downloadBillFile,
  queryBillData,
  startCallbackReceiver,
} from '../../simulator/test-kit';

/**
 * The simulator's CSV quirks (options.csv) over real HTTP, each read back by the product's verifyZip:
 * the rows it counts must be the rows the simulator says it wrote (`/__sim` download records).
 */

const creds = { ak: 'ak-csv', sk: 'sk-csv' };
const day = { beginTime: '2024-03-01 00:00:00', endTime: '2024-03-01 12:00:00', dataType: 'call_record' };

let receiver: CallbackReceiver;
let dir: string;
const running: RunningSimulator[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sim-csv-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  receiver = await startCallbackReceiver();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  await receiver.close();
});

/** Every entry of an in-memory ZIP as bytes (and as UTF-8 text, for looking at lines). */
async function readZip(buffer: Buffer): Promise<Array<{ name: string; data: Buffer; text: string }>> {
  const zip = await yauzl.fromBufferPromise(buffer, { lazyEntries: true });
  const out: Array<{ name: string; data: Buffer; text: string }> = [];
  try {
    for await (const entry of zip.eachEntry()) {
      const chunks: Buffer[] = [];
      for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
      const data = Buffer.concat(chunks);
      out.push({ name: entry.fileName, data, text: data.toString('utf8') });
    }
  } finally {
    zip.close();
  }
  return out;
}

let n = 0;
/** Exports `day` from a simulator with these options: the ZIP on disk, and the simulator's rows per entry. */
async function exportWith(
  options: Partial<SimulatorOptions>,
): Promise<{ path: string; zip: Buffer; truth: Record<string, number>; sim: RunningSimulator }> {
  const sim = await startSimulator({ port: 0, accounts: [creds], callbackDelayMs: 10, ...options });
  running.push(sim);
  const q = await queryBillData(sim.url, creds, { callBackURL: receiver.url, ...day });
  expect(q.json<{ resultCode: string }>().resultCode).toBe('0');
  const [cb] = await receiver.waitFor(1);
  const d = await downloadBillFile(sim.url, creds, cb!.body.msgBody.billFileName);
  expect(d.status).toBe(200);
  const path = join(dir, `z${n++}.zip`);
  await writeFile(path, d.body);
  const record = sim.simulator.inspect().downloads.at(-1)!;
  return { path, zip: d.body, truth: record.rows ?? {}, sim };
}

function expectedRows(sim: RunningSimulator): { call: number; record: number } {
  const rows = sim.simulator.rowsInRange({ ...day, dataType: 'call_record' });
  return { call: rows.call.length, record: rows.record.length };
}

describe('simulator CSV quirks, read back by verifyZip', () => {
  it.each([
    ['a BOM', { bom: true }, (b: Buffer) => b.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))],
    ['CRLF endings', { lineEnding: 'crlf' as const }, (b: Buffer) => b.includes('\r\n')],
    ['bare CR endings', { lineEnding: 'cr' as const }, (b: Buffer) => b.includes('\r') && !b.includes('\n')],
    ['two missing columns', { missingColumns: 2 }, (b: Buffer) => b.includes('\n')],
    ['quoted line breaks', { embeddedNewline: 0.3 }, (b: Buffer) => b.includes('\n(display name withheld)"')],
  ])('counts every row of files written with %s', async (_, csv, check) => {
    const { path, zip, truth, sim } = await exportWith({ csv, callsPerHour: 20 });
    const entries = await readZip(zip);
    for (const e of entries) expect(check(e.data)).toBe(true);
    const summary = await verifyZip(path, { dataType: 'call_record' });
    expect(summary.warnings).toEqual([]);
    expect(Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]))).toEqual(truth);
    const expected = expectedRows(sim);
    expect(summary.entries.map((e) => e.rows)).toEqual([expected.call, expected.record]);
    expect(summary.entries.every((e) => e.header)).toBe(true);
  });

  it('writes GBK text that verifyZip counts exactly and flags as not UTF-8', async () => {
    // Enough records that some original_file_name values are 录音_….wav.
    const { path, zip, truth } = await exportWith({ csv: { encoding: 'gbk' }, callsPerHour: 60 });
    const record = (await readZip(zip)).find((e) => e.name.includes('_record'))!;
    expect(record.data.includes(Buffer.from('c2bcd2f4', 'hex'))).toBe(true);
    const summary = await verifyZip(path);
    expect(Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]))).toEqual(truth);
    expect(summary.entries[1]!.warnings).toEqual([expect.stringMatching(/not valid UTF-8/)]);
  });

  it('counts files without a header row', async () => {
    const { path, truth, sim } = await exportWith({ headerRow: false, csv: { lineEnding: 'crlf' } });
    const summary = await verifyZip(path);
    expect(summary.entries.map((e) => [e.rows, e.header])).toEqual([
      [expectedRows(sim).call, false],
      [expectedRows(sim).record, false],
    ]);
    expect(Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]))).toEqual(truth);
  });

  it('opens a quote that never closes in the named field of the named rows, one line each (input 6)', async () => {
    const { path, zip, truth } = await exportWith({
      callsPerHour: 20,
      filesPerKind: 2,
      csv: { unbalancedQuoteRows: [16], unbalancedQuoteField: 'caller_no' },
    });
    const entries = await readZip(zip);
    expect(entries).toHaveLength(4);
    for (const e of entries) expect(e.text.split('\n')[17]).toMatch(/^[^"]*,"Anonymous,13\d{9},/);
    const summary = await verifyZip(path, { dataType: 'call_record' });
    expect(Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]))).toEqual(truth);
    for (const e of summary.entries)
      expect(e.warnings).toEqual(['line 18: quote opened here never closes; rows counted by line']);
    expect(summary.warnings).toHaveLength(4);
  });

  it('gives unclosed quotes to a fraction of rows, decided by the seed', async () => {
    const { path, zip, truth } = await exportWith({ callsPerHour: 30, csv: { unbalancedQuote: 0.05 } });
    const broken = (await readZip(zip)).map(
      (e) => e.text.split('\n').filter((l) => l.includes('"Anonymous,')).length,
    );
    expect(broken.every((k) => k > 0)).toBe(true);
    const summary = await verifyZip(path);
    expect(Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]))).toEqual(truth);
    expect(summary.entries.every((e) => (e.warnings?.length ?? 0) > 0)).toBe(true);
  });

  it('changes the CSV writing at runtime through /__sim/options', async () => {
    const sim = await startSimulator({ port: 0, accounts: [creds], callbackDelayMs: 10 });
    running.push(sim);
    const res = await fetch(`${sim.url}/__sim/options`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csv: { lineEnding: 'cr', bom: true } }),
    });
    expect(res.status).toBe(200);
    const q = await queryBillData(sim.url, creds, { callBackURL: receiver.url, ...day });
    expect(q.json<{ resultCode: string }>().resultCode).toBe('0');
    const [cb] = await receiver.waitFor(1);
    const d = await downloadBillFile(sim.url, creds, cb!.body.msgBody.billFileName);
    const [call] = await readZip(d.body);
    expect(call!.data.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(call!.data.includes('\n')).toBe(false);
    const bad = await fetch(`${sim.url}/__sim/options`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csv: { lineEnding: 'lfcr' } }),
    });
    expect(bad.status).toBe(400);
  });
});
