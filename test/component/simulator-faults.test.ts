import { createHash } from 'node:crypto';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DOWNLOAD_BILL_FILE_PATH } from '../../ccfs/protocol';
import { sign } from '../../ccfs/signer';
import {
  type Faults,
  type RunningSimulator,
  type SimulatorOptions,
  startSimulator,
} from '../../simulator/app';
import {
  type CallbackReceiver,
  downloadBillFile,
  envelope,
  queryBillData,
  readZip,
  startCallbackReceiver,
} from '../../simulator/test-kit';

const creds = { ak: 'ak-faults', sk: 'sk-faults' };
const msg = { beginTime: '2024-03-01 00:00:00', endTime: '2024-03-02 00:00:00', dataType: 'call_record' };

let receiver: CallbackReceiver;
const running: RunningSimulator[] = [];

beforeEach(async () => {
  receiver = await startCallbackReceiver();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  await receiver.close();
});

async function start(
  faults: Partial<Faults>,
  options: Partial<SimulatorOptions> = {},
): Promise<RunningSimulator> {
  const sim = await startSimulator({ port: 0, accounts: [creds], callbackDelayMs: 10, faults, ...options });
  running.push(sim);
  return sim;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function query(
  sim: RunningSimulator,
  extra: Record<string, unknown> = {},
): Promise<{ resultCode: string; responseId?: string }> {
  const res = await queryBillData(sim.url, creds, { ...msg, callBackURL: receiver.url, ...extra });
  const body = res.json<{ resultCode: string; resultData: { responseId?: string } | '' }>();
  return {
    resultCode: body.resultCode,
    responseId: body.resultData === '' ? undefined : body.resultData.responseId,
  };
}

async function generatedFile(sim: RunningSimulator): Promise<string> {
  await query(sim);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const file = sim.simulator.inspect().files.at(-1);
    if (file?.generatedAt) return file.billFileName;
    if (Date.now() > deadline) throw new Error('file not generated');
    await sleep(10);
  }
}

/** Downloads with a raw undici request so a cut connection is observable. */
async function rawDownload(
  sim: RunningSimulator,
  billFileName: string,
): Promise<{ bytes: Buffer; error?: Error }> {
  const url = new URL(DOWNLOAD_BILL_FILE_PATH, sim.url);
  const body = Buffer.from(JSON.stringify(envelope({ billFileName })));
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
  const res = await request(url, { method: 'POST', headers: { ...headers, authorization }, body });
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error: error as Error };
  }
}

describe('simulator callback faults', () => {
  it('dropCallback: never sends the callback, but the file is generated and downloadable', async () => {
    const sim = await start({ dropCallback: 1 });
    const { responseId } = await query(sim);
    await sleep(300);
    expect(receiver.received).toEqual([]);
    const state = sim.simulator.inspect();
    expect(state.callbacks).toEqual([]);
    expect(state.faults).toEqual([expect.objectContaining({ fault: 'dropCallback', responseId }) as unknown]);
    const zip = await downloadBillFile(sim.url, creds, state.files[0]!.billFileName);
    expect(zip.body.subarray(0, 2).toString()).toBe('PK');
  });

  it('duplicateCallback: delivers the same callback twice', async () => {
    const sim = await start({ duplicateCallback: 1 });
    await query(sim);
    const [a, b] = await receiver.waitFor(2);
    expect(b!.raw.equals(a!.raw)).toBe(true);
    await sleep(50);
    expect(receiver.received).toHaveLength(2);
    expect(sim.simulator.inspect().callbacks.map((c) => [c.copy, c.delivered])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(sim.simulator.inspect().faults.map((f) => f.fault)).toEqual(['duplicateCallback']);
  });

  it('lateCallback: delays the callback by lateCallbackMs more', async () => {
    const sim = await start({ lateCallback: 1, lateCallbackMs: 400 });
    const t0 = Date.now();
    await query(sim);
    await sleep(150);
    expect(sim.simulator.inspect().files[0]!.generatedAt).toBeDefined();
    expect(receiver.received).toEqual([]);
    const [cb] = await receiver.waitFor(1);
    expect(cb!.at - t0).toBeGreaterThanOrEqual(400);
    expect(sim.simulator.inspect().faults.map((f) => f.fault)).toEqual(['lateCallback']);
  });

  it('reorderCallbacks: holds callbacks and releases them in another order', async () => {
    const sim = await start({ reorderCallbacks: 1, reorderWindow: 4, reorderMaxHoldMs: 5_000 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await query(sim)).responseId!);
      if (i === 3) break;
      await sleep(30);
      // Held: nothing arrives before the window is full.
      expect(receiver.received).toHaveLength(0);
    }
    const cbs = await receiver.waitFor(4);
    const order = cbs.map((c) => c.body.msgBody.responseId);
    expect([...order].sort()).toEqual([...ids].sort());
    expect(order).not.toEqual(ids);
  });

  it('reorderCallbacks: releases a partial window after reorderMaxHoldMs', async () => {
    const sim = await start({ reorderCallbacks: 1, reorderWindow: 10, reorderMaxHoldMs: 300 });
    const t0 = Date.now();
    await query(sim);
    await query(sim);
    const cbs = await receiver.waitFor(2);
    expect(cbs[0]!.at - t0).toBeGreaterThanOrEqual(290);
  });
});

