import { until } from '../support/until';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { request } from 'undici';
import type { CcfsApi } from '../../activities';
import { sign } from '../../ccfs/signer';
import { callbackKey, callbackUrl } from '../../lib/callback-token';
import { NO_FAULTS } from '../../simulator/options';
import {
  chunkProgressQuery,
  chunkWorkflowId,
  type ChunkProgress,
  type ChunkResult,
} from '../../workflows/definitions';
import { readManifest, testRequest } from '../support/exports';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';

/** Issue 4's callback cases, each against the real dev server and the simulator over HTTP. */

/** POSTs a callback as CC-FS does: auth-v2 over host, content-type and content-length. */
async function postCallback(
  url: string,
  msgBody: Record<string, unknown>,
  opts: { sk?: string; ak?: string; timestamp?: Date; unsigned?: boolean } = {},
): Promise<{ status: number; text: string }> {
  const target = new URL(url);
  const body = Buffer.from(JSON.stringify({ request: { version: '2.0' }, msgBody }));
  const headers: Record<string, string> = {
    host: target.host,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': String(body.length),
  };
  if (!opts.unsigned) {
    headers.authorization = sign({
      credentials: { ak: opts.ak ?? TEST_AK, sk: opts.sk ?? TEST_SK },
      method: 'POST',
      path: target.pathname,
      headers,
      body,
      timestamp: opts.timestamp ?? new Date(),
    });
  }
  // undici's request, not fetch: fetch refuses to send host and content-length as given.
  const res = await request(url, { method: 'POST', headers, body });
  return { status: res.statusCode, text: await res.body.text() };
}

/** `yyyyMMdd_<32 hex>.zip` for a responseId (the simulator's ids are 32 hex). */
const fileFor = (responseId: string) => `20240301_${responseId.replace(/-/g, '')}.zip`;

