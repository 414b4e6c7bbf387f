import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { DownloadChunkOutcome } from '../activities';
import { chunkInputProblem } from '../domain/input-checks';
import { instantToWall } from '../domain/wall-time';
import { refuseInvalidInput } from './refuse-input';
import { proxyCcfsActivities, proxyMainActivities, type QueueActivityOptions } from './activity-proxies';
import {
  callbackSignal,
  chunkFinishedSignal,
  chunkProgressSignal,
  chunkProgressQuery,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_PROBE_INTERVAL_MS,
  DEFAULT_PROBE_ONLY_INTERVAL_MS,
  exportWorkflowId,
  FailureType,
  type CallbackPayload,
  type ChunkPhase,
  type ChunkProgressReport,
  type ChunkRequest,
  type ChunkResult,
  type ChunkWorkflowInput,
} from './definitions';
import { ResponseIdsKey } from './search-attributes';

/** A responseId as it appears in file names and in `CcfsResponseIds`: no hyphens, lower case. */
export function normaliseResponseId(responseId: string): string {
  return responseId.replace(/-/g, '').toLowerCase();
}

/** Whether a callback's file was produced for a responseId (hyphens and case in ids are not significant). */
export function callbackMatches(cb: CallbackPayload, responseId: string): boolean {
  return (
    /^\d{8}_[0-9a-fA-F]{32}\.zip$/.test(cb.billFileName) &&
    cb.billFileName.slice(9, 41).toLowerCase() === normaliseResponseId(responseId)
  );
}

const DAY_MS = 86_400_000;
const compactDay = (epochMs: number): string =>
  new Date(epochMs).toISOString().slice(0, 10).replace(/-/g, '');

/**
 * The names CC-FS may have given the file of a request (docs/ccfs-protocol.md §4,
 * `yyyyMMdd_<responseId without hyphens>.zip`): the date is the day of the query or of generation, in
 * the tenant's zone or in UTC, so the request's day in both and the day after each, most likely
 * first, without duplicates. Empty for a responseId that cannot make a valid name (not 32 hex digits).
 */
export function candidateFileNames(request: ChunkRequest, timeZone: string): string[] {
  const id = normaliseResponseId(request.responseId);
  const at = Date.parse(request.requestedAt);
  if (!/^[0-9a-f]{32}$/.test(id) || Number.isNaN(at)) return [];
  const zoned = instantToWall(Math.floor(at / 1000), timeZone) * 1000;
  const days = [compactDay(zoned), compactDay(at), compactDay(zoned + DAY_MS), compactDay(at + DAY_MS)];
  return [...new Set(days)].map((day) => `${day}_${id}.zip`);
}

/** Periodic probes per request's wait at most (the interval is stretched to fit). */
const MAX_PROBES_PER_REQUEST = 400;
/** Past this history length a waiting chunk stops periodic probes (the one before each new request stays). */
const MAX_PROBING_HISTORY_EVENTS = 30_000;
const seconds = (ms: number): string =>
  ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));

/** Probing tries the files of at most this many of the latest requests: older ones have long expired or been found. */
const MAX_PROBED_REQUESTS = 8;

const short = (wall: string) => wall.slice(0, 16);

/**
 * What a chunk's record says about the failure that ended it: the cause's type, and a message that
 * tells an operator what happened and what to do. A retryable failure that used up its attempts says
 * so, since the cause alone ("retry later") would suggest that the product is still retrying.
 */
export function describeFailure(err: unknown, maximumAttempts: number): { message: string; type?: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type =
    cause instanceof ApplicationFailure
      ? (cause.type ?? undefined)
      : cause instanceof TimeoutFailure
        ? FailureType.activityTimeout
        : undefined;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (!(err instanceof ActivityFailure)) return { message, type };
  const activity = err.activityType;
  if (err.retryState === 'MAXIMUM_ATTEMPTS_REACHED') {
    return {
      message: `${activity} gave up after ${maximumAttempts} attempts; last error: ${message}. Retry the export once the cause is fixed`,
      type,
    };
  }
  if (cause instanceof TimeoutFailure) {
    return {
      message: `${activity} timed out (${cause.timeoutType}) and has no attempts left; retry the export`,
      type,
    };
  }
  return { message, type };
}

