import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { OutputStore, type Manifest } from '../../activities/output-store';
import { freePort } from '../../dev/temporal-server';
import { ExportService } from '../../lib/export-service';
import { loadExportAndWait } from '../../lib/loader/load-service';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import { readManifest, testRequest } from '../support/exports';
import { type PostgresServer, startPostgres } from '../support/postgres';
import { freePortPair, startService, writeWorkflowBundle, type ServiceProcess } from '../support/processes';
import { until } from '../support/until';
import { runCli } from '../e2e/support/processes';
import { loadExportWorkflowId, type LoadExportWorkflowResult } from '../../workflows/definitions';

/**
 * Issue 17's acceptance: worker and API as processes (LOAD_DATABASE_URL in the worker's environment
 * only), the simulator over HTTP, a private cluster of Debian's PostgreSQL server. Every row the
 * simulator says exists ends up in the tables exactly once: across chunk boundaries (CC-FS's end
 * time is inclusive, so a call on the boundary second is in two files), when the export is loaded
 * again, when a day is exported again, and when the worker is SIGKILLed in the middle of a COPY.
 */

const AK = 'loader-ak';
const SK = `sk-${randomUUID()}`;
const dir = mkdtempSync(join(tmpdir(), 'ccfs-loader-'));
const outputDir = join(dir, 'exports');

let postgres: PostgresServer;
let sim: RunningSimulator;
let api: ServiceProcess;
let connection: Connection;
let exports: ExportService;
let bundle: string;
let common: Record<string, string>;

async function startWorker(
  databaseUrl: string | undefined,
  name: string,
  taskQueue = common.TEMPORAL_TASK_QUEUE!,
): Promise<ServiceProcess> {
  return startService(
    'worker',
    {
      ...common,
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKFLOW_BUNDLE_PATH: bundle,
      WORKER_METRICS_PORT: String(await freePortPair()),
      CCFS_MAX_CALLS_PER_SECOND: '500',
      WORKER_SHUTDOWN_GRACE_SECONDS: '1',
      ...(databaseUrl && { LOAD_DATABASE_URL: databaseUrl }),
    },
    name,
  );
}

function keySet(rows: { a: string; b: string }[]): Set<string> {
  return new Set(rows.map((r) => `${r.a}#${r.b}`));
}

async function tableKeys(pool: pg.Pool): Promise<{ call: string[]; record: string[] }> {
  const call = await pool.query<{ k: string }>("SELECT call_id || '#' || call_id_num AS k FROM ccfs_cdr");
  const record = await pool.query<{ k: string }>(
    "SELECT call_id || '#' || file_name AS k FROM ccfs_recording_index",
  );
  return { call: call.rows.map((r) => r.k), record: record.rows.map((r) => r.k) };
}

function expectedKeys(from: string, to: string): { call: Set<string>; record: Set<string> } {
  const keys = sim.simulator.rowKeys({ beginTime: from, endTime: to, ak: AK });
  return {
    call: keySet(keys.call.map((r) => ({ a: r.call_id, b: r.call_id_num }))),
    record: keySet(keys.record.map((r) => ({ a: r.call_id, b: r.file_name }))),
  };
}

const wall = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

beforeAll(async () => {
  postgres = await startPostgres();
  sim = await startSimulator({
    port: 0,
    accounts: [{ ak: AK, sk: SK }],
    seed: 17,
    callsPerHour: 20,
    callbackDelayMs: 50,
    callbackRetryIntervalMs: 300,
  });
  bundle = await writeWorkflowBundle(dir, { shortActivityTimeouts: true });
  const apiPort = await freePort();
  common = {
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_TASK_QUEUE: `loader-${randomUUID()}`,
    CCFS_BASE_URL: sim.url,
    CCFS_AK: AK,
    CCFS_SK: SK,
    CALLBACK_SECRET: `callback-${randomUUID()}`,
    CALLBACK_BASE_URL: `http://127.0.0.1:${apiPort}`,
    OUTPUT_DIR: outputDir,
  };
  api = await startService('api', { ...common, API_PORT: String(apiPort), API_HOST: '127.0.0.1' });
  connection = await Connection.connect({ address: inject('temporalAddress') });
  exports = new ExportService(new Client({ connection }), {
    taskQueue: common.TEMPORAL_TASK_QUEUE!,
    namespace: 'default',
    uiUrl: 'http://localhost:8233',
  });
});

