import { sha256File } from '../../support/exports';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { ChunkResult as ChunkRecord } from '../../../workflows/definitions';
import type { Manifest } from '../../../activities/output-store';
import { buildExportRequest } from '../../../lib/export-input';
import { ExportService } from '../../../lib/export-service';
import { freePort, startDevServer, type DevServer } from '../../../dev/temporal-server';
import type { SimulatorState } from '../../../simulator/state';
import type { Faults } from '../../../simulator/options';
import type { RowKeys } from '../../../simulator/app';
import { exportedRowKeys } from '../../support/exports';
import { freePortPair, sleep, spawnNode, until, type NodeProcess } from './processes';

/**
 * The chaos run of issue 5, with every process as a user runs it: a Temporal dev server on a SQLite
 * file, the CC-FS simulator, the API and the worker as `node --import tsx <main>.ts` children. One
 * export runs while the simulator drops, duplicates, throttles, fails and cuts off CC-FS answers, and
 * meanwhile the worker is SIGKILLed twice (each time while a download is in flight), the API is down
 * for a while and Temporal is restarted on the same SQLite file. Then everything the export claims is
 * checked against what the simulator holds and served.
 */

export interface ChaosOptions {
  temporalCli: string;
  /** Length of the exported range; 3-day chunks. */
  days: number;
  /** Seed of the simulator's data and fault decisions. */
  seed: number;
  /** How long the API stays down. */
  apiDownMs?: number;
  /** Chunks in flight at once. */
  maxChunksInFlight?: number;
  log?: (line: string) => void;
  /** Keep the working directory (SQLite file, output, logs) even when the run passed. */
  keep?: boolean;
}

export const CHAOS_FAULTS: Partial<Faults> = {
  dropCallback: 0.2,
  duplicateCallback: 0.2,
  queryFlowControl: 0.1,
  downloadFlowControl: 0.1,
  downloadHttp500: 0.1,
  truncateDownload: 0.1,
  // ~1 MB per chunk at 2 MB/s: downloads take a while, so a killed worker loses one in flight.
  slowDownloadBytesPerSecond: 2_000_000,
};

export interface ChaosReport {
  passed: boolean;
  /** Everything that did not hold; empty when passed. */
  problems: string[];
  exportId: string;
  days: number;
  seed: number;
  chunks: number;
  durationMs: number;
  /** What was done to the processes, with the time since the export started. */
  events: Array<{ atMs: number; what: string }>;
  rows: { call: number; record: number; missingCall: number; missingRecord: number };
  bytes: number;
  simulator: {
    queries: number;
    queryOutcomes: Record<string, number>;
    downloads: number;
    downloadOutcomes: Record<string, number>;
    incompleteDownloads: number;
    callbacks: number;
    callbackAttempts: number;
    faultsFired: Record<string, number>;
  };
  /** Chunk requests beyond the first per chunk (callbacks that did not come in time). */
  reRequests: number;
  workDir: string;
}

const TIME_ZONE = 'Asia/Shanghai';
const AK = 'chaos-ak';

const count = (values: string[]) =>
  values.reduce<Record<string, number>>((acc, v) => ((acc[v] = (acc[v] ?? 0) + 1), acc), {});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(`${path}/`, ...walk(path));
    else out.push(path);
  }
  return out;
}

