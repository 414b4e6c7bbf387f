import { createHash } from 'node:crypto';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { DOWNLOAD_BILL_FILE_PATH } from '../../ccfs/protocol';
import { sign } from '../../ccfs/signer';
import { type RunningSimulator, type SimulatorOptions, startSimulator } from '../../simulator/app';
import { downloadBillFile, envelope, parseCsv, queryBillData, readZip } from '../../simulator/test-kit';

const creds = { ak: 'ak-large', sk: 'sk-large' };
const msg = {
  beginTime: '2024-03-01 00:00:00',
  endTime: '2024-03-01 02:00:00',
  dataType: 'call_record',
  callBackURL: 'http://127.0.0.1:9/unused',
};

let sim: RunningSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function generated(
  options: Partial<SimulatorOptions>,
): Promise<{ sim: RunningSimulator; name: string }> {
  sim = await startSimulator({
    port: 0,
    accounts: [creds],
    callbackDelayMs: 1,
    callbackMaxAttempts: 1,
    ...options,
  });
  expect((await queryBillData(sim.url, creds, msg)).json().resultCode).toBe('0');
  const deadline = Date.now() + 5_000;
  for (;;) {
    const file = sim.simulator.inspect().files[0];
    if (file?.generatedAt) return { sim, name: file.billFileName };
    if (Date.now() > deadline) throw new Error('file not generated');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface CentralEntry {
  name: string;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
}

/** Central directory entries from the tail of a ZIP (no ZIP64, no archive comment). */
function centralDirectory(tail: Buffer, total: number): CentralEntry[] {
  const eocd = tail.length - 22;
  expect(tail.readUInt32LE(eocd)).toBe(0x06054b50);
  const count = tail.readUInt16LE(eocd + 10);
  let p = tail.readUInt32LE(eocd + 16) - (total - tail.length);
  const entries: CentralEntry[] = [];
  for (let i = 0; i < count; i++) {
    expect(tail.readUInt32LE(p)).toBe(0x02014b50);
    const nameLength = tail.readUInt16LE(p + 28);
    entries.push({
      method: tail.readUInt16LE(p + 10),
      compressedSize: tail.readUInt32LE(p + 20),
      uncompressedSize: tail.readUInt32LE(p + 24),
      name: tail.subarray(p + 46, p + 46 + nameLength).toString('utf8'),
    });
    p += 46 + nameLength + tail.readUInt16LE(p + 30) + tail.readUInt16LE(p + 32);
  }
  return entries;
}

describe('simulator padded call files', () => {
  it('pads the last call file with PAD filler rows, stored uncompressed', async () => {
    const { sim: s, name } = await generated({ padCallFileToBytes: 100_000, filesPerKind: 2 });
    const entries = await readZip((await downloadBillFile(s.url, creds, name)).body);
    const [call1, call2, record1] = entries;
    expect(call1!.compressionMethod).toBe(8);
    expect(call2!.compressionMethod).toBe(0);
    expect(call2!.uncompressedSize).toBeGreaterThanOrEqual(100_000);
    expect(call2!.uncompressedSize).toBeLessThan(100_400);
    expect(record1!.compressionMethod).toBe(8);
    const rows = parseCsv(call2!.text).slice(1);
    const filler = rows.filter((r) => r[4]!.startsWith('PAD'));
    expect(filler.length).toBeGreaterThan(300);
    expect(filler.every((r) => r.length === 21 && r[17] === '-1' && r[11] === msg.beginTime)).toBe(true);
    expect(new Set(filler.map((r) => r[4])).size).toBe(filler.length);
    const real = s.simulator.rowsInRange({ beginTime: msg.beginTime, endTime: msg.endTime }).call;
    expect(rows.length + parseCsv(call1!.text).length - 1).toBe(real.length + filler.length);
    expect(s.simulator.inspect().downloads[0]!.rows![call2!.name]).toBe(rows.length);
  });

  it('streams a 300 MB call file with flat memory and the same sha256 as recorded', async () => {
    const target = 300 * 1024 * 1024;
    const { sim: s, name } = await generated({ padCallFileToBytes: target });
    const url = new URL(DOWNLOAD_BILL_FILE_PATH, s.url);
    const body = Buffer.from(JSON.stringify(envelope({ billFileName: name })));
    const headers = {
      host: url.host,
      'content-type': 'application/json;charset=UTF-8',
      'content-length': String(body.length),
    };
    const authorization = sign({
      credentials: creds,
      method: 'POST',
      path: url.pathname,
      headers,
      body,
      timestamp: new Date(),
    });

    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const t0 = performance.now();
    const res = await request(url, { method: 'POST', headers: { ...headers, authorization }, body });
    expect(res.headers['content-type']).toBe('Application/Octet-stream;charset=UTF-8');
    const hash = createHash('sha256');
    let total = 0;
    let head = Buffer.alloc(0);
    let tail = Buffer.alloc(0);
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      hash.update(buf);
      total += buf.length;
      if (head.length < 4) head = Buffer.concat([head, buf.subarray(0, 4)]);
      tail = Buffer.concat([tail, buf]).subarray(-65_536);
    }
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(head.subarray(0, 4)).toEqual(Buffer.from('PK\x03\x04', 'latin1'));
    expect(total).toBeGreaterThanOrEqual(target);
    const [call, record] = centralDirectory(tail, total);
    expect(call).toMatchObject({ method: 0, name: expect.stringMatching(/_call_1\.csv$/) as unknown });
    expect(call!.uncompressedSize).toBeGreaterThanOrEqual(target);
    expect(record!.name).toMatch(/_record_1\.csv$/);
    const [download] = s.simulator.inspect().downloads;
    expect(download).toMatchObject({ complete: true, bytes: total, sha256: hash.digest('hex') });
    const growthMb = (peak - rss0) / 1024 / 1024;
    console.info(
      `300 MB download: ${(total / 1e6 / seconds).toFixed(0)} MB/s, RSS growth ${growthMb.toFixed(1)} MB`,
    );
    expect(growthMb).toBeLessThan(100);
  }, 120_000);
});
