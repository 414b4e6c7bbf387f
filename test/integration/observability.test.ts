import { until } from '../support/until';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { createCli, type Io } from '../../cli/main';
import { freePort, portIsFree } from '../../dev/temporal-server';
import { loadConfig } from '../../lib/config';
import { cliCommand } from '../../scripts/register-search-attributes';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import type { ExportStatusView, ExportSummary } from '../../lib/export-service';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import { freshNamespace } from '../support/namespaces';
import { chunkWorkflowId, exportWorkflowId, type ExportResult } from '../../workflows/definitions';

/**
 * What an operator has to watch the service with, from the processes as they run in production:
 * the worker and the API started as `npm run worker` / `npm run api` start them (JSON logs on
 * stdout, Prometheus on their ports), the CLI as a person runs it, with and without a terminal.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AK = 'obs-ak';
const SK = `sk-${randomUUID()}`;
/** A tenant of this file alone, so list filters see only this file's exports on the shared server. */
const TENANT = `obs${Date.now().toString(36)}`;
const UI = 'http://temporal-ui.example:8233';

type LogLine = Record<string, unknown> & { msg: string; level: number };

/** Prometheus text → `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^(\S+?(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (match) out.set(match[1]!, Number(match[2]));
  }
  return out;
}

const metric = (metrics: Map<string, number>, name: string) => metrics.get(name) ?? 0;

/** Runs the CLI in-process against this file's worker, collecting what it prints. */
async function cli(
  env: NodeJS.ProcessEnv,
  args: string[],
  tty = false,
): Promise<{ out: string[]; err: string[]; redraws: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const redraws: string[] = [];
  const io: Io = {
    tty,
    columns: 200,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    status: (l) => redraws.push(l),
    pollMs: 200,
  };
  await createCli(io, () => loadConfig(env, '')).parseAsync(args, { from: 'user' });
  return { out, err, redraws };
}

