import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkWorkflowId, exportWorkflowId } from '../../workflows/definitions';
import { startStack, type Stack } from '../support/stack';

/** The management API with a token, against the real dev server: what the component test cannot reach. */

const TOKEN = `api-token-${randomUUID()}`;

describe('management API against Temporal', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ apiTokens: [TOKEN] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** `token: null` sends no Authorization header. */
  const call = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('answers /healthz without a token', async () => {
    // The worker's pollers show up a moment after it starts.
    let res = await call('GET', '/healthz', undefined, null);
    for (let i = 0; i < 100 && res.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await call('GET', '/healthz', undefined, null);
    }
    expect(res).toEqual({
      status: 200,
      body: { status: 'ok', components: { api: 'ok', temporal: 'ok', worker: 'ok' } },
    });
  });

  it('starts one export for a client-supplied ID however often it is posted', async () => {
    const exportId = `idem-${Date.now().toString(36)}`;
    const body = {
      exportId,
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      dataType: 'call',
      options: { retryInitialIntervalSeconds: 0.2 },
    };
    const first = await call('POST', '/exports', body);
    const second = await call('POST', '/exports', body);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ exportId, created: true, workflowId: exportWorkflowId(exportId) });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ exportId, created: false, runId: first.body.runId });

    await stack.exports.result(exportId);
    // Posting it again after it finished does not start it again either.
    const third = await call('POST', '/exports', body);
    expect(third.status).toBe(200);
    expect(third.body).toMatchObject({ created: false, runId: first.body.runId });

    const runs: string[] = [];
    for await (const wf of stack.client.workflow.list({
      query: `WorkflowId = '${exportWorkflowId(exportId)}'`,
    }))
      runs.push(wf.runId);
    expect(runs).toEqual([first.body.runId]);
    // One request of its one chunk reached CC-FS.
    const token = Buffer.from(chunkWorkflowId(exportId, 0)).toString('base64url');
    expect(
      stack.sim.simulator
        .inspect()
        .queries.filter((q) => (q.msgBody as { callBackURL: string }).callBackURL.includes(`/${token}.`)),
    ).toHaveLength(1);
  });

  it('reads an export with the token and refuses it without', async () => {
    const exportId = `read-${Date.now().toString(36)}`;
    await call('POST', '/exports', {
      exportId,
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      dataType: 'record',
    });
    await stack.exports.result(exportId);
    const ok = await call('GET', `/exports/${exportId}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ exportId, state: 'completed' });
    expect((await call('GET', `/exports/${exportId}`, undefined, null)).status).toBe(401);
    expect((await call('GET', `/exports/${exportId}`, undefined, `${TOKEN}0`)).status).toBe(401);
    expect((await call('GET', '/exports/no-such-export')).status).toBe(404);
  });
});
