import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DOWNLOAD_BILL_FILE_PATH, QUERY_BILL_DATA_PATH } from '../../ccfs/protocol';
import { type RunningSimulator, startSimulator } from '../../simulator/app';
import { downloadBillFile, queryBillData, signedPost } from '../../simulator/test-kit';

const creds = { ak: 'ak-http', sk: 'sk-http' };
const other = { ak: 'ak-other', sk: 'sk-other' };
const CALLBACK = 'http://127.0.0.1:9/callback';
const base = {
  beginTime: '2024-03-01 00:00:00',
  endTime: '2024-03-01 06:00:00',
  dataType: 'call_record',
  callBackURL: CALLBACK,
};

let sim: RunningSimulator;

beforeAll(async () => {
  sim = await startSimulator({
    port: 0,
    accounts: [creds, other],
    lockAfterFailures: 3,
    callbackDelayMs: 10,
    callbackMaxAttempts: 1,
  });
});
afterEach(() => sim.simulator.reset());
afterAll(() => sim.close());

describe('simulator auth-v2', () => {
  it('accepts a request signed with the three default headers', async () => {
    const res = await queryBillData(sim.url, creds, base);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({
      resultCode: '0',
      resultDesc: 'success',
      resultData: { responseId: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown },
      response: { version: '2.0', resultCode: '0', resultMsg: 'success' },
    });
  });

  it('accepts a request signing only host, as the demo code does', async () => {
    const res = await queryBillData(sim.url, creds, base, { signedHeaders: ['host'] });
    expect(res.json().resultCode).toBe('0');
  });

  it('answers a bad signature with 401 and a Spring error body', async () => {
    const res = await queryBillData(sim.url, creds, base, {
      sendBody: Buffer.from(JSON.stringify({ tampered: true })),
    });
    expect(res.status).toBe(401);
    expect(res.json()).toEqual({
      timestamp: expect.any(String) as unknown,
      status: 401,
      error: 'Unauthorized',
      message: 'No message available',
      path: QUERY_BILL_DATA_PATH,
    });
  });

  it('answers an unknown AK with 401', async () => {
    const res = await queryBillData(sim.url, { ak: 'nobody', sk: 'x' }, base);
    expect(res.status).toBe(401);
  });

  it('answers a wrong SK with 401 on downloads too', async () => {
    const res = await downloadBillFile(
      sim.url,
      { ak: creds.ak, sk: 'wrong' },
      '20240301_0123456789abcdef0123456789abcdef.zip',
    );
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ status: 401, path: DOWNLOAD_BILL_FILE_PATH });
  });

  it('answers a timestamp older than the skew window with 401', async () => {
    const stale = await queryBillData(sim.url, creds, base, { timestamp: new Date(Date.now() - 901_000) });
    expect(stale.status).toBe(401);
    const inside = await queryBillData(sim.url, creds, base, { timestamp: new Date(Date.now() - 800_000) });
    expect(inside.status).toBe(200);
  });

  it('answers a missing Authorization header with 401', async () => {
    const res = await queryBillData(sim.url, creds, base, { authorization: null });
    expect(res.status).toBe(401);
  });

  it('locks the IP with 403 after repeated bad signatures, even for good ones, until reset', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await queryBillData(sim.url, { ak: creds.ak, sk: 'bad' }, base)).status).toBe(401);
    }
    const locked = await queryBillData(sim.url, creds, base);
    expect(locked.status).toBe(403);
    expect(locked.json()).toMatchObject({ status: 403, error: 'Forbidden', message: 'No message available' });
    const state = sim.simulator.inspect();
    expect(state.auth).toEqual({ failures: 3, lockedIps: ['127.0.0.1'] });
    expect(state.queries.map((q) => q.outcome)).toEqual(['http401', 'http401', 'http401', 'http403']);
    await sim.simulator.reset();
    expect((await queryBillData(sim.url, creds, base)).status).toBe(200);
  });

  it('never records the Authorization value or the SK in its state', async () => {
    await queryBillData(sim.url, creds, base);
    await queryBillData(sim.url, { ak: creds.ak, sk: 'bad' }, base);
    const text = JSON.stringify(sim.simulator.inspect());
    expect(text).not.toContain(creds.sk);
    expect(text).not.toContain('auth-v2/');
  });
});

describe('simulator logs', () => {
  it('never log the SK or an Authorization value', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const logged = await startSimulator({
      port: 0,
      accounts: [creds],
      callbackDelayMs: 1,
      callbackMaxAttempts: 1,
      logger,
    });
    try {
      const q = await queryBillData(logged.url, creds, base);
      expect(q.json().resultCode).toBe('0');
      await queryBillData(logged.url, { ak: creds.ak, sk: 'wrong-secret' }, base);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await logged.close();
    }
    const text = lines.join('');
    expect(text).toContain('query accepted');
    expect(text).toContain('rejected signature');
    expect(text).not.toContain(creds.sk);
    expect(text).not.toContain('wrong-secret');
    expect(text).not.toContain('auth-v2/');
  });
});

