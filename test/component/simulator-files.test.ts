import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RunningSimulator, type SimulatorOptions, startSimulator } from '../../simulator/app';
import { CDR_COLUMNS, EXTRA_CDR_COLUMNS, RECORD_COLUMNS } from '../../simulator/data';
import {
  type CallbackReceiver,
  type ZipEntryContent,
  downloadBillFile,
  parseCsv,
  queryBillData,
  readZip,
  startCallbackReceiver,
} from '../../simulator/test-kit';

const creds = { ak: 'ak-files', sk: 'sk-files' };
const day = { beginTime: '2024-03-01 00:00:00', endTime: '2024-03-02 00:00:00' };

let receiver: CallbackReceiver;
const running: RunningSimulator[] = [];

beforeEach(async () => {
  receiver = await startCallbackReceiver();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  await receiver.close();
});

async function start(options: Partial<SimulatorOptions> = {}): Promise<RunningSimulator> {
  const sim = await startSimulator({ port: 0, accounts: [creds], callbackDelayMs: 10, ...options });
  running.push(sim);
  return sim;
}

/** Queries, waits for the callback, downloads: the ZIP bytes and the billFileName. */
async function exportRange(
  sim: RunningSimulator,
  msgBody: Record<string, unknown>,
  timestamp?: Date,
): Promise<{ zip: Buffer; billFileName: string; responseId: string }> {
  const before = receiver.received.length;
  const q = await queryBillData(sim.url, creds, { callBackURL: receiver.url, ...msgBody }, { timestamp });
  const answer = q.json<{ resultCode: string; resultData: { responseId: string } }>();
  expect(answer.resultCode).toBe('0');
  const cbs = await receiver.waitFor(before + 1);
  const { billFileName, responseId } = cbs[before]!.body.msgBody;
  expect(responseId).toBe(answer.resultData.responseId);
  const d = await downloadBillFile(sim.url, creds, billFileName, { timestamp });
  expect(d.headers['content-type']).toBe('Application/Octet-stream;charset=UTF-8');
  return { zip: d.body, billFileName, responseId };
}