describe('callbacks from CC-FS', () => {
  let stack: Stack;
  /** When set, queryBillData returns only after the simulator has delivered that request's callback. */
  let holdQueryUntilCallbackDelivered = false;
  /** Called before each queryBillData the activities make (to set faults for that request). */
  let beforeQuery: ((n: number) => void) | undefined;
  let queries = 0;

  beforeAll(async () => {
    stack = await startStack({
      wrapCcfs: (real, sim): CcfsApi => ({
        async queryBillData(body, opts) {
          beforeQuery?.(++queries);
          const answer = await real.queryBillData(body, opts);
          if (holdQueryUntilCallbackDelivered && answer.kind === 'accepted') {
            await until('the callback to be delivered while the request is still in flight', () =>
              sim.simulator
                .inspect()
                .callbacks.some((c) => c.responseId === answer.responseId && c.delivered),
            );
          }
          return answer;
        },
        downloadBillFile: (name, dest, opts) => real.downloadBillFile(name, dest, opts),
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  afterEach(() => {
    stack.sim.simulator.setFaults(NO_FAULTS);
    // The stack's generation delay, for tests that changed it.
    stack.sim.simulator.setOptions({ callbackDelayMs: 50 });
    holdQueryUntilCallbackDelivered = false;
    beforeQuery = undefined;
  });

  const tokenKey = () => callbackKey(undefined, TEST_SK);
  const urlOf = (exportId: string, index = 0) =>
    callbackUrl(stack.apiUrl, tokenKey(), chunkWorkflowId(exportId, index));
  const simulatorView = (exportId: string) => {
    const state = stack.sim.simulator.inspect();
    const queries = state.queries.filter(
      (q) => (q.msgBody as { callBackURL?: string }).callBackURL === urlOf(exportId),
    );
    const ids = new Set(queries.map((q) => q.responseId));
    return {
      queries,
      callbacks: state.callbacks.filter((c) => ids.has(c.responseId)),
      downloads: state.downloads.filter((d) => queries.some((q) => q.billFileName === d.billFileName)),
    };
  };
  const oneDay = (options: Parameters<typeof testRequest>[0]['options'] = {}) =>
    testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00', options });
  const chunkOf = async (path: string) => (await readManifest(path)).chunks[0] as ChunkResult;

  it('verifies a chunk once and downloads it once when CC-FS sends its callback twice', async () => {
    stack.sim.simulator.setFaults({ duplicateCallback: 1 });
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const chunk = await chunkOf(result.manifestPath);
    expect(chunk).toMatchObject({ state: 'verified', requests: 1, downloadAttempts: 1 });
    // Both copies were answered 200: the second either reached the finished chunk or was ignored by it.
    const view = await until('both copies of the callback delivered', () => {
      const v = simulatorView(request.exportId);
      return v.callbacks.length === 2 && v.callbacks.every((c) => c.delivered) ? v : undefined;
    });
    expect(view.callbacks.map((c) => c.copy).sort()).toEqual([1, 2]);
    expect(view.callbacks.every((c) => c.statuses.at(-1) === 200)).toBe(true);
    expect(view.queries).toHaveLength(1);
    expect(view.downloads).toHaveLength(1);
    expect(view.downloads[0]!.billFileName).toBe(chunk.billFileName);
  });

  it('accepts a late callback for an earlier request after the chunk has requested again', async () => {
    // Request 1: its file and callback come after 3.5 s (after the 2 s timeout, so the probe before
    // request 2 finds no file). Request 2 and later: no file in time, no callback.
    beforeQuery = (n) => {
      stack.sim.simulator.setOptions({ callbackDelayMs: n === 1 ? 3_500 : 120_000 });
      if (n > 1) stack.sim.simulator.setFaults({ dropCallback: 1 });
    };
    queries = 0;
    const request = oneDay({ callbackTimeoutSeconds: 2, maxRequestsPerChunk: 4 });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const chunk = await chunkOf(result.manifestPath);
    const view = simulatorView(request.exportId);
    expect(chunk.state).toBe('verified');
    // Requested again when the first callback did not come in time (twice, on a slow machine).
    expect(chunk.requests).toBeGreaterThanOrEqual(2);
    expect(chunk.responseIds).toEqual(view.queries.map((q) => q.responseId));
    // The file of the first (earlier) responseId is the one downloaded and verified (the probes
    // before each new request were answered 0300011: no file yet).
    expect(chunk.billFileName).toBe(view.queries[0]!.billFileName);
    const served = view.downloads.filter((d) => d.outcome === '0');
    expect(served).toHaveLength(1);
    expect(served[0]!.billFileName).toBe(view.queries[0]!.billFileName);
    expect(chunk.sha256).toBe(served[0]!.sha256);
    expect(view.downloads.filter((d) => d.outcome !== '0').every((d) => d.outcome === '0300011')).toBe(true);
  });

  it('verifies a chunk whose callback arrives before the chunk starts waiting, with one request', async () => {
    holdQueryUntilCallbackDelivered = true;
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);

    expect(result.state).toBe('completed');
    const chunk = await chunkOf(result.manifestPath);
    const view = simulatorView(request.exportId);
    expect(chunk).toMatchObject({ state: 'verified', requests: 1 });
    expect(view.queries).toHaveLength(1);
    // Accepted at the first attempt, while queryBillData had not yet returned to the workflow.
    expect(view.callbacks).toHaveLength(1);
    expect(view.callbacks[0]!.statuses).toEqual([200]);
    expect(chunk.billFileName).toBe(view.queries[0]!.billFileName);
  });

  describe('a forged callback', () => {
    let request: ReturnType<typeof oneDay>;
    let chunk: WorkflowHandle;
    let responseId: string;
    let url: string;

    beforeAll(async () => {
      // No callback from the simulator: the chunk keeps waiting while forgeries arrive.
      stack.sim.simulator.setFaults({ dropCallback: 1 });
      // No probe in the test's time either: the chunk must still be waiting when the forgeries come.
      request = oneDay({ callbackTimeoutSeconds: 600, probeIntervalSeconds: 3600 });
      await stack.exports.start(request);
      chunk = stack.client.workflow.getHandle(chunkWorkflowId(request.exportId, 0));
      const progress = await until('the chunk to wait for its callback', async () => {
        const p = await chunk.query(chunkProgressQuery).catch(() => undefined);
        return p?.phase === 'waiting-for-callback' ? p : undefined;
      });
      responseId = progress.responseIds[0]!;
      url = urlOf(request.exportId);
      // The simulator decides a drop when its callback timer fires; wait for that decision, or the
      // outer afterEach (which clears the faults) could let the genuine callback through.
      await until('the simulator to drop the genuine callback', () =>
        stack.sim.simulator
          .inspect()
          .faults.some((f) => f.fault === 'dropCallback' && f.responseId === responseId),
      );
    });
    afterAll(async () => {
      await stack.exports.cancel(request.exportId).catch(() => undefined);
    });

    const progress = (): Promise<ChunkProgress> => chunk.query(chunkProgressQuery);
    const signals = async () => {
      const history = await chunk.fetchHistory();
      return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    };

    it('gets 404 for a routing token with a changed MAC or a guessed workflow ID', async () => {
      const good = { responseId, billFileName: fileFor(responseId) };
      const mac = url.slice(url.lastIndexOf('.') + 1);
      const flipped = url.slice(0, -mac.length) + (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1);
      const guessed = callbackUrl(
        stack.apiUrl,
        'a-key-that-is-not-ours',
        chunkWorkflowId(request.exportId, 0),
      );
      const bare = `${stack.apiUrl}/callbacks/ccfs/${Buffer.from(chunkWorkflowId(request.exportId, 0)).toString('base64url')}`;
      for (const target of [flipped, guessed, bare]) {
        const res = await postCallback(target, good);
        expect(res.status, target).toBe(404);
      }
      expect((await progress()).callbacksReceived).toBe(0);
      expect(await signals()).toBe(0);
    });

    it('gets 401 for a valid token without a signature, with a wrong key, or from an unknown AK', async () => {
      const good = { responseId, billFileName: fileFor(responseId) };
      expect((await postCallback(url, good, { unsigned: true })).status).toBe(401);
      expect((await postCallback(url, good, { sk: `${TEST_SK}-wrong` })).status).toBe(401);
      expect((await postCallback(url, good, { ak: 'someone-else' })).status).toBe(401);
      expect((await progress()).callbacksReceived).toBe(0);
      expect(await signals()).toBe(0);
    });

    it('gets 401 for a correctly signed callback with a stale timestamp', async () => {
      const good = { responseId, billFileName: fileFor(responseId) };
      const res = await postCallback(url, good, { timestamp: new Date(Date.now() - 3600_000) });
      expect(res.status).toBe(401);
      expect((await postCallback(url, good, { timestamp: new Date(Date.now() + 3600_000) })).status).toBe(
        401,
      );
      expect((await progress()).callbacksReceived).toBe(0);
      expect(await signals()).toBe(0);
    });

    it('gets 400 for a correctly signed callback whose billFileName belongs to another responseId', async () => {
      const other = 'f'.repeat(32);
      const res = await postCallback(url, { responseId, billFileName: fileFor(other) });
      expect(res.status).toBe(400);
      expect((await postCallback(url, { responseId, billFileName: '../../etc/passwd' })).status).toBe(400);
      const p = await progress();
      expect(p).toMatchObject({ callbacksReceived: 0, callbacksRejected: 0, phase: 'waiting-for-callback' });
      expect(await signals()).toBe(0);
    });

    it('still accepts the genuine callback afterwards, so the rejections above were not for want of a route', async () => {
      const res = await postCallback(url, {
        responseId,
        billFileName: stack.sim.simulator.inspect().queries.find((q) => q.responseId === responseId)!
          .billFileName!,
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ resultCode: '0', resultDesc: 'success' });
      const result = await stack.exports.result(request.exportId);
      expect(result.state).toBe('completed');
      expect(await signals()).toBe(1);
      expect((await chunkOf(result.manifestPath)).requests).toBe(1);
    });
  });

  it('answers 200 to a callback for a chunk that has already finished, and logs it', async () => {
    const request = oneDay();
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    const { queries } = simulatorView(request.exportId);
    const { responseId, billFileName } = queries[0]!;

    const res = await postCallback(urlOf(request.exportId), { responseId, billFileName });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ resultCode: '0', resultDesc: 'success' });
    const logged = stack.logs
      .map((l) => JSON.parse(l) as { msg: string; workflowId?: string; responseId?: string })
      .filter(
        (l) =>
          l.msg === 'callback for a chunk that already finished' &&
          l.workflowId === chunkWorkflowId(request.exportId, 0),
      );
    expect(logged).toEqual([expect.objectContaining({ responseId })]);
  });
});