describe('simulator query faults', () => {
  it('queryFlowControl: answers 0300009 and creates no file', async () => {
    const sim = await start({ queryFlowControl: 1 });
    expect((await query(sim)).resultCode).toBe('0300009');
    expect(sim.simulator.inspect().files).toEqual([]);
    expect(sim.simulator.inspect().faults.map((f) => f.fault)).toEqual(['queryFlowControl']);
  });

  it('queryHttp500: answers HTTP 500 with a Spring error body', async () => {
    const sim = await start({ queryHttp500: 1 });
    const res = await queryBillData(sim.url, creds, { ...msg, callBackURL: receiver.url });
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ status: 500, error: 'Internal Server Error' });
    expect(sim.simulator.inspect().queries[0]!.outcome).toBe('http500');
    expect(sim.simulator.inspect().files).toEqual([]);
  });
});

describe('simulator download faults', () => {
  it('downloadFlowControl: answers 0300008 for a ready file', async () => {
    const sim = await start({});
    const name = await generatedFile(sim);
    sim.simulator.setFaults({ downloadFlowControl: 1 });
    expect((await downloadBillFile(sim.url, creds, name)).json().resultCode).toBe('0300008');
    sim.simulator.setFaults({ downloadFlowControl: 0 });
    expect((await downloadBillFile(sim.url, creds, name)).body.subarray(0, 2).toString()).toBe('PK');
  });

  it('downloadHttp500: answers HTTP 500', async () => {
    const sim = await start({ downloadHttp500: 1 });
    const name = await generatedFile(sim);
    const res = await downloadBillFile(sim.url, creds, name);
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ status: 500, path: DOWNLOAD_BILL_FILE_PATH });
  });

  it('truncateDownload: cuts the connection part-way and records the full sha256', async () => {
    const sim = await start({}, { padCallFileToBytes: 2_000_000 });
    const name = await generatedFile(sim);
    sim.simulator.setFaults({ truncateDownload: 1 });
    const cut = await rawDownload(sim, name);
    expect(cut.error).toBeDefined();
    const [record] = sim.simulator.inspect().downloads;
    expect(record).toMatchObject({ outcome: '0', complete: false });
    expect(record!.bytesSent).toBeLessThan(record!.bytes!);
    expect(cut.bytes.length).toBeLessThanOrEqual(record!.bytesSent!);
    expect(sim.simulator.inspect().faults[0]).toMatchObject({
      fault: 'truncateDownload',
      billFileName: name,
      detail: expect.stringMatching(/^cut after \d+ of \d+ bytes$/) as unknown,
    });
    sim.simulator.setFaults({ truncateDownload: 0 });
    const whole = await rawDownload(sim, name);
    expect(whole.error).toBeUndefined();
    expect(sha256(whole.bytes)).toBe(record!.sha256);
    expect(whole.bytes.subarray(0, cut.bytes.length).equals(cut.bytes)).toBe(true);
  });

  it('slowDownloadBytesPerSecond: throttles the download', async () => {
    const sim = await start({}, { padCallFileToBytes: 200_000 });
    const name = await generatedFile(sim);
    sim.simulator.setFaults({ slowDownloadBytesPerSecond: 200_000 });
    const t0 = Date.now();
    const res = await rawDownload(sim, name);
    const elapsed = Date.now() - t0;
    expect(res.bytes.length).toBeGreaterThan(200_000);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(sim.simulator.inspect().faults.map((f) => f.fault)).toEqual(['slowDownloadBytesPerSecond']);
    expect((await readZip(res.bytes)).length).toBe(2);
  });

  it('expireFiles: answers 0300011 from the first download on, although the file was generated', async () => {
    const sim = await start({ expireFiles: 1 });
    const name = await generatedFile(sim);
    expect((await downloadBillFile(sim.url, creds, name)).json().resultCode).toBe('0300011');
    sim.simulator.setFaults({ expireFiles: 0 });
    expect((await downloadBillFile(sim.url, creds, name)).json().resultCode).toBe('0300011');
    const state = sim.simulator.inspect();
    expect(state.files[0]).toMatchObject({ expired: true, generatedAt: expect.any(String) as unknown });
    expect(state.faults.map((f) => f.fault)).toEqual(['expireFiles']);
  });
});

describe('simulator fault reproducibility', () => {
  it('makes the same fault decisions for the same seed', async () => {
    const decisions = async (): Promise<string[]> => {
      const sim = await start({ queryFlowControl: 0.5 }, { seed: 9 });
      const codes: string[] = [];
      for (let i = 0; i < 12; i++) codes.push((await query(sim)).resultCode);
      return codes;
    };
    const a = await decisions();
    const b = await decisions();
    expect(a).toEqual(b);
    expect(new Set(a)).toEqual(new Set(['0', '0300009']));
  });

  it('sets faults over HTTP at runtime', async () => {
    const sim = await start({});
    await fetch(`${sim.url}/__sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dropCallback: 1 }),
    });
    await query(sim);
    await sleep(200);
    expect(receiver.received).toEqual([]);
    expect(((await (await fetch(`${sim.url}/__sim/faults`)).json()) as Faults).dropCallback).toBe(1);
  });
});