function rowsOf(entries: ZipEntryContent[], kind: 'call' | 'record', header = true): string[][] {
  return entries
    .filter((e) => e.name.includes(`_${kind}`))
    .flatMap((e) => {
      const rows = parseCsv(e.text);
      return header ? rows.slice(1) : rows;
    });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('simulator bill files', () => {
  it('names entries {yyyyMMddHHmmssSSS}{3 digits}_{kind}_{seq}.csv after the generation time in the tenant zone', async () => {
    const fixed = new Date('2024-03-05T23:30:00.123Z');
    const sim = await start({ timeZone: 'Asia/Shanghai', clock: () => fixed });
    const { zip, billFileName } = await exportRange(sim, { ...day, dataType: 'call_record' }, fixed);
    expect(billFileName).toMatch(/^20240306_/);
    const entries = await readZip(zip);
    expect(entries.map((e) => e.name)).toEqual([
      expect.stringMatching(/^20240306073000123\d{3}_call_1\.csv$/) as unknown,
      expect.stringMatching(/^20240306073000123\d{3}_record_1\.csv$/) as unknown,
    ]);
    // DOS mtime = the same wall time, whatever the zone of the test process.
    const m = entries[0]!.lastModified;
    expect([m.getFullYear(), m.getMonth() + 1, m.getDate(), m.getHours(), m.getMinutes()]).toEqual([
      2024, 3, 6, 7, 30,
    ]);
  });

  it('writes a header row whose first cell is developer, with the documented columns', async () => {
    const sim = await start();
    const entries = await readZip((await exportRange(sim, { ...day, dataType: 'call_record' })).zip);
    const [call, record] = entries.map((e) => parseCsv(e.text));
    expect(call![0]).toEqual([...CDR_COLUMNS]);
    expect(record![0]).toEqual([...RECORD_COLUMNS]);
    expect(call!.slice(1).every((r) => r.length === 21)).toBe(true);
    expect(record!.slice(1).every((r) => r.length === 18)).toBe(true);
    expect(entries.every((e) => e.text.endsWith('\n') && !e.text.includes('\r'))).toBe(true);
  });

  it('omits the header row when configured', async () => {
    const sim = await start({ headerRow: false });
    const entries = await readZip((await exportRange(sim, { ...day, dataType: 'call' })).zip);
    const rows = parseCsv(entries[0]!.text);
    expect(rows[0]![0]).toBe('dev0001');
    expect(rows).toHaveLength(sim.simulator.rowsInRange(day).call.length);
  });

  it('adds two unknown trailing CDR columns when configured', async () => {
    const sim = await start({ extraCdrColumns: true });
    const entries = await readZip((await exportRange(sim, { ...day, dataType: 'call' })).zip);
    const rows = parseCsv(entries[0]!.text);
    expect(rows[0]).toEqual([...CDR_COLUMNS, ...EXTRA_CDR_COLUMNS]);
    expect(rows.slice(1).every((r) => r.length === 23)).toBe(true);
  });

  it('quotes cells per RFC 4180 and writes UTF-8', async () => {
    const sim = await start({ callsPerHour: 30 });
    const entries = await readZip((await exportRange(sim, { ...day, dataType: 'record' })).zip);
    expect(entries[0]!.text).toMatch(/"rec [^"]+, leg \d\.wav"/);
    expect(entries[0]!.text).toMatch(/"agent ""\d+"" [^"]+\.wav"/);
    expect(entries[0]!.text).toContain('录音_');
    const expected = sim.simulator
      .rowsInRange({ ...day, dataType: 'record' })
      .record.map((r) => RECORD_COLUMNS.map((c) => r[c]));
    expect(rowsOf(entries, 'record')).toEqual(expected);
  });

  it.each([
    ['call', ['call']],
    ['record', ['record']],
    ['call_record', ['call', 'record']],
  ])('puts only the requested kinds in the ZIP for dataType %s', async (dataType, kinds) => {
    const sim = await start();
    const entries = await readZip((await exportRange(sim, { ...day, dataType })).zip);
    expect(entries.map((e) => /_(call|record)_\d+\.csv$/.exec(e.name)![1])).toEqual(kinds);
  });

  it('splits rows over several files per kind, in order, without losing any', async () => {
    const sim = await start({ filesPerKind: 3 });
    const entries = await readZip((await exportRange(sim, { ...day, dataType: 'call_record' })).zip);
    expect(entries.map((e) => e.name.replace(/^\d{20}/, ''))).toEqual([
      '_call_1.csv',
      '_call_2.csv',
      '_call_3.csv',
      '_record_1.csv',
      '_record_2.csv',
      '_record_3.csv',
    ]);
    const all = sim.simulator.rowsInRange(day);
    expect(rowsOf(entries, 'call').map((r) => `${r[4]}/${r[17]}`)).toEqual(
      all.call.map((r) => `${r.call_id}/${r.call_id_num}`),
    );
    expect(rowsOf(entries, 'record').map((r) => r[9])).toEqual(all.record.map((r) => r.file_name));
  });

  it('numbers the rows of a call 1, 2, … and the last one -1', async () => {
    const sim = await start({ callsPerHour: 20 });
    const rows = rowsOf(await readZip((await exportRange(sim, { ...day, dataType: 'call' })).zip), 'call');
    const byCall = new Map<string, string[]>();
    for (const r of rows) byCall.set(r[4]!, [...(byCall.get(r[4]!) ?? []), r[17]!]);
    expect(byCall.size).toBeGreaterThan(100);
    for (const nums of byCall.values()) {
      expect(nums).toEqual([...Array.from({ length: nums.length - 1 }, (_, i) => String(i + 1)), '-1']);
    }
    expect([...byCall.values()].some((n) => n.length > 1)).toBe(true);
    expect([...byCall.values()].some((n) => n.length === 1)).toBe(true);
  });

  it('serves the same bytes on every download of a file', async () => {
    const sim = await start();
    const { zip, billFileName } = await exportRange(sim, { ...day, dataType: 'call_record' });
    const again = await downloadBillFile(sim.url, creds, billFileName);
    expect(sha256(again.body)).toBe(sha256(zip));
    const downloads = sim.simulator.inspect().downloads;
    expect(downloads.map((d) => d.sha256)).toEqual([sha256(zip), sha256(zip)]);
    expect(downloads[0]).toMatchObject({
      outcome: '0',
      complete: true,
      bytes: zip.length,
      bytesSent: zip.length,
    });
  });

  it('holds exactly the rows /__sim/rows lists for the range, with and without filters', async () => {
    const sim = await start({ callsPerHour: 12 });
    const someCall = sim.simulator.rowsInRange(day).call.find((r) => r.agent_id !== '')!;
    const filterSets: Array<Record<string, string>> = [
      {},
      { agentId: someCall.agent_id },
      { calleeNo: someCall.callee_no },
      { callerNo: someCall.caller_no },
    ];
    for (const filters of filterSets) {
      const msg = { ...day, dataType: 'call_record', ...filters };
      const entries = await readZip((await exportRange(sim, msg)).zip);
      const params = new URLSearchParams({ ...day, dataType: 'call_record', ...filters });
      const keys = (await (await fetch(`${sim.url}/__sim/rows?${params.toString()}`)).json()) as {
        call: Array<{ call_id: string; call_id_num: string }>;
        record: Array<{ call_id: string; file_name: string }>;
      };
      expect(keys.call.length).toBeGreaterThan(0);
      expect(rowsOf(entries, 'call').map((r) => ({ call_id: r[4], call_id_num: r[17] }))).toEqual(keys.call);
      expect(rowsOf(entries, 'record').map((r) => ({ call_id: r[4], file_name: r[9] }))).toEqual(keys.record);
      const [download] = sim.simulator.inspect().downloads.slice(-1);
      expect(Object.values(download!.rows!)).toEqual([keys.call.length, keys.record.length]);
    }
  });

  it('filters by calleeNo2, the second callee of transferred calls', async () => {
    const sim = await start({ callsPerHour: 30 });
    const transferred = sim.simulator.rowsInRange(day).call.find((r) => r.callee_no2 !== '')!;
    const rows = sim.simulator.rowsInRange({ ...day, calleeNo2: transferred.callee_no2 }).call;
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.callee_no2 === transferred.callee_no2)).toBe(true);
  });

  it('includes a call beginning exactly at endTime unless endInclusive is off', async () => {
    const sim = await start();
    const target = sim.simulator.rowsInRange(day).call[5]!;
    const range = { beginTime: '2024-03-01 00:00:00', endTime: target.call_begin };
    const ids = (): string[] => sim.simulator.rowKeys(range).call.map((k) => k.call_id);
    expect(ids()).toContain(target.call_id);
    sim.simulator.setOptions({ endInclusive: false });
    expect(ids()).not.toContain(target.call_id);
    const { zip } = await exportRange(sim, { ...range, dataType: 'call' });
    expect(rowsOf(await readZip(zip), 'call').map((r) => r[4])).not.toContain(target.call_id);
  });

  it('cuts a range into abutting chunks without losing or inventing rows', async () => {
    const sim = await start({ callsPerHour: 10 });
    const whole = sim.simulator.rowKeys({ beginTime: '2024-03-01 00:00:00', endTime: '2024-03-04 00:00:00' });
    const bounds = [
      '2024-03-01 00:00:00',
      '2024-03-01 07:13:00',
      '2024-03-02 13:00:59',
      '2024-03-04 00:00:00',
    ];
    const seen = new Set<string>();
    for (let i = 0; i < bounds.length - 1; i++) {
      for (const k of sim.simulator.rowKeys({ beginTime: bounds[i]!, endTime: bounds[i + 1]! }).call)
        seen.add(`${k.call_id}/${k.call_id_num}`);
    }
    expect(seen).toEqual(new Set(whole.call.map((k) => `${k.call_id}/${k.call_id_num}`)));
  });

  it('answers 0300012 when the data density leaves a range empty', async () => {
    const sim = await start({ callsPerHour: 0 });
    const q = await queryBillData(sim.url, creds, { ...day, dataType: 'call', callBackURL: receiver.url });
    expect(q.json().resultCode).toBe('0300012');
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.received).toEqual([]);
  });

  it('answers 0300012 for record-only queries of a range with calls but no recordings', async () => {
    const sim = await start({ callsPerHour: 0.2 });
    const hours = Array.from({ length: 24 }, (_, h) => `2024-03-01 ${String(h).padStart(2, '0')}`);
    const empty = hours.find((h) => {
      const rows = sim.simulator.rowsInRange({ beginTime: `${h}:00:00`, endTime: `${h}:59:59` });
      return rows.call.length > 0 && rows.record.length === 0;
    })!;
    expect(empty).toBeDefined();
    const msg = { beginTime: `${empty}:00:00`, endTime: `${empty}:59:59`, callBackURL: receiver.url };
    expect((await queryBillData(sim.url, creds, { ...msg, dataType: 'record' })).json().resultCode).toBe(
      '0300012',
    );
    expect((await queryBillData(sim.url, creds, { ...msg, dataType: 'call_record' })).json().resultCode).toBe(
      '0',
    );
  });
});