afterAll(async () => {
  await api?.stop('SIGTERM', 10_000);
  await connection?.close();
  await sim?.close();
  postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a 30-day export loaded as it is exported', () => {
  let worker: ServiceProcess;
  let pool: pg.Pool;
  let url: string;

  beforeAll(async () => {
    url = postgres.createDatabase('backfill');
    pool = new pg.Pool({ connectionString: url, max: 2 });
    worker = await startWorker(url, 'worker');
  });
  afterAll(async () => {
    await worker?.stop('SIGTERM', 10_000);
    await pool?.end();
  });

  it('holds every row the simulator has exactly once, through boundaries, a second load and a re-export of a day', async () => {
    // A chunk boundary exactly on a second where a call begins: the hour found here becomes the
    // begin of the fifth 3-day chunk.
    const base = Date.parse('2024-04-10T00:00:00Z');
    let boundary: number | undefined;
    for (let h = 0; h < 24 * 60 && boundary === undefined; h++) {
      const at = wall(base + h * 3_600_000);
      if (sim.simulator.rowKeys({ beginTime: at, endTime: at, ak: AK }).call.length > 0)
        boundary = base + h * 3_600_000;
    }
    expect(boundary).toBeDefined();
    const from = wall(boundary! - 12 * 86_400_000);
    const to = wall(boundary! + 18 * 86_400_000);
    const onBoundary = sim.simulator.rowKeys({
      beginTime: wall(boundary!),
      endTime: wall(boundary!),
      ak: AK,
    });

    const request = testRequest({ from, to, options: { chunkHours: 72, maxChunksInFlight: 4 } });
    await exports.start(request);
    const result = await exports.result(request.exportId);
    expect(result.state).toBe('completed');
    const manifest: Manifest = await readManifest(result.manifestPath);
    expect(manifest.chunks).toHaveLength(10);

    const expected = expectedKeys(from, to);
    expect(expected.call.size).toBeGreaterThan(10_000);
    const got = await tableKeys(pool);
    expect(got.call).toHaveLength(expected.call.size);
    expect(new Set(got.call)).toEqual(expected.call);
    expect(got.record).toHaveLength(expected.record.size);
    expect(new Set(got.record)).toEqual(expected.record);

    // Each chunk reconciles, in the manifest: rows in its files = inserted + already present.
    let alreadyPresent = 0;
    for (const chunk of manifest.chunks) {
      expect(chunk.state).toBe('verified');
      const load = 'load' in chunk ? chunk.load : undefined;
      expect(load).toMatchObject({ ok: true, rowsInFiles: 'rows' in chunk ? chunk.rows : -1 });
      expect(load!.rowsInserted + load!.rowsAlreadyPresent).toBe(load!.rowsInFiles);
      expect(load!.recordCdrShare).toBeGreaterThan(0.9);
      alreadyPresent += load!.rowsAlreadyPresent;
    }
    // Per day (of each row's call_begin in the tenant's zone): what the chunks inserted is what the tables hold.
    const insertedPerDay = new Map<string, number>();
    for (const chunk of manifest.chunks)
      for (const [day, c] of Object.entries(('load' in chunk && chunk.load?.days) || {}))
        insertedPerDay.set(day, (insertedPerDay.get(day) ?? 0) + c.rowsInserted);
    const perDay = await pool.query<{ day: string; n: string }>(
      `SELECT coalesce(to_char(call_begin_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'), 'unknown') AS day, count(*) AS n
       FROM (SELECT call_begin_at FROM ccfs_cdr UNION ALL SELECT call_begin_at FROM ccfs_recording_index) t GROUP BY 1`,
    );
    expect(insertedPerDay.size).toBeGreaterThanOrEqual(30);
    expect(new Map(perDay.rows.map((r) => [r.day, Number(r.n)]))).toEqual(insertedPerDay);

    // The boundary call's rows were in two files and were inserted once.
    expect(onBoundary.call.length + onBoundary.record.length).toBeGreaterThan(0);
    expect(alreadyPresent).toBeGreaterThanOrEqual(onBoundary.call.length + onBoundary.record.length);

    // Loading the same export again (POST /exports/:id/load, run by the workers) inserts nothing.
    const started = await fetch(`${common.CALLBACK_BASE_URL}/exports/${request.exportId}/load`, {
      method: 'POST',
    });
    expect(started.status).toBe(202);
    expect(await started.json()).toEqual({
      exportId: request.exportId,
      workflowId: loadExportWorkflowId(request.exportId),
    });
    const again = (await new Client({ connection }).workflow
      .getHandle(loadExportWorkflowId(request.exportId))
      .result()) as LoadExportWorkflowResult;
    expect(again.ok).toBe(true);
    expect(again.totals).toMatchObject({ loaded: 10, rowsInserted: 0 });
    expect(again.totals.rowsAlreadyPresent).toBe(again.totals.rowsInFiles);
    expect(
      (await fetch(`${common.CALLBACK_BASE_URL}/exports/no-such-export/load`, { method: 'POST' })).status,
    ).toBe(404);

    // A day exported again (new files, as `schedule backfill --force` makes) inserts nothing either.
    const day = testRequest({
      from: wall(boundary!),
      to: wall(boundary! + 86_400_000),
      options: { chunkHours: 24 },
    });
    await exports.start(day);
    const dayResult = await exports.result(day.exportId);
    expect(dayResult.state).toBe('completed');
    const dayChunk = (await readManifest(dayResult.manifestPath)).chunks[0]!;
    expect('load' in dayChunk && dayChunk.load).toMatchObject({ ok: true, rowsInserted: 0 });
    expect((dayChunk as { load: { rowsInFiles: number } }).load.rowsInFiles).toBeGreaterThan(0);
    const after = await tableKeys(pool);
    expect(after.call).toHaveLength(expected.call.size);
    expect(after.record).toHaveLength(expected.record.size);

    // The URL (and so any password in it) is in no log line.
    expect(worker.lines.join('\n')).not.toContain(url);
  });

  it('loads an existing export into another database (ccfs-export load), every row once', async () => {
    const listed = await pool.query<{ export_id: string }>(
      'SELECT DISTINCT export_id FROM ccfs_load ORDER BY 1',
    );
    const exportId = listed.rows[0]!.export_id;
    const otherUrl = postgres.createDatabase('other');
    const other = new pg.Pool({ connectionString: otherUrl, max: 1 });
    const cliEnv = {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      OUTPUT_DIR: outputDir,
      LOAD_DATABASE_URL: otherUrl,
    };
    try {
      const cli = await runCli(['load', exportId, '--json'], cliEnv, 120_000);
      expect(cli.code, cli.stderr).toBe(0);
      const first = JSON.parse(cli.stdout) as LoadExportWorkflowResult;
      expect(first.ok).toBe(true);
      expect(first.totals.rowsInserted).toBe(first.totals.rowsInFiles - first.totals.rowsAlreadyPresent);
      const source = await tableKeys(pool);
      const copy = await tableKeys(other);
      // The other database holds this export's rows: the original database also has the re-exported
      // day's, which are a subset of them.
      expect(new Set(copy.call)).toEqual(new Set(source.call));
      expect(copy.call).toHaveLength(source.call.length);
      const second = await runCli(['load', exportId], cliEnv, 120_000);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(
        /verified chunks loaded, \d+ rows in files = 0 inserted \+ \d+ already present/,
      );
    } finally {
      await other.end();
    }
  });
});