/**
 * Exports one ≤ 3-day chunk: request it from CC-FS, wait for the callback signal, download and verify
 * the ZIP. A callback that does not come in time leads to a new request; a callback for any request
 * this chunk made is good data, however late; duplicates are harmless.
 *
 * Callbacks are optional (issue 13, item 4; patch `probe-bill-files`): while it waits, every
 * `probeIntervalMs`, and always before it requests again, the chunk tries to download the files of
 * its requests under their documented names; a probe that finds one is the download. With the
 * worker's `CALLBACK_MODE=none` probing is the only path. A retry first tries the files of the earlier
 * run's requests (`previousRequests`). Empty in every form (0300012 on query or download, a ZIP of
 * header-only CSVs or of no entries) ends `empty`. A range CC-FS refuses as too long returns
 * `CcfsSpanRefused` without a record: the export splits it.
 */
export async function chunkWorkflow(input: ChunkWorkflowInput): Promise<ChunkResult> {
  refuseInvalidInput(chunkInputProblem(input));
  const { chunk, options } = input;
  const range = `${short(chunk.begin)} → ${short(chunk.end)}`;
  const callbacks: CallbackPayload[] = [];
  const consumed = new Set<string>();
  const responseIds: string[] = [];
  const requestedAt = new Map<string, number>();
  let requests = 0;
  let downloadAttempts = 0;
  let rejected = 0;
  let phase: ChunkPhase = 'requesting';
  let since = new Date().toISOString();
  // Decided once, before any command of this run: histories of the previous release replay without it.
  const probing = patched('probe-bill-files');
  /** Accepted requests of this chunk, earlier runs' first (probing only). */
  const requestLog: ChunkRequest[] = probing ? [...(input.previousRequests ?? [])] : [];
  let mode: 'callback' | 'none' = 'callback';
  let probes = 0;
  let probeNames: string[] = [];
  /** What the verified ZIP lacked or held unexpectedly, shown in the details once the chunk is done. */
  let warnings: string[] = [];
  // At most MAX_PROBES_PER_REQUEST probes per callback timeout, whatever the option says: each costs
  // ~9 history events, and a chunk's history must stay far below Temporal's 51,200-event limit.
  const probeIntervalMs = () =>
    Math.max(
      options.probeIntervalMs ??
        (mode === 'none' ? DEFAULT_PROBE_ONLY_INTERVAL_MS : DEFAULT_PROBE_INTERVAL_MS),
      Math.ceil(options.callbackTimeoutMs / MAX_PROBES_PER_REQUEST),
    );
  /** Every responseId a callback may name: this run's, and with probing the earlier runs' too. */
  const knownIds = (): string[] => (probing ? requestLog.map((r) => r.responseId) : responseIds);

  setHandler(callbackSignal, (cb) => {
    // The endpoint checked the signature and the routing token; the file name must still belong to
    // the responseId it names, or a confused upstream could make us download someone else's file.
    if (!callbackMatches(cb, cb.responseId)) {
      rejected++;
      log.warn('rejected a callback whose billFileName does not match its responseId', {
        responseId: cb.responseId,
      });
      return;
    }
    if (callbacks.some((c) => c.billFileName === cb.billFileName)) return; // a duplicate: already known
    callbacks.push(cb);
    render();
  });
  setHandler(chunkProgressQuery, () => ({
    phase,
    requests,
    responseIds,
    since,
    callbacksReceived: callbacks.length,
    callbacksRejected: rejected,
    probes,
  }));

  /** The last phase reported to the export (`reportProgress`). */
  let reported = '';
  function enter(next: ChunkPhase): void {
    phase = next;
    since = new Date().toISOString();
    render();
    // The long phases only, once each: a probe while waiting for a callback is an aside.
    const long =
      next === 'waiting-for-callback' || next === 'downloading' || (next === 'probing' && mode === 'none');
    const key = `${next}/${requests}`;
    if (long && key !== reported) {
      reported = key;
      reportProgress();
    }
  }

  /** The load's reconciliation, for the chunk's details in the Temporal UI (once loaded). */
  let loadLine: string | undefined;

  function render(): void {
    const every = `every ${seconds(probeIntervalMs())} s`;
    const names = probeNames.map((n) => `\`${n}\``).join(', ');
    const budget = `${Math.round(options.callbackTimeoutMs / 60000)} min`;
    let waiting = `**${phase}** since ${since}.`;
    if (phase === 'waiting-for-callback') {
      waiting = `Waiting for the CC-FS callback for responseId \`${responseIds.at(-1)}\` since ${since} (timeout ${budget}).`;
      if (probing) waiting += ` Meanwhile probing for ${names || 'its file'} ${every}.`;
    } else if (phase === 'probing') {
      waiting =
        mode === 'none'
          ? `Probing for ${names || 'the file'} ${every} since ${since} (CALLBACK_MODE=none: no callback expected; a new request after ${budget}).`
          : `Probing for ${names || 'the file'} (try ${probes}) since ${since}.`;
    }
    setCurrentDetails(
      [
        `### Chunk #${chunk.index}: ${chunk.begin} → ${chunk.end} (${input.timeZone})`,
        waiting,
        '',
        `- requests: ${requests} of ${options.maxRequestsPerChunk}`,
        `- responseIds: ${responseIds.join(', ') || '—'}`,
        `- callbacks: ${callbacks.length} received, ${rejected} rejected${mode === 'none' ? ' (CALLBACK_MODE=none)' : ''}`,
        ...(probing
          ? [
              `- probes: ${probes}${requestLog.length > responseIds.length ? ` (incl. ${requestLog.length - responseIds.length} earlier request(s))` : ''}`,
            ]
          : []),
        `- download attempts: ${downloadAttempts}`,
        ...warnings.map((w) => `- ⚠ warning: ${w}`),
        ...(loadLine ? [loadLine] : []),
      ].join('\n'),
    );
  }

  // No task queue here: proxyCcfsActivities names the CC-FS one, and the per-call overrides below merge into it.
  const ccfsActivity: QueueActivityOptions = {
    // Both CC-FS activities heartbeat on a timer: a crashed worker's call is given to another worker
    // after this long, not after the start-to-close timeout.
    heartbeatTimeout: options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
    // Wait for the activity to stop (and delete its temporary file) before the chunk records that it
    // was cancelled. The SDK's default (TRY_CANCEL) reports at once, while a download may still be
    // running and could even rename a file into place after the chunk said "cancelled".
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: options.retry.initialIntervalMs,
      maximumInterval: options.retry.maximumIntervalMs,
      backoffCoefficient: 2,
      maximumAttempts: options.retry.maximumAttempts,
    },
  };
  const { requestChunk, downloadChunk } = proxyCcfsActivities({
    ...ccfsActivity,
    startToCloseTimeout: '2 minutes',
  });
  const { saveChunkResult } = proxyMainActivities({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 10 },
  });
  // Durable and retried like the download; the heartbeat lets a dead worker's load move on in a minute.
  // Hours for a start-to-close: a multi-GiB chunk loads at tens of thousands of rows per second.
  const { loadChunk } = proxyMainActivities({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout: '1 minute',
    summary: `load chunk ${chunk.index} into PostgreSQL`,
    retry: {
      initialInterval: options.retry.initialIntervalMs,
      maximumInterval: options.retry.maximumIntervalMs,
      backoffCoefficient: 2,
      maximumAttempts: options.retry.maximumAttempts,
    },
  });

  /**
   * The chunk's load (issue 17): the worker answers `configured: false` when it has no loader
   * (LOAD_DATABASE_URL), and the result stays as it was. A failed load leaves the file verified and
   * says why in `load` (loud in the log and the activity's failure); `ccfs-export load` loads it again.
   */
  async function loadVerified(result: ChunkResult): Promise<ChunkResult> {
    if (!result.file || !result.sha256) return result;
    try {
      const out = await loadChunk({
        exportId: input.exportId,
        chunk: chunk.index,
        file: result.file,
        sha256: result.sha256,
        timeZone: input.timeZone,
        ...(result.entries && { entries: result.entries.map((e) => ({ name: e.name, rows: e.rows })) }),
      });
      if (!out.configured) return result;
      const { configured: _configured, ...load } = out;
      const share =
        load.recordCdrShare === null
          ? ''
          : `, ${(load.recordCdrShare * 100).toFixed(1)} % of recordings with a CDR`;
      loadLine = `- loaded into PostgreSQL: ${load.rowsInFiles} rows in files = ${load.rowsInserted} inserted + ${load.rowsAlreadyPresent} already present${share}`;
      return { ...result, load };
    } catch (err) {
      const { message, type } = describeFailure(err, options.retry.maximumAttempts);
      loadLine = `- ⚠ load into PostgreSQL failed: ${message}`;
      log.error('the chunk could not be loaded into PostgreSQL', { error: message, errorType: type });
      return {
        ...result,
        load: {
          loadedAt: new Date().toISOString(),
          rowsInFiles: result.rows ?? 0,
          rowsInserted: 0,
          rowsAlreadyPresent: 0,
          recordRows: 0,
          recordsWithCdr: 0,
          recordCdrShare: null,
          ok: false,
          error: message,
          ...(type && { errorType: type }),
        },
      };
    }
  }

  const latency = (cb: CallbackPayload) => {
    const at =
      requestedAt.get(cb.responseId) ?? [...requestedAt].find(([id]) => callbackMatches(cb, id))?.[1];
    return at === undefined ? undefined : Math.max(0, Date.parse(cb.receivedAt) - at);
  };
  const usable = () =>
    callbacks.find(
      (cb) => !consumed.has(cb.billFileName) && knownIds().some((id) => callbackMatches(cb, id)),
    );

  async function finish(outcome: ChunkResult): Promise<ChunkResult> {
    // A verified file is loaded into PostgreSQL before it is recorded, when the worker has a loader.
    const result =
      outcome.state === 'verified' && patched('load-after-verify') ? await loadVerified(outcome) : outcome;
    enter('done');
    // Record the outcome even when the chunk is being cancelled, so the manifest says what was done.
    try {
      await CancellationScope.nonCancellable(() => saveChunkResult({ exportId: input.exportId, result }));
    } catch (err) {
      // The export must still hear that this chunk ended, or a later run of it would wait forever.
      await reportToExport({
        ...failed(
          `the chunk's record could not be saved: ${err instanceof Error ? err.message : String(err)}`,
        ),
        state: 'failed',
      });
      throw err;
    }
    await reportToExport(result);
    return result;
  }

  /**
   * Sends the result to the export by workflow ID (`chunkFinishedSignal`): the export run that started
   * this chunk may have continued as new since (chunks are started with parent-close policy ABANDON),
   * and a signal to the workflow ID reaches whichever run is current. An export that has closed (or a
   * chunk started without one) cannot be told, and need not be.
   */
  async function reportToExport(result: ChunkResult): Promise<void> {
    if (!patched('chunk-reports-to-export')) return;
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(exportWorkflowId(input.exportId)).signal(chunkFinishedSignal, result);
      } catch (err) {
        log.info('could not report the result to the export (closed?)', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
    });
  }

  /**
   * Tells the export what this chunk now waits for (once per request: the long waits), so the export's
   * details and `ccfs-export status` can say why it is not done — a chunk can wait 4 × 35 min for a
   * callback. Fire and forget: an export that has closed cannot be told, and need not be.
   */
  function reportProgress(): void {
    if (!patched('chunk-reports-progress')) return;
    const report: ChunkProgressReport = {
      index: chunk.index,
      phase,
      since,
      requests,
      maxRequests: options.maxRequestsPerChunk,
      responseId: responseIds.at(-1),
    };
    getExternalWorkflowHandle(exportWorkflowId(input.exportId))
      .signal(chunkProgressSignal, report)
      .catch((err: unknown) =>
        log.debug('could not report progress to the export', {
          error: err instanceof Error ? err.message : String(err),
        }),
      );
  }

  const failed = (
    error: string,
    errorType?: string,
    state: 'failed' | 'cancelled' = 'failed',
  ): ChunkResult => ({
    ...chunk,
    state,
    responseIds: probing ? knownIds() : responseIds,
    requests,
    downloadAttempts,
    error,
    errorType,
    // A retry of this chunk tries these requests' files before it requests again.
    ...(probing && requestLog.length > 0 && { requestLog: [...requestLog] }),
  });

  /** The chunk's result from a download's outcome; undefined when a probe found nothing yet. */
  function resultOf(
    out: DownloadChunkOutcome,
    foundBy: 'callback' | 'probe',
    billFileName: string,
  ): ChunkResult | undefined {
    const common = {
      ...chunk,
      responseIds: probing ? knownIds() : responseIds,
      requests,
      downloadAttempts,
      ...(probing && { requestLog: [...requestLog], foundBy }),
    };
    if (out.kind === 'not-found') return undefined;
    if (out.kind === 'empty') {
      log.info('the chunk has no data', { billFileName: out.billFileName, detail: out.detail });
      return { ...common, state: 'empty', billFileName: out.billFileName };
    }
    const { kind: _kind, ...file } = out;
    // verifyZip's ZIP-level warnings include each entry's, prefixed with its name.
    warnings = file.warnings ?? [];
    return { ...common, state: 'verified', ...file, billFileName: file.billFileName ?? billFileName };
  }

  /** Records the responseIds for routing callbacks by responseId (`CALLBACK_ROUTING=response-id`). */
  function recordResponseIds(): void {
    if (!patched('record-response-ids')) return;
    upsertSearchAttributes([
      { key: ResponseIdsKey, value: [...new Set(knownIds().map(normaliseResponseId))] },
    ]);
  }

  /** Tries the documented names of the latest requests' files; the result when one is there. */
  async function probe(): Promise<ChunkResult | undefined> {
    const names = requestLog
      .slice(-MAX_PROBED_REQUESTS)
      .reverse()
      .flatMap((r) => candidateFileNames(r, input.timeZone))
      .filter((n) => !consumed.has(n));
    if (names.length === 0) return undefined;
    probes++;
    probeNames = names;
    const back = { phase, since };
    enter('probing');
    const out = await downloadChunk.executeWithOptions(
      {
        ...ccfsActivity,
        startToCloseTimeout: '2 hours',
        summary: `probing for ${names.length} documented file name(s) (${range})`,
      },
      [{ exportId: input.exportId, chunk, billFileName: names[0]!, dataType: input.dataType, probe: names }],
    );
    if (out.kind === 'not-found') {
      // Still waiting for the callback, since the same time: the probe was an aside.
      if (back.phase === 'waiting-for-callback') ({ phase, since } = back);
      render();
      return undefined;
    }
    downloadAttempts++;
    return resultOf(out, 'probe', names[0]!);
  }

  try {
    if (probing && requestLog.length > 0) recordResponseIds();
    for (;;) {
      const cb = usable();
      if (cb) {
        enter('downloading');
        downloadAttempts++;
        try {
          const out = await downloadChunk.executeWithOptions(
            {
              ...ccfsActivity,
              startToCloseTimeout: '2 hours',
              summary: `downloadBillFile ${cb.billFileName} (${range})`,
            },
            [
              {
                exportId: input.exportId,
                chunk,
                billFileName: cb.billFileName,
                dataType: input.dataType,
                callbackLatencyMs: latency(cb),
              },
            ],
          );
          const result = resultOf(out, 'callback', cb.billFileName);
          if (result) return await finish(result);
          consumed.add(cb.billFileName);
          continue;
        } catch (err) {
          if (
            err instanceof ActivityFailure &&
            err.cause instanceof ApplicationFailure &&
            err.cause.type === FailureType.fileNotFound
          ) {
            // Expired or never generated: this file is gone, so request the chunk again.
            consumed.add(cb.billFileName);
            log.warn('bill file not found on download; requesting the chunk again', {
              billFileName: cb.billFileName,
            });
            continue;
          }
          throw err;
        }
      }
      // Before any new request: the file of an earlier one may be there although its callback was lost.
      if (probing && requestLog.length > 0) {
        const found = await probe();
        if (found) return await finish(found);
        if (usable()) continue; // a callback arrived during the probe
      }
      if (requests >= options.maxRequestsPerChunk) {
        const each = `${Math.round(options.callbackTimeoutMs / 1000)} s each`;
        const message =
          mode === 'none'
            ? `no file under its documented names after ${requests} request(s) of this chunk, probed every ${seconds(probeIntervalMs())} s for ${each} (CALLBACK_MODE=none); check that CC-FS generates the files and that this worker may download them, then retry the export`
            : `no usable callback${probing ? ' and no file under its documented names' : ''} after ${requests} request(s) of this chunk, ${each}; check that CC-FS can reach the callback URL (CALLBACK_BASE_URL), then retry the export`;
        return await finish(failed(message, FailureType.callbackTimeout));
      }
      requests++;
      enter('requesting');
      const before = Date.now();
      const answer = await requestChunk.executeWithOptions(
        {
          ...ccfsActivity,
          startToCloseTimeout: '2 minutes',
          summary: `queryBillData ${range}, request ${requests}`,
        },
        [
          {
            exportId: input.exportId,
            chunk,
            dataType: input.dataType,
            filters: input.filters,
            request: requests,
          },
        ],
      );
      if (answer.mode) mode = answer.mode;
      if (answer.kind === 'empty') {
        return await finish({
          ...chunk,
          state: 'empty',
          responseIds: probing ? knownIds() : responseIds,
          requests,
          ...(probing && { requestLog: [...requestLog] }),
        });
      }
      responseIds.push(answer.responseId);
      requestedAt.set(answer.responseId, Date.now());
      if (!probing) {
        enter('waiting-for-callback');
        const arrived = await condition(() => usable() !== undefined, options.callbackTimeoutMs, {
          summary: `waiting for the CC-FS callback for responseId ${answer.responseId}`,
        });
        if (!arrived)
          log.warn('no callback in time; requesting the chunk again', {
            responseId: answer.responseId,
            requests,
          });
        continue;
      }
      // The time the request was sent, not answered: the file's date is the day of the query.
      requestLog.push({ responseId: answer.responseId, requestedAt: new Date(before).toISOString() });
      recordResponseIds();
      probeNames = candidateFileNames(requestLog.at(-1)!, input.timeZone);
      enter(mode === 'none' ? 'probing' : 'waiting-for-callback');
      // Wait for a callback, probing every interval, for the callback timeout; then (above) probe once
      // more and request again. With CALLBACK_MODE=none the same budget goes to probes alone.
      const deadline = Date.now() + options.callbackTimeoutMs;
      for (;;) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        // A very long history: no more periodic probes, only the callback and the probe before a new request.
        const periodic = workflowInfo().historyLength < MAX_PROBING_HISTORY_EVENTS;
        const arrived = await condition(
          () => usable() !== undefined,
          periodic ? Math.min(probeIntervalMs(), remaining) : remaining,
          {
            summary:
              mode === 'none'
                ? `waiting ${seconds(probeIntervalMs())} s before the next probe`
                : `waiting for the CC-FS callback for responseId ${answer.responseId}`,
          },
        );
        if (arrived || deadline - Date.now() <= 0) break;
        const found = await probe();
        if (found) return await finish(found);
        if (usable()) break;
      }
      if (!usable())
        log.warn('no callback and no file in time; probing once more, then requesting the chunk again', {
          responseId: answer.responseId,
          requests,
          probes,
        });
    }
  } catch (err) {
    if (isCancellation(err)) {
      const result = failed('cancelled by request', FailureType.cancelled, 'cancelled');
      await CancellationScope.nonCancellable(() => saveChunkResult({ exportId: input.exportId, result }));
      await reportToExport(result);
      throw err;
    }
    const { message, type } = describeFailure(err, options.retry.maximumAttempts);
    if (type === FailureType.spanRefused) {
      // No record: the export splits this range and records the parts it requests instead.
      const result = failed(message, type);
      enter('done');
      await reportToExport(result);
      return result;
    }
    return await finish(failed(message, type));
  }
}
