import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUERY_BILL_DATA_PATH } from '../../ccfs/protocol';
import { verify } from '../../ccfs/signer';
import { type RunningSimulator, startSimulator } from '../../simulator/app';
import type { SimulatorOptions } from '../../simulator/options';
import { signedPost } from '../../simulator/test-kit';
import { until } from '../support/until';

/** Issue 13, item 4: the simulator sends callbacks as other readings of the seed do, over real HTTP. */

const creds = { ak: 'ak-readings', sk: 'sk-readings' };
const received: Array<{ path: string; headers: IncomingHttpHeaders; body: string }> = [];
let receiver: Server;
let receiverUrl: string;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"resultCode":"0","resultDesc":"success"}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => receiver.close(() => r())));

async function oneCallback(
  options: Partial<SimulatorOptions>,
  callBackURL: string,
  filters: Record<string, string> = {},
) {
  const sim: RunningSimulator = await startSimulator({
    port: 0,
    accounts: [creds],
    callbackDelayMs: 10,
    ...options,
  });
  try {
    const before = received.length;
    const res = await signedPost(
      sim.url,
      QUERY_BILL_DATA_PATH,
      {
        request: { version: '2.0' },
        msgBody: {
          beginTime: '2024-03-01 00:00:00',
          endTime: '2024-03-02 00:00:00',
          dataType: 'call',
          callBackURL,
          ...filters,
        },
      },
      { credentials: creds },
    );
    expect(res.json()).toMatchObject({ resultCode: '0' });
    const cb = await until('the callback', () => received[before]);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(cb.headers)) if (typeof v === 'string') headers[k] = v;
    const signature = verify({
      authorization: headers.authorization,
      method: 'POST',
      path: cb.path,
      headers,
      body: Buffer.from(cb.body),
      secretFor: () => creds.sk,
      now: new Date(),
      maxSkewSeconds: 900,
    });
    return {
      ...cb,
      msgBody: (JSON.parse(cb.body) as { msgBody: Record<string, string> }).msgBody,
      signature,
      responseId: res.json<{ resultData: { responseId: string } }>().resultData.responseId,
    };
  } finally {
    await sim.close();
  }
}

describe('simulator callback readings', () => {
  it('posts to exactly the callBackURL, / included, with the URL host by default', async () => {
    const cb = await oneCallback({}, `${receiverUrl}/`);
    expect(cb.path).toBe('/');
    expect(cb.headers.host).toBe(new URL(receiverUrl).host);
    expect(cb.signature.ok).toBe(true);
    expect(cb.msgBody).not.toHaveProperty('accountId');
  });

  it('sends and signs Host without the port, as the seed example does', async () => {
    const cb = await oneCallback({ callbackHost: 'no-port' }, `${receiverUrl}/hook`);
    expect(cb.path).toBe('/hook');
    expect(cb.headers.host).toBe('127.0.0.1');
    expect(cb.signature.ok).toBe(true);
  });

  it('sends the seed body shape: accountId "", billName, responseId hyphenated upper-case', async () => {
    const cb = await oneCallback(
      { callbackEmptyAccountId: true, callbackFileField: 'billName', callbackResponseId: 'upper-hyphenated' },
      receiverUrl,
      { accountId: '' },
    );
    expect(cb.msgBody.accountId).toBe('');
    expect(cb.msgBody.billName).toMatch(/^\d{8}_[0-9a-f]{32}\.zip$/);
    expect(cb.msgBody).not.toHaveProperty('billFileName');
    expect(cb.msgBody.responseId).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    expect(cb.msgBody.responseId!.replace(/-/g, '').toLowerCase()).toBe(cb.responseId);
    expect(cb.signature.ok).toBe(true);
  });
});
