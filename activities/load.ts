import { join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { Counter } from 'prom-client';
import { ZipVerificationError } from '../ccfs/zip';
import type { Loader } from '../lib/loader/loader';
import { LoadMismatchError, type LoadZipResult } from '../lib/loader/load-zip';
import { LoaderConfigError } from '../lib/loader/schema';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import type { ChunkLoad, ChunkResult } from '../workflows/definitions';
import type { OutputStore } from './output-store';

/** What loadChunk needs: the worker's loader (undefined when LOAD_DATABASE_URL is not set). */
export interface LoadActivityDeps {
  loader?: Loader;
  output: OutputStore;
  logger: Logger;
  metrics?: Metrics;
}

export interface LoadChunkInput {
  exportId: string;
  chunk: number;
  /** File name inside the export's directory (ChunkResult.file). */
  file: string;
  /** The sha256 verification computed (ChunkResult.sha256): with the entry, the identity of a load. */
  sha256: string;
  /** Rows verifyZip counted per entry (ChunkResult.entries); the load must read as many. */
  entries?: { name: string; rows: number }[];
  /** Defaults: the export's request.json (tenant and zone stay out of histories when not given). */
  tenant?: string;
  timeZone?: string;
}

/** `configured: false` when this worker has no loader; otherwise the chunk's load. */
export type LoadChunkOutput = { configured: false } | ({ configured: true } & ChunkLoad);

const loadMetrics = new WeakMap<Metrics, { rows: Counter; chunks: Counter }>();

function metricsOf(metrics: Metrics | undefined): { rows: Counter; chunks: Counter } | undefined {
  if (!metrics) return undefined;
  let m = loadMetrics.get(metrics);
  if (!m) {
    m = {
      rows: new Counter({
        name: 'ccfs_export_load_rows_total',
        help: 'Rows of loaded files, by outcome (inserted, already_present)',
        labelNames: ['kind', 'outcome'],
        registers: [metrics.workerRegistry],
      }),
      chunks: new Counter({
        name: 'ccfs_export_load_chunks_total',
        help: 'Chunk loads by reconciliation result (ok, mismatch)',
        labelNames: ['result'],
        registers: [metrics.workerRegistry],
      }),
    };
    loadMetrics.set(metrics, m);
  }
  return m;
}

/** The load summary a chunk result and the manifest carry (no paths, no secrets). */
export function chunkLoadOf(result: LoadZipResult, loadedAt: string): ChunkLoad {
  const r = result.reconciliation;
  return {
    loadedAt,
    rowsInFiles: r.rowsInFiles,
    rowsInserted: r.rowsInserted,
    rowsAlreadyPresent: r.rowsAlreadyPresent,
    recordRows: r.recordRows,
    recordsWithCdr: r.recordsWithCdr,
    recordCdrShare: r.recordCdrShare,
    days: r.days,
    ok: r.ok,
    ...(r.mismatches.length > 0 && { mismatches: r.mismatches }),
  };
}

/** The loader's activities, for the worker's main task queue (files on local disk, no CC-FS call). */
export function createLoadActivities(deps: LoadActivityDeps) {
  return {
    /**
     * Loads a verified chunk's ZIP into PostgreSQL (issue 17) and reconciles it: rows in the files =
     * rows inserted + rows already present, each entry as many rows as verification counted. Heartbeats
     * while it runs; a retry redoes only the entries not committed. A mismatch fails non-retryably
     * (`LoadReconciliationFailed`), a schema newer than this release too (`LoaderConfig`); a ZIP that
     * no longer verifies is `LoadFileCorrupt`. Database outages are retried.
     */
    /** The verified chunks of an export in OUTPUT_DIR, in order (for `loadExportWorkflow`). */
    listLoadableChunks: async (input: { exportId: string }): Promise<LoadChunkInput[]> => {
      if (!(await deps.output.readRequest(input.exportId))) {
        throw ApplicationFailure.nonRetryable(`no export ${input.exportId} in OUTPUT_DIR`, 'ExportNotFound');
      }
      const results = [...(await deps.output.readChunkResults(input.exportId)).values()];
      return results
        .filter(
          (r): r is ChunkResult & { file: string; sha256: string } =>
            r.state === 'verified' && !!r.file && !!r.sha256,
        )
        .sort((a, b) => a.index - b.index)
        .map((r) => ({
          exportId: input.exportId,
          chunk: r.index,
          file: r.file,
          sha256: r.sha256,
          ...(r.entries && { entries: r.entries.map((e) => ({ name: e.name, rows: e.rows })) }),
        }));
    },

    /** Adds a load to a verified chunk's record, so the chunk's record says it is loaded. */
    saveChunkLoad: async (input: { exportId: string; chunk: number; load: ChunkLoad }): Promise<void> => {
      const record = (await deps.output.readChunkResults(input.exportId)).get(input.chunk);
      if (record?.state !== 'verified') return;
      await deps.output.writeChunkResult(input.exportId, { ...record, load: input.load });
    },

    loadChunk: async (input: LoadChunkInput): Promise<LoadChunkOutput> => {
      const { loader, output, logger } = deps;
      if (!loader) return { configured: false };
      const ctx = Context.current();
      const log = logger.child({ exportId: input.exportId, chunk: input.chunk, activity: 'loadChunk' });
      const request = await output.readRequest(input.exportId);
      const tenant = input.tenant ?? request?.tenant;
      const timeZone = input.timeZone ?? request?.timeZone;
      if (!tenant || !timeZone) {
        throw ApplicationFailure.nonRetryable(
          `export ${input.exportId} has no request.json in OUTPUT_DIR naming its tenant and time zone`,
          'LoadInputMissing',
        );
      }
      let progress = { entry: '', rows: 0 };
      const beat = (): void => ctx.heartbeat(progress);
      const timer = setInterval(beat, Math.max(100, Math.floor((ctx.info.heartbeatTimeoutMs ?? 30_000) / 3)));
      beat();
      try {
        const result = await loader.load({
          path: join(output.exportDir(input.exportId), input.file),
          sha256: input.sha256,
          fileName: input.file,
          exportId: input.exportId,
          chunk: input.chunk,
          tenant,
          timeZone,
          ...(input.entries && {
            expectedRows: Object.fromEntries(input.entries.map((e) => [e.name, e.rows])),
          }),
          onProgress: (p) => {
            progress = p;
          },
        });
        const m = metricsOf(deps.metrics);
        for (const e of result.entries) {
          if (e.alreadyLoaded) continue;
          m?.rows.inc({ kind: e.kind, outcome: 'inserted' }, e.rowsInserted);
          m?.rows.inc({ kind: e.kind, outcome: 'already_present' }, e.rowsAlreadyPresent);
        }
        const load = chunkLoadOf(result, new Date().toISOString());
        m?.chunks.inc({ result: load.ok ? 'ok' : 'mismatch' });
        if (!load.ok) {
          log.error({ mismatches: load.mismatches }, 'load reconciliation failed');
          throw ApplicationFailure.create({
            message: `chunk ${input.chunk} of export ${input.exportId} does not reconcile: ${load.mismatches?.join('; ')}`,
            type: 'LoadReconciliationFailed',
            nonRetryable: true,
            details: [load],
          });
        }
        log.info(
          {
            rowsInFiles: load.rowsInFiles,
            rowsInserted: load.rowsInserted,
            rowsAlreadyPresent: load.rowsAlreadyPresent,
          },
          'chunk loaded',
        );
        return { configured: true, ...load };
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        if (err instanceof LoadMismatchError) {
          metricsOf(deps.metrics)?.chunks.inc({ result: 'mismatch' });
          log.error({ err: err.message }, 'load reconciliation failed');
          throw ApplicationFailure.nonRetryable(err.message, 'LoadReconciliationFailed');
        }
        if (err instanceof LoaderConfigError)
          throw ApplicationFailure.nonRetryable(err.message, 'LoaderConfig');
        if (err instanceof ZipVerificationError)
          throw ApplicationFailure.nonRetryable(`${input.file}: ${err.message}`, 'LoadFileCorrupt');
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw ApplicationFailure.nonRetryable(
            `${input.file} is not in the export's directory`,
            'LoadFileMissing',
          );
        // Database errors are retried (the server restarting, a connection dropped): they carry no URL.
        log.warn({ err: err instanceof Error ? err.message : String(err) }, 'load attempt failed; retried');
        throw err;
      } finally {
        clearInterval(timer);
      }
    },
  };
}

export type LoadActivities = ReturnType<typeof createLoadActivities>;
