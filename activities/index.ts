import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { CcfsError } from '../ccfs/errors';
import type { QueryBillDataBody } from '../ccfs/protocol';
import { StreamingZipVerifier, ZipVerificationError, type ZipSummary } from '../ccfs/zip';
import { chunkCallbackUrl, type CallbackMode, type CallbackRouting } from '../lib/callback-token';
import type { OutputPublisher } from '../lib/storage/publisher';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import type {
  ChunkRange,
  ChunkRequest,
  ChunkResult,
  DataType,
  ExportFilters,
  ExportRequest,
  ExportState,
  ZipEntrySummary,
} from '../workflows/definitions';
import { createLoadActivities, type LoadActivityDeps } from './load';
import { OutputStore } from './output-store';

/** The part of the CC-FS client that activities use. */
export interface CcfsApi {
  queryBillData(
    body: QueryBillDataBody,
    opts?: { signal?: AbortSignal },
  ): Promise<
    { kind: 'accepted'; responseId: string } | { kind: 'empty'; resultCode: string; resultDesc: string }
  >;
  downloadBillFile(
    billFileName: string,
    destination: string,
    opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void; onData?: (chunk: Buffer) => void },
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
/**
 * `mode` is the worker's CALLBACK_MODE (absent in results of the previous release: `callback`): the
 * workflow learns from a recorded result, deterministically, whether to expect callbacks at all.
 */
export type RequestChunkOutput =
  | { kind: 'accepted'; responseId: string; mode?: 'callback' | 'none' }
  | { kind: 'empty'; resultDesc: string; mode?: 'callback' | 'none' };

export interface DownloadChunkInput {
  exportId: string;
  chunk: ChunkRange;
  /** The file a callback named. With `probe`, the first of the names to try. */
  billFileName: string;
  dataType: DataType;
  /** Time from the request to the callback, for the latency metric. */
  callbackLatencyMs?: number;
  /**
   * Probing: try these documented names (`yyyyMMdd_<responseId without hyphens>.zip`) in order;
   * 0300011 on one means "not there (yet)" and the next is tried. The first found is the download.
   */
  probe?: string[];
}
export interface DownloadChunkOutput {
  /** Absent in results of the previous release, which knew only this outcome. */
  kind?: 'file';
  file: string;
  bytes: number;
  sha256: string;
  rows: number;
  entries: ZipEntrySummary[];
  /** The name the file was found under (probing tries several). */
  billFileName?: string;
  /** The ZIP lacks a requested kind or holds entries of unknown names (verified all the same). */
  warnings?: string[];
}
/**
 * `empty`: CC-FS answered 0300012 for the file, or the ZIP has no entries or only header rows (the
 * file is removed: an empty chunk has no file, as when the query itself answers 0300012).
 * `not-found`: probing only, no name exists yet (0300011 for each).
 */
export type DownloadChunkOutcome =
  | DownloadChunkOutput
  | { kind: 'empty'; billFileName: string; detail: string }
  | { kind: 'not-found'; tried: string[] };

/** A chunk a previous run of the same export finished; carried into the ledger, not redone. */
export interface FinishedChunk extends ChunkRange {
  state: 'verified' | 'empty';
  requests: number;
  bytes?: number;
  rows?: number;
}

/** The accepted requests of a chunk an earlier run of the export left failed or cancelled. */
export interface PreviousRequests extends ChunkRange {
  requests: ChunkRequest[];
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
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: err.type === 'ZipLimitExceeded',
    });
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

/**
 * What a verified ZIP holds, for the chunk: its entries (with their warnings), whether it holds no
 * data (no entries, or only header rows: `empty`, with why), and the ZIP-level warnings that
 * verifyZip reports (a requested kind missing, entries of unknown names, each entry's own).
 */