describe('a worker SIGKILLed while it loads', () => {
  it('leaves the tables with every row exactly once after a restart', async () => {
    const url = postgres.createDatabase('killed');
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    let worker = await startWorker(url, 'worker-killed');
    try {
      // Bigger files, so that a COPY is in progress long enough to be caught.
      sim.simulator.setOptions({ callsPerHour: 1500 });
      const from = '2024-08-01 00:00:00';
      const to = '2024-08-02 00:00:00';
      const request = testRequest({ from, to, options: { chunkHours: 12, maxChunksInFlight: 2 } });
      await exports.start(request);
      await until(
        'a COPY into a staging table',
        async () =>
          (
            await pool.query(
              "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY ccfs_stage_%' AND state = 'active'",
            )
          ).rowCount! > 0,
        90_000,
        20,
      );
      await worker.stop('SIGKILL');
      worker = await startWorker(url, 'worker-restarted');
      const result = await exports.result(request.exportId);
      expect(result.state).toBe('completed');
      const manifest = await readManifest(result.manifestPath);
      for (const chunk of manifest.chunks) expect('load' in chunk && chunk.load?.ok).toBe(true);
      const expected = expectedKeys(from, to);
      const got = await tableKeys(pool);
      expect(got.call).toHaveLength(expected.call.size);
      expect(new Set(got.call)).toEqual(expected.call);
      expect(got.record).toHaveLength(expected.record.size);
      expect(new Set(got.record)).toEqual(expected.record);
    } finally {
      sim.simulator.setOptions({ callsPerHour: 20 });
      await worker.stop('SIGKILL');
      await pool.end();
    }
  });
});