/** The CLI as a separate process, on a pseudo-terminal (`script`) or on pipes. */
function spawnCli(
  env: NodeJS.ProcessEnv,
  args: string[],
  tty: boolean,
): { done: Promise<{ code: number | null; output: string }> } {
  const quoted = ['node', 'bin/ccfs-export.mjs', ...args]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  // `script` gives the command a terminal of its own; -e passes its exit code on.
  const child = tty
    ? spawn('script', ['-qec', `stty cols 200 rows 50; ${quoted}`, '/dev/null'], {
        cwd: ROOT,
        env: { ...env, TERM: 'xterm' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, ['bin/ccfs-export.mjs', ...args], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return { done: new Promise((resolve) => child.once('exit', (code) => resolve({ code, output }))) };
}

describe('observability of a running service', () => {
  const outputDir = mkdtempSync(join(tmpdir(), 'ccfs-obs-'));
  const taskQueue = `obs-${randomUUID()}`;
  const logs: { worker: LogLine[]; api: LogLine[]; raw: string[] } = { worker: [], api: [], raw: [] };
  const children: ChildProcess[] = [];
  let sim: RunningSimulator;
  let env: NodeJS.ProcessEnv;
  let apiUrl: string;
  let workerMetricsUrl: string;
  let connection: Connection;
  let client: Client;
  const exportId = `obs-${Date.now().toString(36)}`;

  function start(name: 'worker' | 'api', script: string): void {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        logs.raw.push(line);
        try {
          logs[name].push(JSON.parse(line) as LogLine);
        } catch {
          // Not JSON: kept in raw, where the test that every line is JSON finds it.
        }
      });
    }
  }

  beforeAll(async () => {
    sim = await startSimulator({
      port: 0,
      accounts: [{ ak: AK, sk: SK, accountId: TENANT }],
      seed: 5,
      callbackDelayMs: 100,
      callbackRetryIntervalMs: 60_000,
    });
    const apiPort = await freePort();
    let metricsPort = await freePort();
    while (!(await portIsFree(metricsPort + 1, '127.0.0.1'))) metricsPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !/^(TEMPORAL|CCFS|API|WORKER|OUTPUT|CALLBACK|TENANT|TENANTS|LOG)_/.test(k),
      ),
    );
    env = {
      ...inherited,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: taskQueue,
      TEMPORAL_UI_URL: UI,
      CCFS_BASE_URL: sim.url,
      CCFS_AK: AK,
      CCFS_SK: SK,
      CCFS_MAX_CALLS_PER_SECOND: '100',
      CALLBACK_BASE_URL: apiUrl,
      API_PORT: String(apiPort),
      API_HOST: '127.0.0.1',
      API_AUTH: 'none',
      WORKER_METRICS_PORT: String(metricsPort),
      OUTPUT_DIR: outputDir,
      TENANT_TIME_ZONE: 'Asia/Shanghai',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'debug',
    };
    start('worker', 'worker/main.ts');
    start('api', 'api/main.ts');
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
    await until('the API and a polling worker', async () => {
      const res = await fetch(`${apiUrl}/healthz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });

    // One export that meets each thing the metrics count: a flow-controlled query (an answer code
    // and a retry), a dropped callback whose file is not there either (a probe, then a re-request
    // after the callback timeout — a file that is there would be found by the probe), downloads.
    // Callbacks come 1.5 s after a query, so the faults can end between a re-request and its callback.
    sim.simulator.setOptions({ callbackDelayMs: 1500 });
    sim.simulator.setFaults({ queryFlowControl: 1, dropCallback: 1, expireFiles: 1 });
    const res = await fetch(`${apiUrl}/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        exportId,
        from: '2024-03-01 00:00:00',
        to: '2024-03-07 00:00:00',
        dataType: 'call_record',
        filters: { accountId: TENANT },
        options: {
          callbackTimeoutSeconds: 3,
          retryInitialIntervalSeconds: 0.2,
          retryMaximumIntervalSeconds: 0.5,
          retryMaximumAttempts: 10,
        },
      }),
    });
    expect(res.status).toBe(201);
    await until('a flow-controlled query', () =>
      sim.simulator.inspect().faults.some((f) => f.fault === 'queryFlowControl') ? true : undefined,
    );
    sim.simulator.setFaults({ queryFlowControl: 0 });
    // Each chunk's first callback is dropped and its file found missing by the probe before the
    // re-request; once both chunks have re-requested, the faults end before those callbacks come.
    await until(
      'a second request of each chunk',
      () => {
        const perChunk = new Map<string, number>();
        for (const q of sim.simulator.inspect().queries) {
          if (q.outcome !== '0') continue;
          const begin = (q.msgBody as { beginTime: string }).beginTime;
          perChunk.set(begin, (perChunk.get(begin) ?? 0) + 1);
        }
        return perChunk.size === 2 && [...perChunk.values()].every((n) => n >= 2) ? true : undefined;
      },
      60_000,
      50,
    );
    sim.simulator.setFaults({ dropCallback: 0, expireFiles: 0 });
    sim.simulator.setOptions({ callbackDelayMs: 100 });
    const result = (await client.workflow.getHandle(exportWorkflowId(exportId)).result()) as ExportResult;
    expect(result.state, JSON.stringify(result.failedChunks)).toBe('completed');
  });

  afterAll(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
          }),
      ),
    );
    await connection?.close();
    await sim?.close();
    rmSync(outputDir, { recursive: true, force: true });
  });

  describe('metrics', () => {
    it('counts chunks, CC-FS answers by result code, callback latency, downloads and retries on the worker, with the SDK metrics', async () => {
      const res = await fetch(workerMetricsUrl);
      expect(res.status).toBe(200);
      const text = await res.text();
      const m = parseMetrics(text);
      expect(metric(m, 'ccfs_export_chunks_total{state="verified"}')).toBe(2);
      expect(
        metric(m, 'ccfs_export_ccfs_answers_total{operation="queryBillData",result="0"}'),
      ).toBeGreaterThanOrEqual(3); // 2 chunks + a re-request
      expect(
        metric(m, 'ccfs_export_ccfs_answers_total{operation="queryBillData",result="0300009"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(metric(m, 'ccfs_export_ccfs_answers_total{operation="downloadBillFile",result="0"}')).toBe(2);
      expect(metric(m, 'ccfs_export_activity_retries_total{activity="requestChunk"}')).toBeGreaterThanOrEqual(
        1,
      );
      // A callback whose file turned out missing was measured too.
      expect(metric(m, 'ccfs_export_callback_latency_seconds_count')).toBeGreaterThanOrEqual(2);
      expect(metric(m, 'ccfs_export_callback_latency_seconds_sum')).toBeGreaterThan(0);
      expect(metric(m, 'ccfs_export_download_bytes_total')).toBeGreaterThan(10_000);
      expect(metric(m, 'ccfs_export_download_duration_seconds_count')).toBe(2);
      expect(metric(m, 'ccfs_export_process_resident_memory_bytes')).toBeGreaterThan(0);
      // The SDK's own metrics, from core's Prometheus exporter, on the same endpoint.
      expect(text).toMatch(/^# TYPE temporal_\w+/m);
      const completed = [...m].filter(
        ([k]) => k.startsWith('temporal_workflow_completed') && k.includes(`task_queue="${taskQueue}"`),
      );
      expect(completed.reduce((n, [, v]) => n + v, 0)).toBeGreaterThanOrEqual(3); // the export and its two chunks
      expect([...m.keys()].some((k) => k.startsWith('temporal_activity_execution_latency'))).toBe(true);
    });

    it('counts the callbacks the API signalled', async () => {
      const res = await fetch(`${apiUrl}/metrics`);
      expect(res.status).toBe(200);
      const m = parseMetrics(await res.text());
      // The dropped callback never arrived: one per chunk request that was answered.
      expect(metric(m, 'ccfs_export_callbacks_total{outcome="signalled"}')).toBeGreaterThanOrEqual(2);
      expect(metric(m, 'ccfs_export_process_cpu_seconds_total')).toBeGreaterThan(0);
    });
  });

  describe('logs', () => {
    it('writes one JSON object per line, from the worker, the API and the SDK', () => {
      const notJson = logs.raw.filter((l) => !l.startsWith('{'));
      expect(notJson).toEqual([]);
      expect(logs.worker.some((l) => l.name === 'worker' && l.msg === 'worker started')).toBe(true);
      expect(logs.api.some((l) => l.name === 'api' && l.msg === 'api listening')).toBe(true);
      // The SDK's own worker logs go through the same logger.
      expect(logs.worker.some((l) => l.sdk === true && l.sdkComponent === 'worker')).toBe(true);
      for (const line of logs.raw) expect(line).not.toContain(SK);
    });

    it('names the export, the chunk and the workflow on every line about a chunk', () => {
      const chunkIds = [0, 1].map((i) => chunkWorkflowId(exportId, i));
      const about = (lines: LogLine[], msg: string) =>
        lines.filter((l) => l.msg === msg && l.exportId === exportId);
      const requested = about(logs.worker, 'chunk requested');
      const downloaded = about(logs.worker, 'chunk downloaded and verified');
      const signalled = about(logs.api, 'callback signalled');
      for (const lines of [requested, downloaded, signalled]) {
        expect(lines.length).toBeGreaterThanOrEqual(2);
        for (const l of lines) expect(chunkIds[l.chunk as number]).toBe(l.workflowId);
        expect(new Set(lines.map((l) => l.chunk))).toEqual(new Set([0, 1]));
      }
    });

    it('carries the workflow ID, and the export and chunk it names, on the logs of workflow code', () => {
      const timeouts = logs.worker.filter(
        (l) =>
          l.msg === 'no callback and no file in time; probing once more, then requesting the chunk again',
      );
      expect(timeouts.length).toBeGreaterThanOrEqual(1);
      for (const l of timeouts) {
        expect(l).toMatchObject({
          sdk: true,
          sdkComponent: 'workflow',
          workflowType: 'chunkWorkflow',
          exportId,
          level: 40,
        });
        expect(l.workflowId).toBe(chunkWorkflowId(exportId, l.chunk as number));
      }
    });
  });

  describe('API', () => {
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${apiUrl}${path}`);
      expect(res.status, path).toBe(200);
      return (await res.json()) as T;
    };
    const listIds = async (query: string) =>
      (await get<{ exports: ExportSummary[] }>(`/exports?${query}`)).exports.map((e) => e.exportId);

    it('lists exports from Temporal visibility by tenant, state and range, with Temporal UI links', async () => {
      // Visibility is eventually consistent: wait until the final state is indexed.
      const [summary] = await until('the completed export in visibility', async () => {
        const { exports } = await get<{ exports: ExportSummary[] }>(
          `/exports?tenant=${TENANT}&state=completed`,
        );
        return exports.length === 1 ? exports : undefined;
      });
      expect(summary).toEqual({
        exportId,
        workflowId: exportWorkflowId(exportId),
        status: 'COMPLETED',
        state: 'completed',
        tenant: TENANT,
        dataType: 'call_record',
        rangeBegin: '2024-02-29T16:00:00.000Z',
        rangeEnd: '2024-03-06T16:00:00.000Z',
        startTime: expect.any(String) as string,
        closeTime: expect.any(String) as string,
        links: {
          temporalUi: `${UI}/namespaces/default/workflows/${encodeURIComponent(`ccfs-export/${exportId}`)}`,
          temporalUiChunks: `${UI}/namespaces/default/workflows?query=${encodeURIComponent(`CcfsExportId = "${exportId}" AND CcfsKind = "chunk"`)}`,
        },
      });
      expect(await listIds(`tenant=${TENANT}&state=running`)).toEqual([]);
      expect(await listIds(`tenant=${TENANT}&dataType=call_record`)).toEqual([exportId]);
      // A range selects the exports that overlap it: a day inside does, days before and after do not.
      // (Exactly abutting ranges are left out: SQLite visibility compares instants as formatted strings.)
      expect(
        await listIds(`tenant=${TENANT}&from=2024-03-05T00:00:00%2B08:00&to=2024-03-06T00:00:00%2B08:00`),
      ).toEqual([exportId]);
      expect(
        await listIds(`tenant=${TENANT}&from=2024-02-20T00:00:00Z&to=2024-03-01T12:00:00%2B08:00`),
      ).toEqual([exportId]);
      expect(
        await listIds(`tenant=${TENANT}&from=2024-03-08T00:00:00%2B08:00&to=2024-03-09T00:00:00%2B08:00`),
      ).toEqual([]);
      expect(
        await listIds(`tenant=${TENANT}&from=2024-02-01T00:00:00Z&to=2024-02-29T00:00:00%2B08:00`),
      ).toEqual([]);
      expect(await listIds(`tenant=other-${TENANT}`)).toEqual([]);
    });

    it('shows the ledger of an export with a Temporal UI link for it and for each chunk', async () => {
      const status = await get<ExportStatusView>(`/exports/${exportId}`);
      expect(status).toMatchObject({
        exportId,
        state: 'completed',
        status: 'COMPLETED',
        counts: { verified: 2, pending: 0, failed: 0 },
        totals: { chunks: 2 },
        links: {
          temporalUi: `${UI}/namespaces/default/workflows/${encodeURIComponent(`ccfs-export/${exportId}`)}`,
        },
      });
      expect(status.totals.rows).toBeGreaterThan(0);
      expect(
        status.chunks.map((c) => [c.index, c.begin, c.end, c.state, c.workflowId, c.links?.temporalUi]),
      ).toEqual(
        [0, 1].map((i) => [
          i,
          i === 0 ? '2024-03-01 00:00:00' : '2024-03-04 00:00:00',
          i === 0 ? '2024-03-04 00:00:00' : '2024-03-07 00:00:00',
          'verified',
          chunkWorkflowId(exportId, i),
          `${UI}/namespaces/default/workflows/${encodeURIComponent(chunkWorkflowId(exportId, i))}`,
        ]),
      );
      // A chunk that ran has more than one request when its first callback was dropped.
      expect(status.chunks.some((c) => (c.requests ?? 0) >= 2)).toBe(true);
    });
  });

  describe('CLI', () => {
    it('lists exports as a table, with wall times in the tenant zone and a link to the same list in the UI', async () => {
      const { out } = await cli(env, ['list', '--tenant', TENANT]);
      const [header, rule, row, footer] = out.join('\n').split('\n');
      expect(header).toMatch(
        /^export\s+state\s+tenant\s+type\s+from \(Asia\/Shanghai\)\s+to\s+started\s+closed$/,
      );
      expect(rule).toMatch(/^-+( +-+){7}$/);
      expect(row).toMatch(
        new RegExp(
          `^${exportId}\\s+completed\\s+${TENANT}\\s+call_record\\s+2024-03-01 00:00\\s+2024-03-07 00:00\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d\\s+\\d{4}-`,
        ),
      );
      expect(footer).toBe(
        `1 export(s); Temporal UI: ${UI}/namespaces/default/workflows?query=${encodeURIComponent(`WorkflowType = "exportWorkflow" AND CcfsTenant = "${TENANT}"`)}`,
      );
    });

    it('prints the ledger of an export as a table with its links', async () => {
      const { out } = await cli(env, ['status', exportId]);
      const text = out.join('\n');
      expect(out[0]).toBe(
        `${exportId}  completed  call_record 2024-03-01 00:00:00 → 2024-03-07 00:00:00 (Asia/Shanghai), tenant ${TENANT}`,
      );
      expect(out[1]).toMatch(/^2\/2 chunks \(100%\), 0 running, [\d,]+ rows, [\d.]+ KB$/);
      expect(text).toMatch(/^chunk\s+begin\s+end\s+state\s+requests\s+rows\s+bytes\s+error$/m);
      expect(text).toMatch(
        /^\s+0\s+2024-03-01 00:00:00\s+2024-03-04 00:00:00\s+verified\s+\d+\s+[\d,]+\s+[\d.]+ KB$/m,
      );
      expect(text).toMatch(
        /^\s+1\s+2024-03-04 00:00:00\s+2024-03-07 00:00:00\s+verified\s+\d+\s+[\d,]+\s+[\d.]+ KB$/m,
      );
      expect(text).toContain(
        `Temporal UI: ${UI}/namespaces/default/workflows/${encodeURIComponent(`ccfs-export/${exportId}`)}`,
      );
      expect(text).toContain(`chunks:      ${UI}/namespaces/default/workflows?query=`);
    });

    it('follows an export live with a bar on a terminal, and in plain lines without escape codes on a pipe', async () => {
      // Slow callbacks and one chunk at a time: each chunk outlasts a poll of the CLI (1 s).
      sim.simulator.setOptions({ callbackDelayMs: 2000 });
      const id = `${exportId}-cli`;
      const onTerminal = spawnCli(
        env,
        [
          'export',
          '--from',
          '2024-04-01 00:00:00',
          '--to',
          '2024-04-10 00:00:00',
          '--type',
          'call_record',
          '--account-id',
          TENANT,
          '--export-id',
          id,
          '--in-flight',
          '1',
          '--wait',
        ],
        true,
      );
      await until(
        'the CLI export to start',
        async () =>
          (await client.workflow
            .getHandle(exportWorkflowId(id))
            .describe()
            .catch(() => undefined))
            ? true
            : undefined,
        30_000,
      );
      const onPipe = spawnCli(env, ['status', id, '--watch'], false);
      const [tty, pipe] = await Promise.all([onTerminal.done, onPipe.done]);
      sim.simulator.setOptions({ callbackDelayMs: 100 });

      expect(tty.code, tty.output).toBe(0);
      // On the terminal: the line is erased and redrawn, the bar grows, and the ETA is shown while it runs.
      const frames = tty.output
        .split('\r\u001b[2K')
        .slice(1)
        .map((f) => f.split(/\r?\n/)[0]!);
      expect(frames.length).toBeGreaterThanOrEqual(3);
      expect(frames[0]).toMatch(/^\[[#.]{24}\] 0\/3 chunks \(0%\), \d running, 0 rows, 0 B, ETA \?$/);
      expect(
        frames.some((f) =>
          /^\[#{8}\.{16}\] 1\/3 chunks \(33%\), \d running, [\d,]+ rows, [\d.]+ KB, ETA \d+s$/.test(f),
        ),
      ).toBe(true);
      expect(frames.at(-1)).toMatch(
        /^\[#{24}\] 3\/3 chunks \(100%\), 0 running, [\d,]+ rows, [\d.]+ KB, completed$/,
      );
      expect(tty.output).toContain(join(outputDir, id, 'manifest.json'));

      expect(pipe.code, pipe.output).toBe(0);
      expect(pipe.output.includes('\u001b') || pipe.output.includes('\r')).toBe(false);
      const progress = pipe.output
        .split('\n')
        .filter((l) => /^\d\/3 chunks \(\d+%\).*, (ETA \S+|completed)$/.test(l));
      expect(progress.at(-1)).toMatch(/^3\/3 chunks \(100%\), 0 running, [\d,]+ rows, [\d.]+ KB, completed$/);
      // One line per change of the chunks (at most two per chunk and the end), not one per poll.
      expect(new Set(progress).size).toBe(progress.length);
      expect(progress.length).toBeLessThanOrEqual(8);
      // After the progress, the ledger as `status` prints it.
      expect(pipe.output).toContain(
        `${id}  completed  call_record 2024-04-01 00:00:00 → 2024-04-10 00:00:00`,
      );
    });

    it('redraws the status bar with --watch when told its output is a terminal', async () => {
      const { redraws, err, out } = await cli(env, ['status', exportId, '--watch'], true);
      expect(redraws).toEqual([
        expect.stringMatching(
          /^\[#{24}\] 2\/2 chunks \(100%\), 0 running, [\d,]+ rows, [\d.]+ KB, completed$/,
        ),
      ]);
      expect(err).toEqual(['']); // ends the drawn line before the ledger is printed
      expect(out[0]).toContain(`${exportId}  completed`);
    });
  });

  describe('search attributes on a cluster', () => {
    /** IndexedValueType wire values of the two types the attributes use. */
    const TYPES: Record<string, number> = { Keyword: 2, Datetime: 6, KeywordList: 7 };

    const fresh = () => freshNamespace(connection, 'ccfs-sa');

    async function registered(namespace: string): Promise<Record<string, number>> {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      return Object.fromEntries(
        Object.entries(customAttributes ?? {})
          .filter(([k]) => k in SEARCH_ATTRIBUTES)
          .map(([k, v]) => [k, Number(v)]),
      );
    }

    const expected = () =>
      Object.fromEntries(Object.entries(SEARCH_ATTRIBUTES).map(([k, t]) => [k, TYPES[t]]));

    it('registers every attribute the workflows set with npm run register-search-attributes, and a second run changes nothing', async () => {
      const namespace = await fresh();
      expect(await registered(namespace)).toEqual({});
      const run = () =>
        spawnSync('npm', ['run', '--silent', 'register-search-attributes'], {
          cwd: ROOT,
          env: { ...env, TEMPORAL_NAMESPACE: namespace },
          encoding: 'utf8',
          timeout: 60_000,
        });
      const first = run();
      expect(first.status, first.stderr).toBe(0);
      expect(first.stdout.trim().split('\n')).toEqual(
        Object.entries(SEARCH_ATTRIBUTES).map(([k, t]) => `added ${k} (${t}) to namespace ${namespace}`),
      );
      expect(await registered(namespace)).toEqual(expected());

      const second = run();
      expect(second.status, second.stderr).toBe(0);
      expect(second.stdout.trim().split('\n')).toEqual(
        Object.entries(SEARCH_ATTRIBUTES).map(([k, t]) => `already registered: ${k} (${t})`),
      );
    });

    it('prints a Temporal CLI command that registers the same attributes', async () => {
      const namespace = await fresh();
      const args = cliCommand(namespace).split(' ').slice(1);
      const result = spawnSync(inject('temporalCli'), [...args, '--address', inject('temporalAddress')], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status, result.stderr).toBe(0);
      expect(await registered(namespace)).toEqual(expected());
    });
  });
});