describe('simulator queryBillData validation', () => {
  const cases: Array<[string, unknown, string]> = [
    ['a wrong version', { request: { version: '1.0' }, msgBody: base }, '0300006'],
    ['a missing request object', { msgBody: base }, '0300006'],
    ['a null msgBody', { request: { version: '2.0' }, msgBody: null }, '0300007'],
    ['a missing msgBody', { request: { version: '2.0' } }, '0300007'],
    ['a JSON null body', null, '0300007'],
    ['a body that is not JSON', '{"request":', '0300004'],
  ];
  it.each(cases)('answers %s with %s', async (_title, body, code) => {
    const res = await signedPost(
      sim.url,
      QUERY_BILL_DATA_PATH,
      typeof body === 'string' ? body : JSON.stringify(body),
      {
        credentials: creds,
      },
    );
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({
      resultCode: code,
      resultData: '',
      response: { version: '2.0', resultCode: code },
    });
  });

  it('answers an empty body with 0300007', async () => {
    const res = await signedPost(sim.url, QUERY_BILL_DATA_PATH, Buffer.alloc(0), { credentials: creds });
    expect(res.json().resultCode).toBe('0300007');
  });

  const fieldCases: Array<[string, Record<string, unknown>, string]> = [
    ['a missing beginTime', { beginTime: undefined }, '0300001'],
    ['a missing endTime', { endTime: undefined }, '0300001'],
    ['a missing dataType', { dataType: undefined }, '0300001'],
    ['a missing callBackURL', { callBackURL: undefined }, '0300001'],
    ['a null beginTime', { beginTime: null }, '0300001'],
    ['an empty beginTime', { beginTime: '' }, '0300002'],
    ['an empty dataType', { dataType: '' }, '0300002'],
    // The seed's own request example sends "" for each filter it does not use.
    ['an empty agentId (absent, as in the seed example)', { agentId: '' }, '0'],
    ['an agentId of 21 characters', { agentId: 'a'.repeat(21) }, '0300003'],
    ['an accountId of 21 characters', { accountId: 'a'.repeat(21) }, '0300003'],
    ['a callId of 26 characters', { callId: '1'.repeat(26) }, '0300003'],
    ['a callerNo of 26 characters', { callerNo: '1'.repeat(26) }, '0300003'],
    ['a calleeNo2 of 26 characters', { calleeNo2: '1'.repeat(26) }, '0300003'],
    ['a beginTime with milliseconds', { beginTime: '2024-03-01 00:00:00.000' }, '0300003'],
    ['a beginTime without seconds', { beginTime: '2024-03-01 00:00' }, '0300005'],
    ['a beginTime with slashes', { beginTime: '2024/03/01 00:00:00' }, '0300004'],
    ['an ISO beginTime', { beginTime: '2024-03-01T00:00:00' }, '0300004'],
    ['a 30 February', { beginTime: '2024-02-30 00:00:00' }, '0300004'],
    [
      'a 29 February of a common year',
      { beginTime: '2023-02-29 00:00:00', endTime: '2023-03-01 00:00:00' },
      '0300004',
    ],
    ['hour 24', { endTime: '2024-03-01 24:00:00' }, '0300004'],
    ['a numeric beginTime', { beginTime: 20240301 }, '0300004'],
    ['an unknown dataType', { dataType: 'calls' }, '0300004'],
    ['a callBackURL that is not a URL', { callBackURL: 'not a url' }, '0300004'],
    ['an accountId of another tenant', { accountId: 'acc9999' }, '0300004'],
    ['beginTime after endTime', { beginTime: '2024-03-01 06:00:01' }, '0300013'],
    ['3 days and 1 second', { endTime: '2024-03-04 00:00:01' }, '0300004'],
  ];
  it.each(fieldCases)('answers %s with %s', async (_title, patch, code) => {
    const res = await queryBillData(sim.url, creds, { ...base, ...patch });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ resultCode: code, resultDesc: expect.any(String) as unknown });
    expect(sim.simulator.inspect().queries.at(-1)).toMatchObject({ outcome: code });
  });

  it('accepts exactly 3 days, as the documentation example does', async () => {
    const res = await queryBillData(sim.url, creds, { ...base, endTime: '2024-03-04 00:00:00' });
    expect(res.json().resultCode).toBe('0');
  });

  it('accepts beginTime equal to endTime', async () => {
    const [call] = sim.simulator.rowsInRange({ beginTime: base.beginTime, endTime: base.endTime }).call;
    const res = await queryBillData(sim.url, creds, {
      ...base,
      beginTime: call!.call_begin,
      endTime: call!.call_begin,
    });
    expect(res.json().resultCode).toBe('0');
  });

  it('accepts the accountId of its own tenant', async () => {
    const res = await queryBillData(sim.url, creds, { ...base, accountId: 'acc0001' });
    expect(res.json().resultCode).toBe('0');
  });

  it('answers 0300012 for a range without calls and sends no callback', async () => {
    const res = await queryBillData(sim.url, creds, { ...base, callId: 'does-not-exist' });
    expect(res.json()).toMatchObject({ resultCode: '0300012', resultDesc: 'no data found' });
    expect(sim.simulator.inspect().files).toEqual([]);
  });
});