describe('an export made before the loader was configured', () => {
  it('is loaded by ccfs-export load through the workers once they have a loader, every row once', async () => {
    const taskQueue = `loader-late-${randomUUID()}`;
    const url = postgres.createDatabase('late');
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const client = new Client({ connection });
    const late = new ExportService(client, {
      taskQueue,
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    });
    let worker = await startWorker(undefined, 'worker-without-loader', taskQueue);
    try {
      const from = '2024-09-01 00:00:00';
      const to = '2024-09-05 00:00:00';
      const request = testRequest({ from, to, options: { chunkHours: 48 } });
      await late.start(request);
      const result = await late.result(request.exportId);
      expect(result.state).toBe('completed');
      const before = await readManifest(result.manifestPath);
      for (const chunk of before.chunks) expect('load' in chunk && chunk.load).toBeFalsy();
      // Without a loader the load refuses, saying what to configure.
      await expect(loadExportAndWait(client, taskQueue, request.exportId)).rejects.toMatchObject({
        cause: { type: 'LoaderNotConfigured' },
      });

      await worker.stop('SIGTERM', 10_000);
      worker = await startWorker(url, 'worker-with-loader', taskQueue);
      const loaded = await loadExportAndWait(client, taskQueue, request.exportId);
      expect(loaded.ok).toBe(true);
      expect(loaded.totals).toMatchObject({ chunks: 2, loaded: 2 });
      expect(loaded.totals.rowsInserted + loaded.totals.rowsAlreadyPresent).toBe(loaded.totals.rowsInFiles);
      const expected = expectedKeys(from, to);
      const got = await tableKeys(pool);
      expect(got.call).toHaveLength(expected.call.size);
      expect(new Set(got.call)).toEqual(expected.call);
      expect(new Set(got.record)).toEqual(expected.record);
      // Each chunk's record now says it is loaded; a second load inserts nothing.
      const records = await new OutputStore(outputDir).readChunkResults(request.exportId);
      for (const r of records.values()) expect(r.load?.ok).toBe(true);
      const again = await runCli(['load', request.exportId, '--json'], {
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_TASK_QUEUE: taskQueue,
      });
      expect(again.code, again.stderr).toBe(0);
      expect((JSON.parse(again.stdout) as LoadExportWorkflowResult).totals.rowsInserted).toBe(0);
    } finally {
      await worker.stop('SIGKILL');
      await pool.end();
    }
  });
});
