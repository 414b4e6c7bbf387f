import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { CcfsError } from '../ccfs/errors';
import type { QueryBillDataBody } from '../ccfs/protocol';
import { verifyZip, ZipVerificationError } from '../ccfs/zip';
import { chunkCallbackUrl, type CallbackMode, type CallbackRouting } from '../lib/callback-token';
import type { OutputPublisher } from '../lib/storage/publisher';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import type { ChunkRange, ChunkResult, DataType, ExportFilters, ExportRequest, ExportState, ZipEntrySummary } from '../workflows/definitions';
import { OutputStore } from './output-store';

/** The part of the CC-FS client that activities use. */
export interface CcfsApi {
  queryBillData(
    body: QueryBillDataBody,
    opts?: { signal?: AbortSignal },
  ): Promise<{ kind: 'accepted'; responseId: string } | { kind: 'empty'; resultCode: string; resultDesc: string }>;
  downloadBillFile(
    billFileName: string,
    destination: string,
    opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void },
  ): Promise<{ bytes: number; sha256: string }>;
}

/** The CC-FS client of a tenant, for deployments with several tenants (lib/tenants.ts). */
export type CcfsResolver = (tenant: string) => CcfsApi;

export interface ActivityDeps {
  /** One client for every export, or a resolver that picks the client of the export's tenant. */
  ccfs: CcfsApi | CcfsResolver;
  output: OutputStore;
  /**
   * Base URL CC-FS can reach, the key that MACs the callback token, how callbacks are routed
   * (CALLBACK_ROUTING, default `token`) and whether they are expected at all (CALLBACK_MODE, default `callback`).
   */
  callback: { baseUrl: string; key: string; routing?: CallbackRouting; mode?: CallbackMode };
  logger: Logger;
  metrics?: Metrics;
  /** A shared copy of each verified ZIP and of every manifest write (e.g. S3), besides OUTPUT_DIR. */
  publish?: OutputPublisher;
}

export interface RequestChunkInput {
  exportId: string;
  chunk: ChunkRange;
  dataType: DataType;
  filters: ExportFilters;
  /** 1 for the first request of the chunk, 2 for the first re-request, … */
  request: number;
}
export type RequestChunkOutput = { kind: 'accepted'; responseId: string } | { kind: 'empty'; resultDesc: string };

export interface DownloadChunkInput {
  exportId: string;
  chunk: ChunkRange;
  billFileName: string;
  dataType: DataType;
  /** Time from the request to the callback, for the latency metric. */
  callbackLatencyMs?: number;
}
export interface DownloadChunkOutput {
  file: string;
  bytes: number;
  sha256: string;
  rows: number;
  entries: ZipEntrySummary[];
}

/** A chunk a previous run of the same export finished; carried into the ledger, not redone. */
export interface FinishedChunk extends ChunkRange {
  state: 'verified' | 'empty';
  requests: number;
  bytes?: number;
  rows?: number;
}

/** Errno codes of the output directory that retrying soon may fix (space freed) and that it cannot (permissions). */
const DISK_FULL = new Set(['ENOSPC', 'EDQUOT']);
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS']);

/**
 * CC-FS, ZIP and output-disk failures as Temporal failures: permanent ones stop the retry policy at
 * once, the others go back to it (bounded by the chunk's `maximumAttempts`).
 */
function toFailure(err: unknown, outputDir?: string): unknown {
  if (err instanceof CcfsError) {
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: err.category !== 'retryable',
      details: [err.details],
      nextRetryDelay: err.retryAfterMs,
    });
  }
  if (err instanceof ZipVerificationError) {
    // A corrupt ZIP may be a transfer fault and is downloaded again; a ZIP over the limits is not.
    return ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: err.type === 'ZipLimitExceeded' });
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && DISK_FULL.has(code)) {
    return ApplicationFailure.create({
      type: 'OutputDiskFull',
      message: `no space left in the output directory ${outputDir ?? ''} (${code}); free space there (or point OUTPUT_DIR elsewhere and restart the worker), then retry the export`,
    });
  }
  if (code && NOT_WRITABLE.has(code)) {
    return ApplicationFailure.create({
      type: 'OutputNotWritable',
      message: `the worker cannot write to the output directory ${outputDir ?? ''} (${code}); fix its permissions, then retry the export`,
      nonRetryable: true,
    });
  }
  return err;
}

/**
 * Heartbeats on a timer until `work` settles, whether or not bytes arrive: Temporal then notices a
 * worker that died within the heartbeat timeout (and gives the call to another), and a
 * cancellation reaches the call even while CC-FS is silent. A stalled transfer is the client's
 * business (CCFS_REQUEST_TIMEOUT_MS), not the heartbeat's. The SDK throttles the actual RPCs.
 */