function describeContent(summary: ZipSummary): {
  entries: ZipEntrySummary[];
  empty: boolean;
  detail: string;
  warnings: string[];
} {
  const entries: ZipEntrySummary[] = summary.entries.map((e) => ({
    name: e.name,
    kind: e.kind,
    rows: e.rows,
    uncompressedBytes: e.uncompressedBytes,
    ...(e.warnings && e.warnings.length > 0 && { warnings: e.warnings }),
  }));
  const detail =
    entries.length === 0 ? 'the ZIP has no entries' : 'every CSV in the ZIP has a header and no data rows';
  return { entries, empty: summary.empty, detail, warnings: summary.warnings };
}

/**
 * The activities that call CC-FS (protocol §3 queryBillData, §4 downloadBillFile), registered only on
 * the CC-FS task queue (`ccfsTaskQueue(TASK_QUEUE)`), whose server-side rate limit covers every call
 * to CC-FS across the workers. Workflows reach them only through `proxyCcfsActivities`
 * (workflows/activity-proxies.ts), which names that queue. The worker is the only caller.
 */
export function createCcfsActivities(deps: ActivityDeps) {
  const { output, logger, metrics, publish } = deps;
  // The tenant is in request.json, which prepareExport writes before any chunk starts; reading it
  // here keeps tenants (and their credentials) out of workflow inputs.
  const ccfsFor = async (exportId: string): Promise<CcfsApi> => {
    if (typeof deps.ccfs !== 'function') return deps.ccfs;
    const request = await output.readRequest(exportId);
    if (!request) {
      throw ApplicationFailure.retryable(
        `export ${exportId} has no request.json in OUTPUT_DIR; every worker must share OUTPUT_DIR`,
        'ExportNotPrepared',
      );
    }
    return deps.ccfs(request.tenant);
  };

  return {
    /** Asks CC-FS to generate one chunk; the callback URL routes the answer to the calling chunk workflow. */
    requestChunk: async (input: RequestChunkInput): Promise<RequestChunkOutput> => {
      const ctx = Context.current();
      const workflowId = ctx.info.workflowExecution?.workflowId;
      if (!workflowId)
        throw ApplicationFailure.nonRetryable('requestChunk runs only inside a chunk workflow', 'NoWorkflow');
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
        const outcome = await withHeartbeats(
          ctx,
          () => ({ request: input.request }),
          async () => (await ccfsFor(input.exportId)).queryBillData(body, { signal: ctx.cancellationSignal }),
        );
        metrics?.ccfsAnswers.inc({
          operation: 'queryBillData',
          result: outcome.kind === 'empty' ? '0300012' : '0',
        });
        const mode = deps.callback.mode ?? 'callback';
        if (outcome.kind === 'empty') {
          log.info({ request: input.request }, 'chunk has no data (0300012)');
          return { kind: 'empty', resultDesc: outcome.resultDesc, mode };
        }
        log.info(
          { request: input.request, responseId: outcome.responseId, attempt: ctx.info.attempt },
          'chunk requested',
        );
        return { kind: 'accepted', responseId: outcome.responseId, mode };
      } catch (err) {
        if (err instanceof CcfsError)
          metrics?.ccfsAnswers.inc({ operation: 'queryBillData', result: err.resultCode ?? err.type });
        if (ctx.info.attempt > 1 || !(err instanceof CcfsError && err.retryable)) {
          log.warn(
            { err: err instanceof Error ? err.message : String(err), attempt: ctx.info.attempt },
            'queryBillData failed',
          );
        }
        throw toFailure(err);
      }
    },

    /**
     * Streams the bill file to a temporary file, verifies it and moves it into the export's directory.
     * Every attempt starts from the first byte (CC-FS documents no ranged download) and first removes
     * what an earlier attempt of this chunk left in `.partial/` (a worker killed mid-download).
     * With `probe`, tries each documented name in turn (protocol §4) and returns `not-found` when none
     * exists yet. 0300012 for the file, or a ZIP without data rows, is `empty` (issue 13, item 5).
     */
    downloadChunk: async (input: DownloadChunkInput): Promise<DownloadChunkOutcome> => {
      const ctx = Context.current();
      const log = logger.child({
        exportId: input.exportId,
        chunk: input.chunk.index,
        workflowId: ctx.info.workflowExecution?.workflowId,
      });
      if (ctx.info.attempt > 1) {
        metrics?.retries.inc({ activity: 'downloadChunk' });
        const previous = ctx.info.heartbeatDetails as DownloadHeartbeat | undefined;
        log.info(
          { attempt: ctx.info.attempt, previousBytes: previous?.bytes },
          'downloading again from the first byte',
        );
      } else if (input.callbackLatencyMs !== undefined)
        metrics?.callbackLatency.observe(input.callbackLatencyMs / 1000);
      const outputDir = output.exportDir(input.exportId);
      const names = input.probe ?? [input.billFileName];
      const progress: DownloadHeartbeat = { billFileName: input.billFileName, bytes: 0 };
      const ccfs = await ccfsFor(input.exportId);
      for (const billFileName of names) {
        const started = Date.now();
        let partial: string | undefined;
        progress.billFileName = billFileName;
        progress.bytes = 0;
        try {
          await output.removePartials(input.exportId, input.chunk.index);
          partial = await output.partialPath(input.exportId, input.chunk.index);
          const target = partial;
          // Verification runs under the same heartbeat timer as the download: a multi-GiB ZIP takes
          // seconds to verify, and without heartbeats a 4 GiB one could outlast the heartbeat timeout.
          const { bytes, sha256, summary } = await withHeartbeats(
            ctx,
            () => progress,
            async () => {
              // One pass: the ZIP is verified while it arrives, and read again only when the
              // streamed check cannot vouch for it (deflated entries, a mismatch, damage).
              const verifier = new StreamingZipVerifier();
              const got = await ccfs.downloadBillFile(billFileName, target, {
                signal: ctx.cancellationSignal,
                // Progress is recorded here and sent by the heartbeat timer: a heartbeat per received
                // chunk cost ~1.3 s of worker CPU per GiB (bench/results/README.md).
                onProgress: (n) => {
                  progress.bytes = n;
                },
                onData: (chunk) => verifier.push(chunk),
              });
              const summary = await verifier.finish(target, { dataType: input.dataType });
              if (!verifier.streamed)
                log.debug(
                  { billFileName, reason: verifier.gaveUp },
                  'bill file verified by reading it again',
                );
              return { ...got, summary };
            },
          );
          const content = describeContent(summary);
          metrics?.ccfsAnswers.inc({ operation: 'downloadBillFile', result: '0' });
          if (content.empty) {
            // Nothing to keep: an empty chunk has no file, whichever way CC-FS said "no data".
            await rm(target, { force: true });
            log.info(
              { billFileName, bytes, entries: summary.entries.length, probe: input.probe !== undefined },
              'bill file holds no data rows; chunk is empty',
            );
            return { kind: 'empty', billFileName, detail: content.detail };
          }
          const file = output.chunkFileName(input.chunk, input.dataType);
          await rename(target, join(outputDir, file));
          if (publish) {
            const path = join(outputDir, file);
            await withHeartbeats(
              ctx,
              () => progress,
              () =>
                publish.publishChunk(
                  { exportId: input.exportId, file, path, sha256, bytes },
                  { signal: ctx.cancellationSignal },
                ),
            );
          }
          const rows = content.entries.reduce((n, e) => n + e.rows, 0);
          metrics?.downloaded(bytes, (Date.now() - started) / 1000);
          if (content.warnings.length > 0)
            log.warn({ billFileName, warnings: content.warnings }, 'bill file verified with warnings');
          log.info(
            {
              billFileName,
              bytes,
              rows,
              sha256,
              attempt: ctx.info.attempt,
              probe: input.probe !== undefined,
            },
            'chunk downloaded and verified',
          );
          return {
            kind: 'file',
            file,
            bytes,
            sha256,
            rows,
            entries: content.entries,
            billFileName,
            ...(content.warnings.length > 0 && { warnings: content.warnings }),
          };
        } catch (err) {
          if (partial) await rm(partial, { force: true });
          if (err instanceof CcfsError)
            metrics?.ccfsAnswers.inc({ operation: 'downloadBillFile', result: err.resultCode ?? err.type });
          if (err instanceof CcfsError && err.type === 'CcfsNoData') {
            log.info({ billFileName }, 'downloadBillFile answered 0300012; chunk is empty');
            return {
              kind: 'empty',
              billFileName,
              detail: `downloadBillFile ${billFileName} answered ${err.resultCode ?? '0300012'} (no data)`,
            };
          }
          // Probing: 0300011 is "not generated yet" (or another date's name); try the next name.
          if (input.probe && err instanceof CcfsError && err.type === 'CcfsFileNotFound') continue;
          log.warn(
            {
              err: err instanceof Error ? err.message : String(err),
              attempt: ctx.info.attempt,
              bytes: progress.bytes,
            },
            'download failed',
          );
          throw toFailure(err, outputDir);
        }
      }
      log.debug({ tried: names }, 'no bill file under the documented names yet');
      return { kind: 'not-found', tried: names };
    },
  };
}

