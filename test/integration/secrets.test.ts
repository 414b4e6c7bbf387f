import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sign } from '../../ccfs/signer';
import { callbackKey, callbackUrl } from '../../lib/callback-token';
import { chunkWorkflowId } from '../../workflows/definitions';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';

/**
 * After a real export through the API — with failures on purpose — no secret is anywhere a person
 * or a tool can read: workflow histories, log lines, files on disk, /metrics, API answers.
 */

const API_TOKEN = `api-token-${randomUUID()}`;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

describe('secrets', () => {
  let stack: Stack;
  const answers: string[] = [];
  let exportId: string;

  const api = async (
    method: string,
    path: string,
    opts: { token?: string; body?: string; contentType?: string } = {},
  ) => {
    const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const res = await request(`${stack.apiUrl}${path}`, {
      method: method as 'GET',
      headers,
      body: opts.body,
    });
    const text = await res.body.text();
    answers.push(`${res.statusCode} ${JSON.stringify(res.headers)} ${text}`);
    return { status: res.statusCode, text };
  };

  beforeAll(async () => {
    stack = await startStack({ apiTokens: [API_TOKEN] });

    // An export started through the API with the token, one chunk of which needs a re-request.
    exportId = `secrets-${Date.now().toString(36)}`;
    const started = await api('POST', '/exports', {
      token: API_TOKEN,
      body: JSON.stringify({
        exportId,
        from: '2024-03-01 00:00:00',
        to: '2024-03-05 00:00:00',
        dataType: 'call_record',
        options: {
          callbackTimeoutSeconds: 20,
          retryInitialIntervalSeconds: 0.2,
          retryMaximumIntervalSeconds: 1,
        },
      }),
    });
    expect(started.status).toBe(201);
    await stack.exports.result(exportId);

    // Failures on purpose: each one's answer and log line goes into the search.
    await api('GET', '/exports', { token: `${API_TOKEN}x` });
    await api('GET', '/exports', { token: API_TOKEN.slice(0, -1) });
    await api('GET', '/exports');
    await api('POST', '/exports', {
      token: API_TOKEN,
      body: JSON.stringify({ from: '2024-02-30 00:00:00', to: 'x', dataType: 'y', sk: 'field' }),
    });
    await api('POST', '/exports', { token: API_TOKEN, body: '{"broken' });
    await api('POST', '/exports', { token: API_TOKEN, body: JSON.stringify({ pad: 'x'.repeat(40_000) }) });
    await api('GET', '/exports/does-not-exist', { token: API_TOKEN });
    await api('GET', `/exports/${exportId}`, { token: API_TOKEN });
    await api('POST', `/exports/${exportId}/retry`, { token: API_TOKEN });

    // Callbacks: forged, mis-signed, stale, and one for the finished chunk.
    const url = new URL(
      callbackUrl(stack.apiUrl, callbackKey(undefined, TEST_SK), chunkWorkflowId(exportId, 0)),
    );
    const query = stack.sim.simulator
      .inspect()
      .queries.find((q) => (q.msgBody as { callBackURL: string }).callBackURL === url.href)!;
    const body = Buffer.from(
      JSON.stringify({
        request: { version: '2.0' },
        msgBody: { responseId: query.responseId, billFileName: query.billFileName },
      }),
    );
    const headers: Record<string, string> = {
      host: url.host,
      'content-type': 'application/json',
      'content-length': String(body.length),
    };
    const signed = (sk: string, at = new Date()) => ({
      ...headers,
      authorization: sign({
        credentials: { ak: TEST_AK, sk },
        method: 'POST',
        path: url.pathname,
        headers,
        body,
        timestamp: at,
      }),
    });
    for (const [path, h] of [
      [`${url.pathname}x`, signed(TEST_SK)],
      [url.pathname, signed(`${TEST_SK}x`)],
      [url.pathname, signed(TEST_SK, new Date(Date.now() - 7200_000))],
      [url.pathname, headers],
      [url.pathname, signed(TEST_SK)],
    ] as const) {
      const res = await request(`${stack.apiUrl}${path}`, { method: 'POST', headers: h, body });
      answers.push(`${res.statusCode} ${JSON.stringify(res.headers)} ${await res.body.text()}`);
    }
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** The secrets and the forms they could leak in. */
  const secrets = () => {
    const values = { sk: TEST_SK, apiToken: API_TOKEN, callbackKey: callbackKey(undefined, TEST_SK) };
    return Object.entries(values).flatMap(([name, v]): Array<[string, string]> => [
      [name, v],
      [`${name} (base64)`, Buffer.from(v).toString('base64')],
      [`${name} (url-encoded)`, encodeURIComponent(v)],
    ]);
  };
  const expectClean = (where: string, texts: string[]) => {
    for (const [name, value] of secrets()) {
      const hit = texts.findIndex((t) => t.includes(value));
      // The message shows where, with the value itself blanked out.
      expect(
        hit,
        `${name} found in ${where} #${hit}: ${texts[hit]?.split(value).join('<SECRET>').slice(0, 400)}`,
      ).toBe(-1);
    }
  };

  it('keeps secrets out of every workflow history of the task queue', async () => {
    const histories: string[] = [];
    for await (const wf of stack.client.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
      const history = await stack.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      histories.push(JSON.stringify(history));
    }
    // The export, its chunks and the retry: and the histories hold what was done, so the search is real.
    expect(histories.length).toBeGreaterThanOrEqual(3);
    expect(histories.some((h) => h.includes(exportId))).toBe(true);
    expectClean('a workflow history', histories);
  });

  it('keeps secrets out of every log line of the worker and the API', () => {
    expect(stack.logs.some((l) => l.includes('callback signature rejected'))).toBe(true);
    expect(stack.logs.some((l) => l.includes('chunk downloaded and verified'))).toBe(true);
    expectClean('a log line', stack.logs);
  });

  it('keeps secrets out of every file the export wrote', async () => {
    const files = await filesUnder(stack.outputDir);
    expect(files.some((f) => f.endsWith('manifest.json'))).toBe(true);
    expect(
      files.filter((f) => f.includes(`${join('chunks', '')}`) && f.endsWith('.json')).length,
    ).toBeGreaterThanOrEqual(2);
    // A write-then-rename temporary can vanish between listing and reading; what it held is in its target.
    const read = async (f: string) =>
      readFile(f).catch((e: NodeJS.ErrnoException) =>
        e.code === 'ENOENT' ? Buffer.alloc(0) : Promise.reject(e),
      );
    const texts = await Promise.all(files.map(async (f) => `${f}\n${(await read(f)).toString('latin1')}`));
    expectClean('an output file', texts);
  });

  it('keeps secrets out of /metrics', async () => {
    const res = await request(`${stack.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(text).toContain('ccfs_export_callbacks_total');
    expectClean('/metrics', [text, await stack.metrics.registry.metrics()]);
  });

  it('keeps secrets out of every API and callback answer, including the errors', () => {
    expect(answers.filter((a) => /^4\d\d /.test(a)).length).toBeGreaterThanOrEqual(10);
    expectClean('an HTTP answer', answers);
  });
});