describe('simulator determinism', () => {
  it('gives the same responseIds, names and ZIP bytes for the same seed and clock', async () => {
    const fixed = new Date('2024-03-10T08:00:00Z');
    const results = [];
    for (const sim of [
      await start({ seed: 42, clock: () => fixed }),
      await start({ seed: 42, clock: () => fixed }),
    ]) {
      results.push(await exportRange(sim, { ...day, dataType: 'call_record' }, fixed));
    }
    expect(results[1]!.responseId).toBe(results[0]!.responseId);
    expect(results[1]!.billFileName).toBe(results[0]!.billFileName);
    expect(sha256(results[1]!.zip)).toBe(sha256(results[0]!.zip));
  });

  it('gives other rows for another seed', async () => {
    const a = await start({ seed: 1 });
    const b = await start({ seed: 2 });
    expect(a.simulator.rowsInRange(day)).not.toEqual(b.simulator.rowsInRange(day));
    expect(a.simulator.rowsInRange(day)).toEqual(a.simulator.rowsInRange(day));
  });

  it('generates callsPerHour calls per wall hour', async () => {
    const sim = await start({ callsPerHour: 7 });
    const calls = new Set(sim.simulator.rowsInRange(day).call.map((r) => r.call_id));
    // 2024-03-01 00:00:00 … 2024-03-02 00:00:00 inclusive: 24 full hours (a call at exactly 00:00:00 the next day is rare).
    expect(calls.size).toBeGreaterThanOrEqual(7 * 24);
    expect(calls.size).toBeLessThanOrEqual(7 * 25);
  });
});