describe('simulator downloadBillFile validation', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a missing billFileName', {}, '0300001'],
    ['an empty billFileName', { billFileName: '' }, '0300002'],
    ['a billFileName of 50 characters', { billFileName: `20240301_${'a'.repeat(37)}.zip` }, '0300003'],
    ['a month 13 in the name', { billFileName: '20241301_0123456789abcdef0123456789abcdef.zip' }, '0300010'],
    ['a name without a date', { billFileName: 'report.zip' }, '0300010'],
    ['a name that is not hex', { billFileName: '20240301_nothex.zip' }, '0300011'],
    ['an unknown file', { billFileName: '20240301_0123456789abcdef0123456789abcdef.zip' }, '0300011'],
  ];
  it.each(cases)('answers %s with %s', async (_title, msgBody, code) => {
    const res = await signedPost(
      sim.url,
      DOWNLOAD_BILL_FILE_PATH,
      { request: { version: '2.0' }, msgBody },
      { credentials: creds },
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toMatchObject({ resultCode: code, resultData: '', response: { resultCode: code } });
  });

  it('answers a wrong version with 0300006', async () => {
    const res = await signedPost(
      sim.url,
      DOWNLOAD_BILL_FILE_PATH,
      { request: { version: '3.0' }, msgBody: {} },
      { credentials: creds },
    );
    expect(res.json().resultCode).toBe('0300006');
  });

  it("answers 0300011 for another developer's file", async () => {
    const q = await queryBillData(sim.url, creds, base);
    const { responseId } = q.json<{ resultData: { responseId: string } }>().resultData;
    await waitUntil(() => sim.simulator.inspect().files[0]?.generatedAt !== undefined);
    const name = sim.simulator.inspect().files[0]!.billFileName;
    expect(name).toContain(responseId);
    expect((await downloadBillFile(sim.url, other, name)).json().resultCode).toBe('0300011');
    const mine = await downloadBillFile(sim.url, creds, name);
    expect(mine.headers['content-type']).toBe('Application/Octet-stream;charset=UTF-8');
    expect(mine.body.subarray(0, 4)).toEqual(Buffer.from('PK\x03\x04', 'latin1'));
  });

  it('answers 0300011 while the file is not generated yet', async () => {
    sim.simulator.setOptions({ callbackDelayMs: 5_000 });
    await queryBillData(sim.url, creds, base);
    const name = sim.simulator.inspect().files[0]!.billFileName;
    expect((await downloadBillFile(sim.url, creds, name)).json().resultCode).toBe('0300011');
  });
});

describe('simulator inspection endpoints', () => {
  it('serves state, faults, rows and reset over HTTP without auth', async () => {
    await queryBillData(sim.url, creds, base);
    const state = (await (await fetch(`${sim.url}/__sim/state`)).json()) as { queries: unknown[] };
    expect(state.queries).toHaveLength(1);
    const set = await fetch(`${sim.url}/__sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ queryFlowControl: 1 }),
    });
    expect(await set.json()).toMatchObject({ queryFlowControl: 1, dropCallback: 0 });
    expect((await queryBillData(sim.url, creds, base)).json().resultCode).toBe('0300009');
    const bad = await fetch(`${sim.url}/__sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ queryFlowControl: 2, nope: 1 }),
    });
    expect(bad.status).toBe(400);
    const rows = await fetch(
      `${sim.url}/__sim/rows?${new URLSearchParams({ beginTime: base.beginTime, endTime: base.endTime }).toString()}`,
    );
    expect(await rows.json()).toEqual(
      sim.simulator.rowKeys({ beginTime: base.beginTime, endTime: base.endTime }),
    );
    expect((await fetch(`${sim.url}/__sim/rows?beginTime=x`)).status).toBe(400);
    expect((await fetch(`${sim.url}/__sim/reset`, { method: 'POST' })).status).toBe(200);
    expect(sim.simulator.inspect().queries).toEqual([]);
    expect(sim.simulator.faults().queryFlowControl).toBe(0);
  });

  it('answers unknown paths with a 404 Spring body', async () => {
    const res = await fetch(`${sim.url}/CCFS/resource/ccfs/nothing`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ status: 404, error: 'Not Found' });
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
