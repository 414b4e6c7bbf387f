import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Manifest } from '../../activities/output-store';
import { sign } from '../../ccfs/signer';
import { chunkProgressQuery, chunkWorkflowId } from '../../workflows/definitions';
import {
  counterValue,
  startCallbackStack,
  type CallbackStack,
  type CallbackStackOptions,
} from '../support/callback-stack';
import { exportedRowKeys, readManifest, testRequest } from '../support/exports';
import { seedJsonAfter } from '../support/seed-examples';
import { TEST_AK, TEST_SK } from '../support/stack';
import { until } from '../support/until';

/**
 * Issue 13, items 1–3 over real HTTP with a real Temporal dev server: callbacks as a real CC-FS sends
 * them (the seed's body verbatim, other readings of the seed), through a prefix-stripping,
 * Host-rewriting gateway, and to one fixed callback URL routed by responseId. Probing is pushed out of
 * the way (probe interval 1 h, callback timeout 60 s), so every chunk here is found by its callback.
 */

let stack: CallbackStack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function start(options: CallbackStackOptions): Promise<CallbackStack> {
  stack = await startCallbackStack(options);
  return stack;
}

/** An export whose chunks can only complete through callbacks within the test's time. */
const byCallback = (from: string, to: string) =>
  testRequest({ from, to, options: { callbackTimeoutSeconds: 60, probeIntervalSeconds: 3600 } });

