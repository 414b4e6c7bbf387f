import { until } from '../support/until';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { request } from 'undici';
import { sign } from '../../ccfs/signer';
import { callbackKey, callbackUrl } from '../../lib/callback-token';
import { chunkProgressQuery, chunkWorkflowId } from '../../workflows/definitions';
import { testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';

/**
 * Random callbacks against the real endpoint, signalling a real chunk workflow that is waiting for
 * its callback: whatever the body, headers, token or signature, the answer is never a 5xx, never a
 * success, and the workflow receives no signal. A genuine callback at the end shows the target was
 * live all along.
 */

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const hex32 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 32, maxLength: 32 });
const headerText = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_/;=., '),
  maxLength: 60,
});

describe('callback endpoint under random input', () => {
  let stack: Stack;
  let chunk: WorkflowHandle;
  let exportId: string;
  let url: string;
  let responseId: string;
  let billFileName: string;

  beforeAll(async () => {
    stack = await startStack({ simulator: { faults: { dropCallback: 1 } } });
    const req = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      options: { callbackTimeoutSeconds: 600, probeIntervalSeconds: 3600 },
    });
    exportId = req.exportId;
    await stack.exports.start(req);
    chunk = stack.client.workflow.getHandle(chunkWorkflowId(exportId, 0));
    const progress = await until('the chunk to wait for its callback', async () => {
      const p = await chunk.query(chunkProgressQuery).catch(() => undefined);
      return p?.phase === 'waiting-for-callback' ? p : undefined;
    });
    responseId = progress.responseIds[0]!;
    billFileName = stack.sim.simulator
      .inspect()
      .queries.find((q) => q.responseId === responseId)!.billFileName!;
    url = callbackUrl(stack.apiUrl, callbackKey(undefined, TEST_SK), chunkWorkflowId(exportId, 0));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** What a fuzzed request is made of; `auth` decides how (and whether) it is signed. */
  const arbitraryCallback = () => {
    const token = fc.oneof(
      fc.constant('valid'),
      fc.string({ maxLength: 200 }).map((s) => `raw:${s}`),
      fc.tuple(fc.nat(), fc.constantFrom(...B64URL)).map(([i, c]) => `flip:${i}:${c}`),
    );
    const body = fc.oneof(
      // The genuine body: only a correct signature may deliver it, and the fuzzer never signs it correctly.
      fc.constant({ kind: 'genuine' as const }),
      fc
        .record({
          responseId: fc.oneof(fc.constant(responseId), hex32, fc.string({ maxLength: 80 })),
          billFileName: fc.oneof(
            hex32.map((h) => `20240301_${h}.zip`),
            fc.string({ maxLength: 80 }),
          ),
          accountId: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
        })
        .map((msgBody) => ({ kind: 'shaped' as const, msgBody })),
      fc.jsonValue().map((value) => ({ kind: 'json' as const, value })),
      fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: 'bytes' as const, bytes })),
    );
    const auth = fc.oneof(
      fc.constant({ kind: 'none' as const }),
      headerText.map((value) => ({ kind: 'raw' as const, value })),
      fc.tuple(hex32, hex32).map(([a, b]) => ({
        kind: 'raw' as const,
        value: `auth-v2/${TEST_AK}/${new Date().toISOString().slice(0, 19)}Z/content-length;content-type;host/${a}${b}`,
      })),
      fc.string({ minLength: 1, maxLength: 40 }).map((sk) => ({ kind: 'wrong-key' as const, sk })),
      fc
        .integer({ min: 901, max: 10 * 86400 })
        .chain((s) => fc.constantFrom(s, -s))
        .map((skewSeconds) => ({ kind: 'stale' as const, skewSeconds })),
      fc.constant({ kind: 'signed-other-body' as const }),
      // Correctly signed: fine for every body but the genuine one, which the fuzzer then alters.
      fc.constant({ kind: 'correct' as const }),
    );
    const headers = fc.record(
      {
        contentType: fc.oneof(
          fc.constantFrom(
            'application/json;charset=UTF-8',
            'application/json',
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
          ),
          headerText,
        ),
        contentEncoding: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown'),
        extra: fc.dictionary(fc.stringMatching(/^x-[a-z]{1,10}$/), headerText, { maxKeys: 3 }),
      },
      { requiredKeys: ['contentType'] },
    );
    return fc.record({ token, body, auth, headers });
  };

  it('never answers 5xx or success and never signals the chunk', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(arbitraryCallback(), async ({ token, body, auth, headers }) => {
        const valid = new URL(url);
        let path = valid.pathname;
        if (token.startsWith('raw:')) path = `/callbacks/ccfs/${encodeURIComponent(token.slice(4))}`;
        if (token.startsWith('flip:')) {
          const [, at, c] = token.split(':') as [string, string, string];
          const t = valid.pathname.slice('/callbacks/ccfs/'.length);
          const i = Number(at) % t.length;
          path = `/callbacks/ccfs/${t.slice(0, i)}${t[i] === c ? (c === 'A' ? 'B' : 'A') : c}${t.slice(i + 1)}`;
        }
        const genuine = Buffer.from(
          JSON.stringify({ request: { version: '2.0' }, msgBody: { responseId, billFileName } }),
        );
        let bytes: Buffer =
          body.kind === 'genuine'
            ? genuine
            : body.kind === 'shaped'
              ? Buffer.from(JSON.stringify({ request: { version: '2.0' }, msgBody: body.msgBody }))
              : body.kind === 'json'
                ? Buffer.from(JSON.stringify(body.value) ?? 'null')
                : Buffer.from(body.bytes);
        const shapedGenuine =
          body.kind === 'shaped' &&
          body.msgBody.responseId === responseId &&
          body.msgBody.billFileName === billFileName;
        if (headers.contentEncoding === 'gzip') bytes = gzipSync(bytes);
        const sent: Record<string, string> = {
          host: valid.host,
          'content-type': headers.contentType,
          'content-length': String(bytes.length),
          ...headers.extra,
        };
        if (headers.contentEncoding) sent['content-encoding'] = headers.contentEncoding;
        const signWith = (sk: string, timestamp: Date, signed: Buffer) =>
          sign({
            credentials: { ak: TEST_AK, sk },
            method: 'POST',
            path,
            headers: sent,
            body: signed,
            timestamp,
          });
        let signedCorrectly = false;
        switch (auth.kind) {
          case 'raw':
            sent.authorization = auth.value;
            break;
          case 'wrong-key':
            if (auth.sk !== TEST_SK) sent.authorization = signWith(auth.sk, new Date(), bytes);
            break;
          case 'stale':
            sent.authorization = signWith(TEST_SK, new Date(Date.now() + auth.skewSeconds * 1000), bytes);
            break;
          case 'signed-other-body':
            sent.authorization = signWith(TEST_SK, new Date(), Buffer.concat([bytes, Buffer.from(' ')]));
            break;
          case 'correct':
            sent.authorization = signWith(TEST_SK, new Date(), bytes);
            signedCorrectly = true;
            break;
          case 'none':
            break;
        }
        // A correctly signed genuine callback on the real token is the one thing that must get through.
        const wouldDeliver =
          signedCorrectly &&
          path === valid.pathname &&
          (body.kind === 'genuine' || shapedGenuine) &&
          (headers.contentEncoding === undefined || headers.contentEncoding === 'identity');
        fc.pre(!wouldDeliver);
        const res = await request(`${stack.apiUrl}${path}`, { method: 'POST', headers: sent, body: bytes });
        const text = await res.body.text();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        expect(res.statusCode, text).toBeLessThan(500);
        expect(res.statusCode, text).not.toBe(200);
        expect(text).not.toMatch(/\bat .+:\d+:\d+|node_modules|Error:/);
      }),
      { numRuns: 1000 },
    );
    // The fuzzer reached every gate: routing (404), signature (401), body and file name (400), limits.
    expect([...statuses.keys()].sort()).toEqual(expect.arrayContaining([400, 401, 404]));

    const progress = await chunk.query(chunkProgressQuery);
    expect(progress).toMatchObject({
      phase: 'waiting-for-callback',
      callbacksReceived: 0,
      callbacksRejected: 0,
      requests: 1,
    });
    const history = await chunk.fetchHistory();
    expect((history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes)).toHaveLength(0);
  });

  it('still delivers the genuine, correctly signed callback afterwards', async () => {
    const target = new URL(url);
    const body = Buffer.from(
      JSON.stringify({ request: { version: '2.0' }, msgBody: { responseId, billFileName } }),
    );
    const headers: Record<string, string> = {
      host: target.host,
      'content-type': 'application/json;charset=UTF-8',
      'content-length': String(body.length),
    };
    headers.authorization = sign({
      credentials: { ak: TEST_AK, sk: TEST_SK },
      method: 'POST',
      path: target.pathname,
      headers,
      body,
      timestamp: new Date(),
    });
    const res = await request(url, { method: 'POST', headers, body });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ resultCode: '0', resultDesc: 'success' });
    const result = await stack.exports.result(exportId);
    expect(result.state).toBe('completed');
  });
});