describe('simulator wall time', () => {
  it('skips the nonexistent spring-forward hour', async () => {
    const sim = await start({ timeZone: 'America/New_York', callsPerHour: 20 });
    const rows = sim.simulator.rowsInRange({
      beginTime: '2024-03-10 00:00:00',
      endTime: '2024-03-10 05:00:00',
    }).call;
    const firstRows = rows.filter((r, i) => i === 0 || rows[i - 1]!.call_id !== r.call_id);
    const hours = new Set(firstRows.map((r) => r.call_begin.slice(11, 13)));
    expect(hours).toEqual(new Set(['00', '01', '03', '04']));
  });

  it('generates the repeated fall-back hour once, with unique call ids', async () => {
    const sim = await start({ timeZone: 'America/New_York', callsPerHour: 20 });
    const rows = sim.simulator.rowsInRange({
      beginTime: '2024-11-03 01:00:00',
      endTime: '2024-11-03 01:59:59',
    }).call;
    const calls = new Set(rows.map((r) => r.call_id));
    expect(calls.size).toBe(20);
    expect(new Set(rows.map((r) => `${r.call_id}/${r.call_id_num}`)).size).toBe(rows.length);
  });

  it('measures the 3-day limit on the wall clock across a DST change', async () => {
    const sim = await start({ timeZone: 'America/New_York' });
    const msg = { dataType: 'call', callBackURL: receiver.url, beginTime: '2024-03-09 00:00:00' };
    expect(
      (await queryBillData(sim.url, creds, { ...msg, endTime: '2024-03-12 00:00:00' })).json().resultCode,
    ).toBe('0');
    expect(
      (await queryBillData(sim.url, creds, { ...msg, endTime: '2024-03-12 00:00:01' })).json().resultCode,
    ).toBe('0300004');
  });
});

describe('simulator limits', () => {
  it('answers 0300009 beyond maxOutstandingQueries until files are generated', async () => {
    const sim = await start({ maxOutstandingQueries: 2, callbackDelayMs: 400 });
    const msg = { ...day, dataType: 'call', callBackURL: receiver.url };
    expect((await queryBillData(sim.url, creds, msg)).json().resultCode).toBe('0');
    expect((await queryBillData(sim.url, creds, msg)).json().resultCode).toBe('0');
    expect((await queryBillData(sim.url, creds, msg)).json().resultCode).toBe('0300009');
    await receiver.waitFor(2);
    expect((await queryBillData(sim.url, creds, msg)).json().resultCode).toBe('0');
  });

  it('answers 0300011 once a file is older than fileTtlMs', async () => {
    const sim = await start({ fileTtlMs: 300 });
    const { billFileName } = await exportRange(sim, { ...day, dataType: 'call' });
    await new Promise((r) => setTimeout(r, 400));
    expect((await downloadBillFile(sim.url, creds, billFileName)).json().resultCode).toBe('0300011');
    expect(sim.simulator.inspect().files[0]!.expired).toBe(true);
  });
});