/** Runs an export to the end and checks every chunk is verified by a callback and every row is in the files. */
async function exportCompletely(
  s: CallbackStack,
  from: string,
  to: string,
): Promise<{ manifest: Manifest; exportId: string }> {
  const req = byCallback(from, to);
  await s.exports.start(req);
  const result = await s.exports.result(req.exportId);
  expect(result.state).toBe('completed');
  const manifest = await readManifest(result.manifestPath);
  expect(manifest.chunks.length).toBeGreaterThan(0);
  for (const c of manifest.chunks) {
    expect(c.state).toBe('verified');
    if ('foundBy' in c && c.foundBy !== undefined) expect(c.foundBy).toBe('callback');
  }
  const expected = s.sim.simulator.rowKeys({
    beginTime: req.begin,
    endTime: req.end,
    dataType: 'call_record',
  });
  const got = await exportedRowKeys(s.output.exportDir(req.exportId), manifest);
  expect(expected.call.length).toBeGreaterThan(0);
  expect(expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`))).toEqual([]);
  expect(expected.record.filter((r) => !got.record.has(`${r.call_id}#${r.file_name}`))).toEqual([]);
  return { manifest, exportId: req.exportId };
}

/** POSTs `body` (exact bytes) to `url` signed as CC-FS does, with the URL's host as Host unless given. */
async function postSigned(
  url: string,
  body: string,
  host?: string,
): Promise<{ status: number; json: { resultCode?: string } }> {
  const target = new URL(url);
  const bytes = Buffer.from(body, 'utf8');
  const headers: Record<string, string> = {
    accept: '*/*',
    host: host ?? target.host,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': String(bytes.length),
  };
  headers.authorization = sign({
    credentials: { ak: TEST_AK, sk: TEST_SK },
    method: 'POST',
    path: target.pathname,
    headers,
    body: bytes,
    timestamp: new Date(),
  });
  const res = await request(url, { method: 'POST', headers, body: bytes });
  return { status: res.statusCode, json: (await res.body.json()) as { resultCode?: string } };
}

/** The seed's callback body, as the page prints it, with another responseId and file name put in. */
function seedCallbackBody(responseId: string, billFileName: string): string {
  return seedJsonAfter('Message parameters:')
    .replace('20180702_9239cb50a8384bb0ab503441bf089446.zip', billFileName)
    .replace('"9239cb50a8384bb0ab503441bf089446"', JSON.stringify(responseId));
}

const signalled = (s: CallbackStack) =>
  counterValue(s.metrics, 'ccfs_export_callbacks_total', { outcome: 'signalled' });

describe('callbacks as a real CC-FS sends them', () => {
  it('completes a chunk from the seed callback body verbatim, accountId "" included (issue input 1)', async () => {
    const s = await start({ simulator: { faults: { dropCallback: 1 } } });
    const req = byCallback('2024-03-01 00:00:00', '2024-03-02 00:00:00');
    await s.exports.start(req);
    const query = await until('the chunk to be requested', () =>
      s.sim.simulator.inspect().queries.find((q) => q.outcome === '0'),
    );
    const body = seedCallbackBody(query.responseId!, query.billFileName!);
    expect(body).toContain('"accountId": ""');
    const answer = await postSigned((query.msgBody as { callBackURL: string }).callBackURL, body);
    expect(answer).toEqual({ status: 200, json: { resultCode: '0', resultDesc: 'success' } });
    const result = await s.exports.result(req.exportId);
    expect(result.state).toBe('completed');
    const manifest = await readManifest(result.manifestPath);
    expect(manifest.chunks).toHaveLength(1);
    expect(manifest.chunks[0]).toMatchObject({
      state: 'verified',
      billFileName: query.billFileName,
      requests: 1,
    });
    const expected = s.sim.simulator.rowKeys({
      beginTime: req.begin,
      endTime: req.end,
      dataType: 'call_record',
    });
    const got = await exportedRowKeys(s.output.exportDir(req.exportId), manifest);
    expect(got.call.size).toBe(new Set(expected.call.map((r) => `${r.call_id}#${r.call_id_num}`)).size);
    expect(got.record.size).toBe(new Set(expected.record.map((r) => `${r.call_id}#${r.file_name}`)).size);
  });

  it('completes an export whose CC-FS sends accountId "", billName, responseIds hyphenated upper-case and Host without port', async () => {
    const s = await start({
      simulator: {
        callbackEmptyAccountId: true,
        callbackFileField: 'billName',
        callbackResponseId: 'upper-hyphenated',
        callbackHost: 'no-port',
      },
    });
    const { manifest } = await exportCompletely(s, '2024-03-01 00:00:00', '2024-03-05 00:00:00');
    expect(manifest.chunks.length).toBeGreaterThanOrEqual(2);
    const callbacks = s.sim.simulator.inspect().callbacks;
    expect(callbacks.length).toBeGreaterThanOrEqual(manifest.chunks.length);
    expect(callbacks.every((c) => c.delivered && c.statuses[0] === 200)).toBe(true);
    expect(await signalled(s)).toBeGreaterThanOrEqual(manifest.chunks.length);
    expect(await counterValue(s.metrics, 'ccfs_export_callbacks_total', { outcome: 'invalid' })).toBe(0);
  });
});

describe('callbacks through a gateway', () => {
  it('completes an export behind a gateway that strips /gw and sends the upstream Host (issue input 2)', async () => {
    const s = await start({ gateway: { prefix: '/gw' } });
    expect(s.publicUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/gw$/);
    const { manifest } = await exportCompletely(s, '2024-03-01 00:00:00', '2024-03-05 00:00:00');
    // Every callback went through the gateway, was rewritten, and was accepted at the first attempt.
    const callbacks = s.sim.simulator.inspect().callbacks;
    expect(callbacks.every((c) => c.url.startsWith(`${s.publicUrl}/callbacks/ccfs/`))).toBe(true);
    expect(callbacks.every((c) => c.statuses[0] === 200)).toBe(true);
    const forwarded = s.gateway!.forwarded;
    expect(forwarded.length).toBeGreaterThanOrEqual(manifest.chunks.length);
    for (const f of forwarded) {
      expect(f.upstreamHost).toBe(new URL(s.apiUrl).host);
      expect(f.host).not.toBe(f.upstreamHost);
      expect(f.upstreamPath.startsWith('/callbacks/ccfs/')).toBe(true);
    }
    // Recognisable in metrics: the signatures matched the public URL, not what arrived.
    expect(
      await counterValue(s.metrics, 'ccfs_export_callback_signatures_total', { signed_as: 'public-url' }),
    ).toBe(forwarded.length);
    expect(
      await counterValue(s.metrics, 'ccfs_export_callback_signatures_total', { signed_as: 'received' }),
    ).toBe(0);
    expect(await counterValue(s.metrics, 'ccfs_export_callbacks_total', { outcome: 'unauthorized' })).toBe(0);
  });

  it('refuses through the gateway a callback signed for a host CALLBACK_BASE_URL does not name, and logs what arrived and what was tried', async () => {
    const s = await start({ gateway: { prefix: '/gw' }, simulator: { faults: { dropCallback: 1 } } });
    const req = byCallback('2024-03-01 00:00:00', '2024-03-02 00:00:00');
    await s.exports.start(req);
    const query = await until('the chunk to be requested', () =>
      s.sim.simulator.inspect().queries.find((q) => q.outcome === '0'),
    );
    const url = (query.msgBody as { callBackURL: string }).callBackURL;
    const body = seedCallbackBody(query.responseId!, query.billFileName!);
    const wrong = await postSigned(url, body, 'elsewhere.example:3999');
    expect(wrong.status).toBe(401);
    expect(wrong.json.resultCode).toBe('1');
    const line = await until('the rejection to be logged', () =>
      s.logs.find((l) => l.includes('callback signature rejected')),
    );
    const logged = JSON.parse(line) as { host: string; path: string; tried: string[] };
    expect(logged.host).toBe(new URL(s.apiUrl).host);
    expect(logged.path).toBe('/callbacks/ccfs/<token>');
    expect(logged.tried.some((t) => t.startsWith('public-url '))).toBe(true);
    expect(line).not.toContain(TEST_SK);
    // The same body signed for the public URL is accepted: the refusal was for the host.
    expect((await postSigned(url, body)).status).toBe(200);
    expect((await s.exports.result(req.exportId)).state).toBe('completed');
  });
});

describe('one fixed callback URL (CALLBACK_ROUTING=response-id)', () => {
  it('sends exactly CALLBACK_BASE_URL of path / and completes the export by responseId', async () => {
    const s = await start({ routing: 'response-id', publicUrl: ({ api }) => `${api}/` });
    const { manifest } = await exportCompletely(s, '2024-03-01 00:00:00', '2024-03-05 00:00:00');
    const queries = s.sim.simulator.inspect().queries.filter((q) => q.outcome === '0');
    expect(queries.length).toBe(manifest.chunks.length);
    expect(queries.every((q) => (q.msgBody as { callBackURL: string }).callBackURL === s.publicUrl)).toBe(
      true,
    );
    expect(await signalled(s)).toBe(manifest.chunks.length);
  });

  it('accepts callbacks for a base URL of path /gw/hook at /hook behind a gateway that strips /gw', async () => {
    const s = await start({
      routing: 'response-id',
      gateway: { prefix: '/gw' },
      publicUrl: ({ gateway }) => `${gateway}/hook`,
    });
    const { manifest } = await exportCompletely(s, '2024-03-01 00:00:00', '2024-03-05 00:00:00');
    expect(s.sim.simulator.inspect().callbacks.every((c) => c.url === s.publicUrl)).toBe(true);
    expect(s.gateway!.forwarded.every((f) => f.upstreamPath === '/hook')).toBe(true);
    expect(await signalled(s)).toBe(manifest.chunks.length);
  });

  it('refuses a callback for a responseId no chunk requested and signals nothing; acknowledges one for a closed chunk', async () => {
    const s = await start({
      routing: 'response-id',
      publicUrl: ({ api }) => `${api}/hook`,
      simulator: { faults: { dropCallback: 1 } },
    });
    const req = byCallback('2024-03-01 00:00:00', '2024-03-02 00:00:00');
    await s.exports.start(req);
    const query = await until('the chunk to be requested', () =>
      s.sim.simulator.inspect().queries.find((q) => q.outcome === '0'),
    );
    const chunk = s.client.workflow.getHandle(chunkWorkflowId(req.exportId, 0));

    const forgedId = randomBytes(16).toString('hex');
    const forged = await postSigned(s.publicUrl, seedCallbackBody(forgedId, `20240301_${forgedId}.zip`));
    expect(forged.status).toBe(404);
    expect(forged.json.resultCode).toBe('1');
    expect(
      await counterValue(s.metrics, 'ccfs_export_callbacks_total', { outcome: 'unknown_response_id' }),
    ).toBe(1);
    expect((await chunk.query(chunkProgressQuery)).callbacksReceived).toBe(0);

    // The genuine one (hyphenated upper-case, as some CC-FS send it) is routed to the chunk.
    const hex = query.responseId!.replace(/-/g, '');
    const upper =
      `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`.toUpperCase();
    const genuine = seedCallbackBody(upper, query.billFileName!);
    expect((await postSigned(s.publicUrl, genuine)).status).toBe(200);
    const result = await s.exports.result(req.exportId);
    expect(result.state).toBe('completed');
    expect((await readManifest(result.manifestPath)).chunks[0]).toMatchObject({
      state: 'verified',
      billFileName: query.billFileName,
    });

    // CC-FS sending it again after the chunk closed: success, so it stops retrying; nothing signalled.
    expect((await postSigned(s.publicUrl, genuine)).json).toEqual({ resultCode: '0', resultDesc: 'success' });
    expect(
      await counterValue(s.metrics, 'ccfs_export_callbacks_total', { outcome: 'already_finished' }),
    ).toBe(1);
    expect(await signalled(s)).toBe(1);
  });
});