async function withHeartbeats<T>(ctx: Context, details: () => unknown, work: () => Promise<T>): Promise<T> {
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  if (!timeoutMs) return work();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), Math.max(100, Math.floor(timeoutMs / 3)));
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** What a download attempt heartbeats: how far it got, so the next attempt (and the UI) can tell. */
export interface DownloadHeartbeat {
  billFileName: string;
  bytes: number;
}

/** Builds the activities with their dependencies; the worker is the only caller. */
export function createActivities(deps: ActivityDeps) {
  const { output, logger, metrics, publish } = deps;
  // The tenant is in request.json, which prepareExport writes before any chunk starts; reading it
  // here keeps tenants (and their credentials) out of workflow inputs.
  const ccfsFor = async (exportId: string): Promise<CcfsApi> => {
    if (typeof deps.ccfs !== 'function') return deps.ccfs;
    const request = await output.readRequest(exportId);
    if (!request) {
      throw ApplicationFailure.retryable(`export ${exportId} has no request.json in OUTPUT_DIR; every worker must share OUTPUT_DIR`, 'ExportNotPrepared');
    }
    return deps.ccfs(request.tenant);
  };

  return {
    /** Asks CC-FS to generate one chunk; the callback URL routes the answer to the calling chunk workflow. */
    requestChunk: async (input: RequestChunkInput): Promise<RequestChunkOutput> => {
      const ctx = Context.current();
      const workflowId = ctx.info.workflowExecution?.workflowId;
      if (!workflowId) throw ApplicationFailure.nonRetryable('requestChunk runs only inside a chunk workflow', 'NoWorkflow');
      const log = logger.child({ exportId: input.exportId, chunk: input.chunk.index, workflowId });
      if (ctx.info.attempt > 1) metrics?.retries.inc({ activity: 'requestChunk' });
      const body: QueryBillDataBody = {
        ...input.filters,
        beginTime: input.chunk.begin,
        endTime: input.chunk.end,
        dataType: input.dataType,
        callBackURL: chunkCallbackUrl(deps.callback, workflowId),
      };
      try {
        const outcome = await withHeartbeats(ctx, () => ({ request: input.request }), async () => (await ccfsFor(input.exportId)).queryBillData(body, { signal: ctx.cancellationSignal }));
        metrics?.ccfsAnswers.inc({ operation: 'queryBillData', result: outcome.kind === 'empty' ? '0300012' : '0' });
        if (outcome.kind === 'empty') {
          log.info({ request: input.request }, 'chunk has no data (0300012)');
          return { kind: 'empty', resultDesc: outcome.resultDesc };
        }
        log.info({ request: input.request, responseId: outcome.responseId, attempt: ctx.info.attempt }, 'chunk requested');
        return { kind: 'accepted', responseId: outcome.responseId };
      } catch (err) {
        if (err instanceof CcfsError) metrics?.ccfsAnswers.inc({ operation: 'queryBillData', result: err.resultCode ?? err.type });
        if (ctx.info.attempt > 1 || !(err instanceof CcfsError && err.retryable)) {
          log.warn({ err: err instanceof Error ? err.message : String(err), attempt: ctx.info.attempt }, 'queryBillData failed');
        }
        throw toFailure(err);
      }
    },

    /**
     * Streams the bill file to a temporary file, verifies it and moves it into the export's directory.
     * Every attempt starts from the first byte (CC-FS documents no ranged download) and first removes
     * what an earlier attempt of this chunk left in `.partial/` (a worker killed mid-download).
     */
    downloadChunk: async (input: DownloadChunkInput): Promise<DownloadChunkOutput> => {
      const ctx = Context.current();
      const log = logger.child({ exportId: input.exportId, chunk: input.chunk.index, workflowId: ctx.info.workflowExecution?.workflowId });
      if (ctx.info.attempt > 1) {
        metrics?.retries.inc({ activity: 'downloadChunk' });
        const previous = ctx.info.heartbeatDetails as DownloadHeartbeat | undefined;
        log.info({ attempt: ctx.info.attempt, previousBytes: previous?.bytes }, 'downloading again from the first byte');
      } else if (input.callbackLatencyMs !== undefined) metrics?.callbackLatency.observe(input.callbackLatencyMs / 1000);
      const outputDir = output.exportDir(input.exportId);
      const started = Date.now();
      let partial: string | undefined;
      const progress: DownloadHeartbeat = { billFileName: input.billFileName, bytes: 0 };
      try {
        await output.removePartials(input.exportId, input.chunk.index);
        partial = await output.partialPath(input.exportId, input.chunk.index);
        const target = partial;
        const { bytes, sha256 } = await withHeartbeats(
          ctx,
          () => progress,
          async () =>
            (await ccfsFor(input.exportId)).downloadBillFile(input.billFileName, target, {
              signal: ctx.cancellationSignal,
              // Progress is recorded here and sent by the heartbeat timer: a heartbeat per received
              // chunk cost ~1.3 s of worker CPU per GiB (bench/results/README.md).
              onProgress: (n) => {
                progress.bytes = n;
              },
            }),
        );
        const summary = await verifyZip(target);
        const file = output.chunkFileName(input.chunk, input.dataType);
        await rename(target, join(outputDir, file));
        if (publish) {
          const path = join(outputDir, file);
          await withHeartbeats(ctx, () => progress, () =>
            publish.publishChunk({ exportId: input.exportId, file, path, sha256, bytes }, { signal: ctx.cancellationSignal }),
          );
        }
        const entries = summary.entries.map(({ name, kind, rows, uncompressedBytes }) => ({ name, kind, rows, uncompressedBytes }));
        const rows = entries.reduce((n, e) => n + e.rows, 0);
        metrics?.downloaded(bytes, (Date.now() - started) / 1000);
        metrics?.ccfsAnswers.inc({ operation: 'downloadBillFile', result: '0' });
        log.info({ billFileName: input.billFileName, bytes, rows, sha256, attempt: ctx.info.attempt }, 'chunk downloaded and verified');
        return { file, bytes, sha256, rows, entries };
      } catch (err) {
        if (partial) await rm(partial, { force: true });
        if (err instanceof CcfsError) metrics?.ccfsAnswers.inc({ operation: 'downloadBillFile', result: err.resultCode ?? err.type });
        log.warn({ err: err instanceof Error ? err.message : String(err), attempt: ctx.info.attempt, bytes: progress.bytes }, 'download failed');
        throw toFailure(err, outputDir);
      }
    },

    /** Records a finished chunk (verified, empty, failed or cancelled) for the manifest. */
    saveChunkResult: async (input: { exportId: string; result: ChunkResult }): Promise<void> => {
      try {
        await output.writeChunkResult(input.exportId, input.result);
        // Only this chunk's: other chunks of the export may still be downloading.
        if (input.result.state === 'cancelled') await output.removePartials(input.exportId, input.result.index);
      } catch (err) {
        throw toFailure(err, output.root);
      }
      metrics?.chunks.inc({ state: input.result.state });
    },

    /** Records several finished chunks at once (chunks an export gave up on before starting them). */
    saveChunkResults: async (input: { exportId: string; results: ChunkResult[] }): Promise<void> => {
      try {
        for (const result of input.results) await output.writeChunkResult(input.exportId, result);
      } catch (err) {
        throw toFailure(err, output.root);
      }
      for (const result of input.results) metrics?.chunks.inc({ state: result.state });
    },

    /** Creates the export's directory and request file; returns the chunks a previous run finished. */
    prepareExport: async (input: { request: ExportRequest }): Promise<{ manifestPath: string; done: FinishedChunk[] }> => {
      const { request } = input;
      const existing = await output.readRequest(request.exportId);
      if (existing) {
        const same = (['begin', 'end', 'timeZone', 'dataType'] as const).every((k) => existing[k] === request[k]) &&
          JSON.stringify(existing.filters) === JSON.stringify(request.filters) &&
          existing.options.chunkSeconds === request.options.chunkSeconds;
        if (!same) {
          throw ApplicationFailure.nonRetryable(
            `export ID ${request.exportId} already holds a different request in ${output.exportDir(request.exportId)}; use another export ID`,
            'ExportIdConflict',
          );
        }
      }
      try {
        await output.writeRequest(request);
        // A run starts with nothing of its own in flight: whatever temporary files exist are a crash's.
        await output.removePartials(request.exportId);
        await output.removeTempFiles(request.exportId);
        const done = (await output.finishedChunks(request.exportId)).map(({ index, begin, end, state, requests, bytes, rows }) => ({
          index,
          begin,
          end,
          state: state as FinishedChunk['state'],
          requests,
          bytes,
          rows,
        }));
        const manifestPath = await output.writeManifest(request.exportId, 'running');
      await publish?.publishManifest({ exportId: request.exportId, path: manifestPath });
        return { manifestPath, done };
      } catch (err) {
        throw toFailure(err, output.root);
      }
    },

    /**
     * Rewrites manifest.json from the request and the chunk records (atomically). Once the export has
     * finished or was cancelled, nothing writes to its directory any more: temporary files that a
     * crash left behind (downloads, atomic writes) are removed first.
     */
    writeManifest: async (input: { exportId: string; state: ExportState }): Promise<{ manifestPath: string }> => {
      try {
        if (input.state !== 'running') {
          await output.removePartials(input.exportId);
          await output.removeTempFiles(input.exportId);
        }
        const manifestPath = await output.writeManifest(input.exportId, input.state);
        await publish?.publishManifest({ exportId: input.exportId, path: manifestPath });
        return { manifestPath };
      } catch (err) {
        throw toFailure(err, output.root);
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