/**
 * The activities on the export's files in OUTPUT_DIR (chunk records, request.json, manifest.json):
 * main task queue, no CC-FS call, so they never wait behind the CC-FS rate limit.
 */
export function createStoreActivities(deps: ActivityDeps) {
  const { output, metrics, publish } = deps;
  return {
    /** Records a finished chunk (verified, empty, failed or cancelled) for the manifest. */
    saveChunkResult: async (input: { exportId: string; result: ChunkResult }): Promise<void> => {
      try {
        await output.writeChunkResult(input.exportId, input.result);
        // Only this chunk's: other chunks of the export may still be downloading.
        if (input.result.state === 'cancelled')
          await output.removePartials(input.exportId, input.result.index);
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
    prepareExport: async (input: {
      request: ExportRequest;
    }): Promise<{ manifestPath: string; done: FinishedChunk[]; previousRequests?: PreviousRequests[] }> => {
      const { request } = input;
      const existing = await output.readRequest(request.exportId);
      if (existing) {
        const same =
          (['begin', 'end', 'timeZone', 'dataType'] as const).every((k) => existing[k] === request[k]) &&
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
        const done = (await output.finishedChunks(request.exportId)).map(
          ({ index, begin, end, state, requests, bytes, rows }) => ({
            index,
            begin,
            end,
            state: state as FinishedChunk['state'],
            requests,
            bytes,
            rows,
          }),
        );
        // Failed or cancelled chunks whose files may still be there: a retry tries those first.
        const previousRequests: PreviousRequests[] = [];
        for (const r of (await output.readChunkResults(request.exportId)).values()) {
          if ((r.state === 'failed' || r.state === 'cancelled') && r.requestLog && r.requestLog.length > 0) {
            previousRequests.push({ index: r.index, begin: r.begin, end: r.end, requests: r.requestLog });
          }
        }
        const manifestPath = await output.writeManifest(request.exportId, 'running');
        await publish?.publishManifest({ exportId: request.exportId, path: manifestPath });
        return { manifestPath, done, ...(previousRequests.length > 0 && { previousRequests }) };
      } catch (err) {
        throw toFailure(err, output.root);
      }
    },

    /**
     * Rewrites manifest.json from the request and the chunk records (atomically). Once the export has
     * finished or was cancelled, nothing writes to its directory any more: temporary files that a
     * crash left behind (downloads, atomic writes) are removed first.
     */
    writeManifest: async (input: {
      exportId: string;
      state: ExportState;
    }): Promise<{ manifestPath: string }> => {
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

/**
 * Every activity of the main task queue (the workflows' own queue, TASK_QUEUE): the file activities
 * and the loader's (issue 17; registered with or without a loader, which then answers
 * `configured: false`). Workflows reach them only through `proxyMainActivities`.
 */
export function createMainActivities(deps: ActivityDeps & LoadActivityDeps) {
  return { ...createStoreActivities(deps), ...createLoadActivities(deps) };
}

/** The CC-FS task queue's activities: a workflow proxy of this type must name that queue. */
export type CcfsActivities = ReturnType<typeof createCcfsActivities>;
/** The main task queue's activities; a CC-FS activity is not among them, so it cannot be proxied here. */
export type MainActivities = ReturnType<typeof createMainActivities>;
