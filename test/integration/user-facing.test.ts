import { spawn } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { DateTime } from 'luxon';
import { buildExportRequest } from '../../lib/export-input';
import { ExportService } from '../../lib/export-service';
import { ROOT, runCli, until } from '../e2e/support/processes';
import { readManifest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

/**
 * Issue 18, as a user meets it: the API over real HTTP and `ccfs-export` as a child process against a
 * real Temporal dev server, the worker and the simulator. A reused export ID, a range that has not
 * ended, `list` after a retry, `status`/`cancel`/`retry` of finished exports, JSON through a pipe that
 * is read slowly, and Ctrl-C on `export --wait`.
 */
describe('as a user meets it', () => {
  let stack: Stack;
  let cliEnv: Record<string, string>;
  const tag = Date.now().toString(36);
  const id = (name: string) => `uf-${tag}-${name}`;

  const post = (path: string, body?: unknown) =>
    fetch(`${stack.apiUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const get = (path: string) => fetch(`${stack.apiUrl}${path}`);
  const fast = {
    maxChunksInFlight: 8,
    callbackTimeoutSeconds: 30,
    retryInitialIntervalSeconds: 0.2,
    retryMaximumIntervalSeconds: 1,
    retryMaximumAttempts: 3,
  };
  const body = (exportId: string, over: Record<string, unknown> = {}) => ({
    exportId,
    from: '2024-04-01 00:00:00',
    to: '2024-04-07 00:00:00',
    dataType: 'call',
    timeZone: 'Asia/Shanghai',
    options: fast,
    ...over,
  });
  /**
   * Holds every new request's file back (and so its callback): chunks requested from now on wait, and
   * their exports keep running. Undone by the reset before each test.
   */
  const holdFiles = () => stack.sim.simulator.setOptions({ callbackDelayMs: 3_600_000 });
  const closed = (exportId: string) =>
    until(
      `${exportId} to close`,
      async () => ((await stack.exports.describe(exportId))?.status.name !== 'RUNNING' ? true : undefined),
      90_000,
    );

  beforeAll(async () => {
    stack = await startStack();
    cliEnv = {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      TENANT_TIME_ZONE: 'Asia/Shanghai',
    };
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack.sim.simulator.reset();
  });

  describe('a reused export ID', () => {
    it('POST /exports answers 200 for the same request and 409 naming the fields for a different one, running or finished', async () => {
      // Running: no file is ready, so the export waits.
      holdFiles();
      const running = id('reuse-running');
      expect(
        (await post('/exports', body(running, { options: { ...fast, callbackTimeoutSeconds: 600 } }))).status,
      ).toBe(201);
      expect(
        (await post('/exports', body(running, { options: { ...fast, callbackTimeoutSeconds: 600 } }))).status,
      ).toBe(200);
      const conflict = await post(
        '/exports',
        body(running, {
          from: '2024-05-01 00:00:00',
          to: '2024-05-09 00:00:00',
          dataType: 'record',
          options: { ...fast, callbackTimeoutSeconds: 600 },
        }),
      );
      expect(conflict.status).toBe(409);
      const answer = (await conflict.json()) as { error: string; message: string; fields: string[] };
      expect(answer.fields).toEqual(expect.arrayContaining(['from', 'to', 'dataType']));
      expect(answer.message).toMatch(/from.*to.*dataType|dataType/);
      await stack.exports.cancel(running);
      await closed(running);

      // Finished.
      stack.sim.simulator.setOptions({ callbackDelayMs: 50 });
      const finished = id('reuse-finished');
      expect((await post('/exports', body(finished))).status).toBe(201);
      await closed(finished);
      expect((await post('/exports', body(finished))).status).toBe(200);
      const again = await post('/exports', body(finished, { filters: { callerNo: '12345' } }));
      expect(again.status).toBe(409);
      expect(((await again.json()) as { fields: string[] }).fields).toEqual(['filters.callerNo']);
    });

    it('ccfs-export export with a used ID and a different request exits 1 naming the fields and prints no manifest', async () => {
      const exportId = id('reuse-cli');
      expect((await post('/exports', body(exportId))).status).toBe(201);
      await closed(exportId);
      const cli = await runCli(
        [
          'export',
          '--export-id',
          exportId,
          '--from',
          '2024-05-01 00:00:00',
          '--to',
          '2024-05-09 00:00:00',
          '--type',
          'record',
          '--time-zone',
          'Asia/Shanghai',
          '--wait',
        ],
        cliEnv,
      );
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/already/);
      expect(cli.stderr).toContain('from');
      expect(cli.stderr).toContain('dataType');
      expect(cli.stdout).toBe('');
    });
  });

  describe('a range that has not ended', () => {
    const tomorrow = () => DateTime.now().setZone('Asia/Shanghai').plus({ days: 1 }).startOf('day');
    const wall = (d: DateTime) => d.toFormat('yyyy-MM-dd HH:mm:ss');

    it('is refused by the API and the CLI, naming the end and the zone', async () => {
      const to = tomorrow();
      const res = await post(
        '/exports',
        body(id('future-api'), { from: wall(to.minus({ days: 2 })), to: wall(to) }),
      );
      expect(res.status).toBe(400);
      expect(JSON.stringify(await res.json())).toMatch(/future|not ended|has not/);
      const cli = await runCli(
        [
          'export',
          '--from',
          wall(to.minus({ days: 2 })),
          '--to',
          '2030-01-01 00:00:00',
          '--type',
          'call',
          '--time-zone',
          'Asia/Shanghai',
        ],
        cliEnv,
      );
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('2030-01-01 00:00:00');
      expect(cli.stderr).toContain('--allow-partial');
      expect(await stack.exports.describe(id('future-api'))).toBeUndefined();
    });

    it('with allowPartial is exported and marked partial in status and manifest', async () => {
      const exportId = id('future-partial');
      const to = tomorrow();
      const res = await post(
        '/exports',
        body(exportId, { from: wall(to.minus({ days: 2 })), to: wall(to), allowPartial: true }),
      );
      expect(res.status).toBe(201);
      await closed(exportId);
      const status = (await (await get(`/exports/${exportId}`)).json()) as {
        partial?: boolean;
        request: { partial?: unknown };
      };
      expect(status.partial).toBe(true);
      const manifest = (await readManifest(stack.output.manifestPath(exportId))) as unknown as {
        request: { partial?: unknown };
      };
      expect(manifest.request.partial).toBeTruthy();
      const cli = await runCli(['status', exportId], cliEnv);
      expect(cli.stdout).toMatch(/partial/);
    });
  });

  describe('list, status, cancel and retry', () => {
    it('lists one row per export in its true state after a retry, and rejects unknown states', async () => {
      const exportId = id('list-retry');
      // Every download fails for good, so the export ends with failures and can be retried.
      stack.sim.simulator.setFaults({ downloadHttp500: 1 });
      expect(
        (
          await post(
            '/exports',
            body(exportId, { to: '2024-04-04 00:00:00', options: { ...fast, retryMaximumAttempts: 1 } }),
          )
        ).status,
      ).toBe(201);
      await closed(exportId);
      stack.sim.simulator.setFaults({ downloadHttp500: 0 });
      expect((await post(`/exports/${exportId}/retry`)).status).toBe(202);
      await closed(exportId);
      await until('two runs in visibility', async () => {
        let n = 0;
        for await (const wf of stack.client.workflow.list({
          query: `CcfsExportId = "${exportId}" AND CcfsKind = "export"`,
        }))
          if (wf) n++;
        return n >= 2 ? true : undefined;
      });
      const rows = async (q: string) =>
        (
          (await (await get(`/exports?${q}`)).json()) as {
            exports: Array<{ exportId: string; state: string }>;
          }
        ).exports.filter((e) => e.exportId === exportId);
      await until('the retry run in visibility', async () =>
        (await rows('state=completed')).length === 1 ? true : undefined,
      );
      expect(await rows('tenant=default&limit=1000')).toEqual([
        expect.objectContaining({ exportId, state: 'completed' }),
      ]);
      expect(await rows('state=completed_with_failures&limit=1000')).toEqual([]);
      const cli = await runCli(['list', '--json', '--limit', '1000'], cliEnv);
      expect(
        (JSON.parse(cli.stdout) as Array<{ exportId: string }>).filter((e) => e.exportId === exportId),
      ).toHaveLength(1);

      const bad = await get('/exports?state=finished');
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain('completed_with_failures');
      const badCli = await runCli(['list', '--state', 'finished'], cliEnv);
      expect(badCli.code).toBe(1);
      expect(badCli.stderr).toContain('completed_with_failures');
    });

    it('counts the chunks of a cancelled export as cancelled, and lists it under canceled and cancelled', async () => {
      const exportId = id('cancelled');
      holdFiles();
      expect(
        (
          await post(
            '/exports',
            body(exportId, { options: { ...fast, maxChunksInFlight: 1, callbackTimeoutSeconds: 600 } }),
          )
        ).status,
      ).toBe(201);
      await until('a chunk to run', async () =>
        (await stack.exports.status(exportId))?.counts.running ? true : undefined,
      );
      const cancel = await runCli(['cancel', exportId], cliEnv);
      expect(cancel.code).toBe(0);
      await closed(exportId);
      const status = await runCli(['status', exportId], cliEnv);
      expect(status.stdout).toMatch(/\d+ cancelled/);
      expect(status.stdout).not.toMatch(/\d+ failed/);
      for (const state of ['canceled', 'cancelled']) {
        const list = await until(`the cancelled state in visibility (${state})`, async () => {
          const out = await runCli(['list', '--state', state, '--json', '--limit', '1000'], cliEnv);
          const mine = (JSON.parse(out.stdout) as Array<{ exportId: string }>).filter(
            (e) => e.exportId === exportId,
          );
          return mine.length === 1 ? mine : undefined;
        });
        expect(list).toHaveLength(1);
      }
      expect((await get('/exports?state=canceled')).status).toBe(200);
    });

    it('lists an export that continued as new once, in its final state', async () => {
      const exportId = id('list-can');
      // A small history budget, so the export continues as new several times on the way.
      expect(
        (
          await post(
            '/exports',
            body(exportId, {
              from: '2024-01-01 00:00:00',
              to: '2024-02-15 00:00:00',
              options: { ...fast, chunkHours: 24, maxHistoryEvents: 200 },
            }),
          )
        ).status,
      ).toBe(201);
      await closed(exportId);
      let runs = 0;
      for await (const wf of stack.client.workflow.list({
        query: `CcfsExportId = "${exportId}" AND CcfsKind = "export"`,
      }))
        if (wf) runs++;
      expect(runs).toBeGreaterThan(1);
      const rows = await until('the final state in visibility', async () => {
        const all = (
          (await (await get('/exports?tenant=default&limit=1000')).json()) as {
            exports: Array<{ exportId: string; state: string }>;
          }
        ).exports;
        const mine = all.filter((e) => e.exportId === exportId);
        return mine.length === 1 && mine[0]!.state === 'completed' ? mine : undefined;
      });
      expect(rows).toHaveLength(1);
      const running = (
        (await (await get('/exports?state=running&limit=1000')).json()) as {
          exports: Array<{ exportId: string }>;
        }
      ).exports;
      expect(running.filter((e) => e.exportId === exportId)).toEqual([]);
    });

    it('cancel of a finished export says so and changes nothing; retry with nothing to retry starts nothing', async () => {
      const exportId = id('finished');
      expect((await post('/exports', body(exportId))).status).toBe(201);
      await closed(exportId);
      const before = await stack.exports.describe(exportId);

      const cli = await runCli(['cancel', exportId], cliEnv);
      expect(cli.stdout + cli.stderr).not.toMatch(/cancellation requested/);
      expect(cli.stdout + cli.stderr).toMatch(/already finished.*completed|nothing to cancel/);
      expect(cli.code).toBe(0);
      const api = await post(`/exports/${exportId}/cancel`);
      expect(api.status).toBe(200);
      expect(await api.json()).toMatchObject({ exportId, cancelRequested: false, state: 'completed' });

      const retry = await runCli(['retry', exportId], cliEnv);
      expect(retry.stdout + retry.stderr).toMatch(/nothing to retry/);
      expect(retry.code).toBe(0);
      expect((await post(`/exports/${exportId}/retry`)).status).toBe(409);
      expect((await stack.exports.describe(exportId))?.runId).toBe(before?.runId);
    });
  });

  /**
   * Runs the CLI as `ccfs-export … | (sleep 2; cat)` in bash: a real pipe (64 KiB), read late, as by a
   * slow consumer (`| jq` on a busy machine). Node's own child pipes are socket pairs with far larger
   * buffers, which would hide the cut. The exit code is the CLI's (pipefail).
   */
  function slowPipe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(
        'bash',
        ['-c', 'set -o pipefail; "$0" bin/ccfs-export.mjs "$@" | (sleep 2; cat)', process.execPath, ...args],
        {
          cwd: ROOT,
          env: { ...process.env, ...cliEnv },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const out: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr }));
    });
  }

  it('prints whole JSON through a slowly read pipe: status, list, export --wait, coverage', async () => {
    // Many hour-long chunks, so the ledger is far larger than a pipe buffer (64 KiB).
    holdFiles();
    const big = id('big');
    expect(
      (
        await post(
          '/exports',
          body(big, {
            from: '2024-01-01 00:00:00',
            to: '2024-05-01 00:00:00',
            options: { ...fast, chunkHours: 1, maxChunksInFlight: 1, callbackTimeoutSeconds: 600 },
          }),
        )
      ).status,
    ).toBe(201);
    const status = await slowPipe(['status', big, '--json']);
    expect(status.code).toBe(0);
    expect(status.stdout.length, status.stderr).toBeGreaterThan(500_000);
    expect((JSON.parse(status.stdout) as { chunks: unknown[] }).chunks).toHaveLength(121 * 24);
    // A reader that stops early (`| head -c 100`) ends the CLI quietly, exit 0, no EPIPE stack trace.
    // (Asynchronously: the worker that answers the CLI's query runs in this process.)
    const early = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        'bash',
        [
          '-c',
          'set -o pipefail; "$0" bin/ccfs-export.mjs status "$1" --json | head -c 100',
          process.execPath,
          big,
        ],
        { cwd: ROOT, env: { ...process.env, ...cliEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(early.stdout).toHaveLength(100);
    expect(early.stderr).not.toMatch(/EPIPE|Error/);
    expect(early.code, early.stderr).toBe(0);
    await stack.exports.cancel(big);

    // Many exports (on a queue no worker polls: they only have to exist), so the list is large.
    const tenant = `many-${tag}`;
    const idle = new ExportService(stack.client, { ...stack.exports.settings, taskQueue: `idle-${tag}` });
    for (let i = 0; i < 150; i++)
      await idle.start(
        buildExportRequest(
          {
            exportId: id(`many-${i}`),
            from: '2024-01-01 00:00:00',
            to: '2024-01-02 00:00:00',
            dataType: 'call',
            filters: { accountId: tenant },
          },
          { timeZone: 'UTC', origin: 'test' },
        ),
      );
    await until('150 exports in visibility', async () =>
      (await idle.list({ tenant, limit: 1000 })).length >= 150 ? true : undefined,
    );
    const list = await slowPipe(['list', '--tenant', tenant, '--limit', '1000', '--json']);
    expect(list.stdout.length, `${list.code} ${list.stderr}`).toBeGreaterThan(70_000);
    expect(JSON.parse(list.stdout)).toHaveLength(150);
    for (let i = 0; i < 150; i++)
      await stack.client.workflow.getHandle(`ccfs-export/${id(`many-${i}`)}`).terminate('test done');

    // The manifest of that export through export --wait --json: the same request again follows it.
    await closed(big);
    const wait = await slowPipe([
      'export',
      '--export-id',
      big,
      '--from',
      '2024-01-01 00:00:00',
      '--to',
      '2024-05-01 00:00:00',
      '--type',
      'call',
      '--time-zone',
      'Asia/Shanghai',
      '--wait',
      '--json',
    ]);
    expect(wait.code, wait.stderr).toBe(2);
    expect(wait.stderr).toContain('cancelled');
    expect(wait.stdout.length).toBeGreaterThan(300_000);
    expect((JSON.parse(wait.stdout) as { chunks: unknown[] }).chunks).toHaveLength(121 * 24);

    const coverage = await slowPipe(['coverage', '--from', '2000-01-01', '--to', '2024-01-01', '--json']);
    expect(coverage.code).toBe(0);
    expect(() => JSON.parse(coverage.stdout) as unknown).not.toThrow();
  });

  it('Ctrl-C on export --wait says the export goes on and how to follow or cancel it, and exits 130', async () => {
    holdFiles();
    const exportId = id('ctrl-c');
    const child = spawn(
      process.execPath,
      [
        'bin/ccfs-export.mjs',
        'export',
        '--export-id',
        exportId,
        '--from',
        '2024-04-01 00:00:00',
        '--to',
        '2024-04-04 00:00:00',
        '--type',
        'call',
        '--time-zone',
        'Asia/Shanghai',
        '--callback-timeout',
        '600',
        '--wait',
      ],
      { cwd: ROOT, env: { ...process.env, ...cliEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    await until('progress', () => (/chunks/.test(stderr) ? true : undefined), 60_000);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain(`ccfs-export status ${exportId}`);
    expect(stderr).toContain(`ccfs-export cancel ${exportId}`);
    expect(stderr).toMatch(/goes on|still running|keeps running/);
    expect((await stack.exports.describe(exportId))?.status.name).toBe('RUNNING');
    await stack.exports.cancel(exportId);
  });

  it("the API's /metrics serves the API's counters only", async () => {
    const text = await (await get('/metrics')).text();
    expect(text).toContain('ccfs_export_callbacks_total');
    expect(text).not.toContain('ccfs_export_download_bytes_total');
    expect(text).not.toContain('ccfs_export_chunks_total');
  });

  it('status of an export no worker answers for says so within seconds: API 503, CLI exit 3, naming the task queue', async () => {
    // Started on a queue no worker polls: its workflow exists, but nothing can answer its query.
    const queue = `idle-status-${tag}`;
    const idle = new ExportService(stack.client, { ...stack.exports.settings, taskQueue: queue });
    const exportId = id('no-worker');
    await idle.start(
      buildExportRequest(
        { exportId, from: '2024-01-01 00:00:00', to: '2024-01-02 00:00:00', dataType: 'call' },
        { timeZone: 'UTC', origin: 'test' },
      ),
    );
    try {
      const started = Date.now();
      await expect(idle.status(exportId)).rejects.toThrow(
        new RegExp(`no worker answered .* task queue ${queue}`),
      );
      // Well before the server's own ~30 s, whatever the load.
      expect(Date.now() - started).toBeLessThan(25_000);
      const res = await get(`/exports/${exportId}`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: 'no_worker' });
      const cli = await runCli(['status', exportId], cliEnv);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toMatch(/no worker answered the status query/);
      expect(cli.stderr).not.toMatch(/^\s+at /m);
    } finally {
      await stack.client.workflow.getHandle(`ccfs-export/${exportId}`).terminate('test done');
    }
  });
});
