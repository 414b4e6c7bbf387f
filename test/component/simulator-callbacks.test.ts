import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallbackBody, billFileMatchesResponse } from '../../ccfs/protocol';
import { parseAuthorization, verify } from '../../ccfs/signer';
import { type RunningSimulator, type SimulatorOptions, startSimulator } from '../../simulator/app';
import {
  type CallbackReceiver,
  type ReceivedCallback,
  queryBillData,
  startCallbackReceiver,
} from '../../simulator/test-kit';

const creds = { ak: 'ak-cb', sk: 'sk-cb' };
const range = { beginTime: '2024-03-01 00:00:00', endTime: '2024-03-01 06:00:00', dataType: 'call' };

let receiver: CallbackReceiver;
let sim: RunningSimulator | undefined;

beforeEach(async () => {
  receiver = await startCallbackReceiver();
});
afterEach(async () => {
  await sim?.close();
  sim = undefined;
  await receiver.close();
});

async function start(options: Partial<SimulatorOptions> = {}): Promise<RunningSimulator> {
  sim = await startSimulator({
    port: 0,
    accounts: [creds],
    callbackDelayMs: 20,
    callbackRetryIntervalMs: 50,
    ...options,
  });
  return sim;
}

function verifyCallback(cb: ReceivedCallback, now = new Date()): ReturnType<typeof verify> {
  return verify({
    method: 'POST',
    path: '/callback',
    headers: cb.headers,
    body: cb.raw,
    authorization: cb.headers.authorization,
    secretFor: (ak) => (ak === creds.ak ? creds.sk : undefined),
    now,
    maxSkewSeconds: 60,
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('simulator callbacks', () => {
  it('posts a signed callback that verifies with the tenant AK/SK and names the bill file', async () => {
    const s = await start();
    const q = await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    const { responseId } = q.json<{ resultData: { responseId: string } }>().resultData;
    const [cb] = await receiver.waitFor(1);
    expect(verifyCallback(cb!)).toEqual({ ok: true, ak: creds.ak });
    expect(parseAuthorization(cb!.headers.authorization!)?.signedHeaders).toEqual([
      'content-length',
      'content-type',
      'host',
    ]);
    expect(cb!.headers['content-type']).toBe('application/json;charset=UTF-8');
    const body = CallbackBody.parse(cb!.body);
    expect(body).toEqual({
      request: { version: '2.0' },
      msgBody: { responseId, billFileName: expect.any(String) as unknown },
    });
    expect(billFileMatchesResponse(body.msgBody.billFileName, responseId)).toBe(true);
    await waitUntil(() => s.simulator.inspect().callbacks[0]?.done === true);
    expect(s.simulator.inspect().callbacks).toEqual([
      expect.objectContaining({
        responseId,
        attempts: 1,
        statuses: [200],
        delivered: true,
        done: true,
        copy: 1,
      }),
    ]);
  });

  it('includes accountId in the callback only when the query had one', async () => {
    const s = await start();
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url, accountId: 'acc0001' });
    const [cb] = await receiver.waitFor(1);
    expect(cb!.body.msgBody.accountId).toBe('acc0001');
  });

  it('dates billFileName by the request day in the tenant zone', async () => {
    // 20:00 UTC on 1 March is already 2 March in Shanghai.
    const fixed = new Date('2024-03-01T20:00:00Z');
    const s = await start({ timeZone: 'Asia/Shanghai', clock: () => fixed });
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url }, { timestamp: fixed });
    const [cb] = await receiver.waitFor(1);
    expect(cb!.body.msgBody.billFileName).toMatch(/^20240302_[0-9a-f]{32}\.zip$/);
    expect(verifyCallback(cb!, fixed).ok).toBe(true);
  });

  it('sends hyphenated responseIds when configured, and billFileName without hyphens', async () => {
    const s = await start({ responseIdHyphens: true });
    const q = await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    const { responseId } = q.json<{ resultData: { responseId: string } }>().resultData;
    expect(responseId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const [cb] = await receiver.waitFor(1);
    expect(cb!.body.msgBody.responseId).toBe(responseId);
    expect(cb!.body.msgBody.billFileName).toBe(
      `${cb!.body.msgBody.billFileName.slice(0, 8)}_${responseId.replace(/-/g, '')}.zip`,
    );
  });

  it('sends unsigned callbacks when signing is off', async () => {
    const s = await start({ signCallbacks: false });
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    const [cb] = await receiver.waitFor(1);
    expect(cb!.headers.authorization).toBeUndefined();
  });

  it('waits callbackDelayMs before generating the file and calling back', async () => {
    const s = await start({ callbackDelayMs: 300 });
    const t0 = Date.now();
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    expect(s.simulator.inspect().files[0]!.generatedAt).toBeUndefined();
    const [cb] = await receiver.waitFor(1);
    expect(cb!.at - t0).toBeGreaterThanOrEqual(280);
    expect(s.simulator.inspect().files[0]!.generatedAt).toBeDefined();
  });

  it('retries until an answer is HTTP 200 with a body', async () => {
    receiver.respond(
      (_cb, i) =>
        [
          { status: 500, body: 'oops' },
          { status: 200, body: '' },
          { status: 200, body: '{"resultCode":"0"}' },
        ][i] ?? { status: 200, body: 'x' },
    );
    const s = await start();
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    const calls = await receiver.waitFor(3);
    expect(calls[2]!.at - calls[1]!.at).toBeGreaterThanOrEqual(40);
    await sleep(200);
    expect(receiver.received).toHaveLength(3);
    expect(s.simulator.inspect().callbacks[0]).toMatchObject({
      attempts: 3,
      statuses: [500, 200, 200],
      delivered: true,
      done: true,
    });
    expect(new Set(calls.map((c) => c.raw.toString()))).toHaveProperty('size', 1);
  });

  it('stops after callbackMaxAttempts', async () => {
    receiver.respond(() => ({ status: 503, body: 'busy' }));
    const s = await start({ callbackMaxAttempts: 3 });
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    await receiver.waitFor(3);
    await sleep(300);
    expect(receiver.received).toHaveLength(3);
    expect(s.simulator.inspect().callbacks[0]).toMatchObject({
      attempts: 3,
      statuses: [503, 503, 503],
      delivered: false,
      done: true,
    });
  });

  it('records unreachable callback URLs as failed attempts without a status', async () => {
    const s = await start({ callbackMaxAttempts: 2 });
    await queryBillData(s.url, creds, { ...range, callBackURL: 'http://127.0.0.1:9/callback' });
    await waitUntil(() => s.simulator.inspect().callbacks[0]?.done === true);
    const [record] = s.simulator.inspect().callbacks;
    expect(record).toMatchObject({ attempts: 2, statuses: [null, null], delivered: false });
    expect(record!.attemptLog[0]!.error).toBeTruthy();
  });

  it('forgets pending retries on reset', async () => {
    receiver.respond(() => ({ status: 500, body: 'no' }));
    const s = await start({ callbackRetryIntervalMs: 100, callbackMaxAttempts: 100 });
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    await receiver.waitFor(1);
    await s.simulator.reset();
    const seen = receiver.received.length;
    await sleep(300);
    expect(receiver.received.length).toBe(seen);
    expect(s.simulator.inspect().callbacks).toEqual([]);
  });

  it('cancels pending retries on close', async () => {
    receiver.respond(() => ({ status: 500, body: 'no' }));
    const s = await start({ callbackRetryIntervalMs: 100, callbackMaxAttempts: 100 });
    await queryBillData(s.url, creds, { ...range, callBackURL: receiver.url });
    await receiver.waitFor(1);
    await s.close();
    const seen = receiver.received.length;
    await sleep(300);
    expect(receiver.received.length).toBe(seen);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