/** 2024-01-01 + days, as the export's end. */
function endOf(days: number): string {
  const end = new Date(Date.UTC(2024, 0, 1) + days * 86_400_000);
  return `${end.toISOString().slice(0, 10)} 00:00:00`;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const workDir = mkdtempSync(join(tmpdir(), 'ccfs-chaos-'));
  const logFile = join(workDir, 'processes.log');
  const outputDir = join(workDir, 'exports');
  const sk = `chaos-sk-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;
  const exportId = `chaos-${options.days}d-${options.seed}-${Date.now().toString(36)}`;
  const problems: string[] = [];
  const events: ChaosReport['events'] = [];
  let t0 = Date.now();
  const event = (what: string) => {
    events.push({ atMs: Date.now() - t0, what });
    log(`  +${((Date.now() - t0) / 1000).toFixed(1)} s  ${what}`);
  };

  const ports = {
    temporal: await freePort(),
    api: await freePort(),
    sim: await freePort(),
    metrics: await freePortPair(),
  };
  const devServer = () =>
    startDevServer({
      cli: options.temporalCli,
      port: ports.temporal,
      dbFile: join(workDir, 'temporal.db'),
      logFile: join(workDir, 'temporal.log'),
      readyTimeoutMs: 90_000,
    });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: 'chaos',
    CCFS_BASE_URL: `http://127.0.0.1:${ports.sim}`,
    CCFS_AK: AK,
    CCFS_SK: sk,
    CCFS_REQUEST_TIMEOUT_MS: '10000',
    CCFS_MAX_CALLS_PER_SECOND: '50',
    CCFS_MAX_CONCURRENT_CALLS: '8',
    CALLBACK_BASE_URL: `http://127.0.0.1:${ports.api}`,
    API_PORT: String(ports.api),
    API_HOST: '127.0.0.1',
    API_TOKENS: '',
    API_AUTH: 'none',
    WORKER_METRICS_PORT: String(ports.metrics),
    OUTPUT_DIR: outputDir,
    TENANT_TIME_ZONE: TIME_ZONE,
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    NODE_ENV: 'development',
    // The simulator: CC-FS retries a callback every 0.5 s here (10 min in the field), long enough to outlast the API's outage.
    SIMULATOR_TIME_ZONE: TIME_ZONE,
    SIMULATOR_SEED: String(options.seed),
    SIMULATOR_CALLBACK_DELAY_MS: '100',
    SIMULATOR_CALLBACK_RETRY_INTERVAL_MS: '500',
    SIMULATOR_PAD_CALL_FILE_TO_BYTES: '1000000',
    SIMULATOR_FAULTS: JSON.stringify(CHAOS_FAULTS),
  };

  let temporal: DevServer | undefined;
  const processes: Record<'simulator' | 'api' | 'worker', NodeProcess | undefined> = {
    simulator: undefined,
    api: undefined,
    worker: undefined,
  };
  let connection: Connection | undefined;
  /** Set while we stop a process on purpose; any other exit is a problem. */
  const stopping = new Set<string>();
  let generation = 0;

  const start = async (name: 'simulator' | 'api' | 'worker'): Promise<NodeProcess> => {
    const script = { simulator: 'simulator/main.ts', api: 'api/main.ts', worker: 'worker/main.ts' }[name];
    const args = name === 'simulator' ? ['--port', String(ports.sim), '--callback-max-attempts', '1000'] : [];
    const proc = spawnNode(`${name}#${++generation}`, script, env, { logFile, args });
    processes[name] = proc;
    void proc.exited.then(({ code, signal }) => {
      if (!stopping.has(proc.name))
        problems.push(`${proc.name} exited by itself (${signal ?? code}); see ${logFile}`);
    });
    const ready = {
      simulator: /CC-FS simulator listening/,
      api: /"msg":"api listening"/,
      worker: /"msg":"worker started"/,
    }[name];
    await proc.waitForLine(ready, 90_000);
    return proc;
  };
  const kill = async (name: 'api' | 'worker', signal: NodeJS.Signals = 'SIGKILL') => {
    const proc = processes[name];
    if (!proc) return;
    stopping.add(proc.name);
    await proc.kill(signal);
  };
  const sim = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${env.CCFS_BASE_URL}${path}`);
    if (!res.ok) throw new Error(`simulator ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  };

  const exportDir = join(outputDir, exportId);
  const verifiedOnDisk = () => {
    const dir = join(exportDir, 'chunks');
    if (!existsSync(dir)) return 0;
    let n = 0;
    for (const name of readdirSync(dir).filter((f) => /^\d+\.json$/.test(f))) {
      try {
        if ((JSON.parse(readFileSync(join(dir, name), 'utf8')) as ChunkRecord).state === 'verified') n++;
      } catch {
        // being written
      }
    }
    return n;
  };
  const downloadInFlight = () => {
    const dir = join(exportDir, '.partial');
    return existsSync(dir) && readdirSync(dir).length > 0;
  };

  let report: ChaosReport | undefined;
  try {
    log(`chaos: ${options.days} days, seed ${options.seed}, work dir ${workDir}`);
    temporal = await devServer();
    await start('simulator');
    await start('api');
    await start('worker');
    connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });
    const service = new ExportService(client, {
      taskQueue: 'chaos',
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    });

    const request = buildExportRequest(
      {
        exportId,
        from: '2024-01-01 00:00:00',
        to: endOf(options.days),
        dataType: 'call_record',
        timeZone: TIME_ZONE,
        options: {
          maxChunksInFlight: options.maxChunksInFlight ?? 4,
          callbackTimeoutSeconds: 5,
          maxRequestsPerChunk: 10,
          retryInitialIntervalSeconds: 0.2,
          retryMaximumIntervalSeconds: 2,
          retryMaximumAttempts: 20,
        },
      },
      { timeZone: TIME_ZONE, origin: 'chaos' },
    );
    // A crashed worker's call moves to another worker after 3 s without a heartbeat.
    request.options.heartbeatTimeoutMs = 3000;
    const chunks = Math.ceil(options.days / 3);
    t0 = Date.now();
    await service.start(request);
    event(`export ${exportId} started: ${chunks} chunks`);

    // The same export ID again, through the API: one export.
    const again = await fetch(`${env.CALLBACK_BASE_URL}/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        exportId,
        from: request.begin,
        to: request.end,
        dataType: 'call_record',
        timeZone: TIME_ZONE,
      }),
    });
    const againBody = (await again.json()) as { created?: boolean };
    if (again.status !== 200 || againBody.created !== false)
      problems.push(
        `a second POST /exports with the same ID answered ${again.status} ${JSON.stringify(againBody)}`,
      );

    const finished = async () => {
      try {
        const d = await service.describe(exportId);
        return d !== undefined && d.status.name !== 'RUNNING';
      } catch {
        return false; // Temporal restarting
      }
    };
    /** Waits until `n` chunks are verified; false when the export finished first. */
    const atProgress = async (n: number): Promise<boolean> => {
      await until(
        `${n} verified chunks`,
        async () => verifiedOnDisk() >= n || (await finished()) || undefined,
        20 * 60_000,
        200,
      );
      return !(await finished());
    };
    const restartWorkerMidDownload = async (label: string) => {
      await until(`a download in flight`, () => downloadInFlight() || undefined, 60_000, 20).catch(
        () => undefined,
      );
      const inFlight = downloadInFlight();
      await kill('worker');
      event(`${label}: worker SIGKILLed${inFlight ? ' with a download in flight' : ''}`);
      await sleep(1000);
      await start('worker');
      event(`${label}: worker restarted`);
    };
    const checkpoints = [0.1, 0.3, 0.5, 0.7].map((f) => Math.max(1, Math.floor(chunks * f)));
    const steps: Array<[string, () => Promise<void>]> = [
      ['first worker kill', () => restartWorkerMidDownload('kill 1')],
      [
        'API outage',
        async () => {
          await kill('api');
          event('API SIGKILLed');
          await sleep(options.apiDownMs ?? 6000);
          await start('api');
          event('API restarted');
        },
      ],
      [
        'Temporal restart',
        async () => {
          await temporal?.stop();
          event('Temporal dev server stopped');
          await sleep(2000);
          temporal = await devServer();
          event('Temporal dev server restarted on the same SQLite file');
        },
      ],
      ['second worker kill', () => restartWorkerMidDownload('kill 2')],
    ];
    for (const [i, [name, step]] of steps.entries()) {
      if (!(await atProgress(checkpoints[i]!))) {
        problems.push(
          `the export finished before the ${name}: the run proves less than it should (slow the export down)`,
        );
        break;
      }
      await step();
    }

    await until('the export to finish', () => finished(), 20 * 60_000, 500);
    const durationMs = Date.now() - t0;
    event('export finished');
    const result = await service.result(exportId);

    // What the export claims, checked against the simulator and the disk.
    if (result.state !== 'completed')
      problems.push(`export ended ${result.state}: ${JSON.stringify(result.failedChunks)}`);
    const manifest = JSON.parse(readFileSync(join(exportDir, 'manifest.json'), 'utf8')) as Manifest;
    if (manifest.state !== 'completed') problems.push(`manifest state ${manifest.state}`);
    if (manifest.chunks.length !== chunks)
      problems.push(`manifest has ${manifest.chunks.length} chunks, expected ${chunks}`);
    const notVerified = manifest.chunks.filter((c) => c.state !== 'verified');
    if (notVerified.length > 0)
      problems.push(`chunks not verified: ${notVerified.map((c) => `${c.index}:${c.state}`).join(', ')}`);

    const state = await sim<SimulatorState>('/__sim/state');
    const verified = manifest.chunks.filter((c): c is ChunkRecord => c.state === 'verified');
    for (const chunk of verified) {
      const path = join(exportDir, chunk.file ?? '(no file)');
      if (!existsSync(path)) {
        problems.push(`chunk ${chunk.index}: ${chunk.file} missing`);
        continue;
      }
      const onDisk = await sha256File(path);
      if (onDisk !== chunk.sha256)
        problems.push(`chunk ${chunk.index}: sha256 on disk ${onDisk} ≠ manifest ${chunk.sha256}`);
      const served = state.downloads.filter((d) => d.billFileName === chunk.billFileName && d.complete);
      if (served.length === 0)
        problems.push(`chunk ${chunk.index}: the simulator never served ${chunk.billFileName} completely`);
      if (served.some((d) => d.sha256 !== chunk.sha256))
        problems.push(
          `chunk ${chunk.index}: sha256 ${chunk.sha256} ≠ served ${served.map((d) => d.sha256).join(', ')}`,
        );
    }

    const params = new URLSearchParams({
      beginTime: request.begin,
      endTime: request.end,
      dataType: 'call_record',
      ak: AK,
    });
    const expected = await sim<RowKeys>(`/__sim/rows?${params.toString()}`);
    const got = await exportedRowKeys(exportDir, manifest);
    const missingCall = expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`)).length;
    const missingRecord = expected.record.filter(
      (r) => !got.record.has(`${r.call_id}#${r.file_name}`),
    ).length;
    if (expected.call.length === 0)
      problems.push('the simulator holds no rows for the range: nothing was proven');
    if (missingCall + missingRecord > 0)
      problems.push(`rows missing: ${missingCall} CDR and ${missingRecord} recording-index rows`);

    // No temporary files, and exactly one ZIP per chunk.
    const files = walk(exportDir).map((p) => relative(exportDir, p));
    const temp = files.filter((f) => f.startsWith('.partial') || f.endsWith('.tmp') || f.endsWith('.part'));
    if (temp.length > 0) problems.push(`temporary files left: ${temp.join(', ')}`);
    const zips = files.filter((f) => f.endsWith('.zip')).sort();
    const expectedZips = verified.map((c) => c.file!).sort();
    if (JSON.stringify(zips) !== JSON.stringify(expectedZips))
      problems.push(
        `ZIPs on disk ${zips.length} ≠ chunks ${expectedZips.length}: ${zips.filter((z) => !expectedZips.includes(z)).join(', ')}`,
      );
    const other = files.filter(
      (f) =>
        !f.endsWith('.zip') &&
        !['manifest.json', 'request.json', 'chunks'].includes(f) &&
        !/^chunks\/\d{4,}\.json$/.test(f),
    );
    if (other.length > 0) problems.push(`unexpected files: ${other.join(', ')}`);

    // The faults really happened, or the run proved less than it claims.
    const fired = count(state.faults.map((f) => f.fault));
    for (const fault of Object.keys(CHAOS_FAULTS).filter((f) => f !== 'slowDownloadBytesPerSecond')) {
      if (!fired[fault]) problems.push(`fault ${fault} never fired (choose another seed or a longer range)`);
    }

    const requested = verified.reduce((n, c) => n + c.requests, 0);
    report = {
      passed: problems.length === 0,
      problems,
      exportId,
      days: options.days,
      seed: options.seed,
      chunks,
      durationMs,
      events,
      rows: { call: expected.call.length, record: expected.record.length, missingCall, missingRecord },
      bytes: verified.reduce((n, c) => n + (c.bytes ?? 0), 0),
      simulator: {
        queries: state.queries.length,
        queryOutcomes: count(state.queries.map((q) => q.outcome)),
        downloads: state.downloads.length,
        downloadOutcomes: count(state.downloads.map((d) => d.outcome)),
        incompleteDownloads: state.downloads.filter((d) => d.outcome === '0' && !d.complete).length,
        callbacks: state.callbacks.length,
        callbackAttempts: state.callbacks.reduce((n, c) => n + c.attempts, 0),
        faultsFired: fired,
      },
      reRequests: requested - verified.length,
      workDir,
    };
    return report;
  } finally {
    for (const name of ['worker', 'api', 'simulator'] as const) {
      const proc = processes[name];
      if (proc) {
        stopping.add(proc.name);
        await proc.kill('SIGTERM', 10_000);
      }
    }
    await connection?.close().catch(() => undefined);
    await temporal?.stop();
    if (report?.passed && !options.keep) rmSync(workDir, { recursive: true, force: true });
    else log(`chaos: kept ${workDir} (logs: ${logFile})`);
  }
}

/** A few lines for people: what was done, what was checked. */
export function describeChaos(r: ChaosReport): string {
  const s = r.simulator;
  return [
    `${r.passed ? 'PASSED' : 'FAILED'}  ${r.days} days, ${r.chunks} chunks, seed ${r.seed}, ${(r.durationMs / 1000).toFixed(1)} s, ${r.rows.call} CDR + ${r.rows.record} recording rows, ${(r.bytes / 1e6).toFixed(1)} MB`,
    `  events: ${r.events.map((e) => `+${(e.atMs / 1000).toFixed(0)}s ${e.what}`).join('; ')}`,
    `  CC-FS: ${s.queries} queries ${JSON.stringify(s.queryOutcomes)}, ${s.downloads} downloads ${JSON.stringify(s.downloadOutcomes)} (${s.incompleteDownloads} cut off or abandoned), ${s.callbacks} callbacks in ${s.callbackAttempts} attempts, ${r.reRequests} re-requests`,
    `  faults fired: ${JSON.stringify(s.faultsFired)}`,
    `  rows missing: ${r.rows.missingCall + r.rows.missingRecord}`,
    ...r.problems.map((p) => `  PROBLEM: ${p}`),
  ].join('\n');
}
