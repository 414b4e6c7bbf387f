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
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  callbackSignal,
  ccfsTaskQueue,
  chunkFinishedSignal,
  chunkProgressQuery,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  exportWorkflowId,
  FailureType,
  type CallbackPayload,
  type ChunkPhase,
  type ChunkResult,
  type ChunkWorkflowInput,
} from './definitions';

/** Whether a callback's file was produced for a responseId (hyphens in ids are not significant). */
export function callbackMatches(cb: CallbackPayload, responseId: string): boolean {
  const id = responseId.replace(/-/g, '').toLowerCase();
  return /^\d{8}_[0-9a-f]{32}\.zip$/.test(cb.billFileName) && cb.billFileName.slice(9, 41) === id;
}

const short = (wall: string) => wall.slice(0, 16);

/**
 * What a chunk's record says about the failure that ended it: the cause's type, and a message that
 * tells an operator what happened and what to do. A retryable failure that used up its attempts says
 * so, since the cause alone ("retry later") would suggest that the product is still retrying.
 */
export function describeFailure(err: unknown, maximumAttempts: number): { message: string; type?: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : cause instanceof TimeoutFailure ? FailureType.activityTimeout : undefined;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (!(err instanceof ActivityFailure)) return { message, type };
  const activity = err.activityType;
  if (err.retryState === 'MAXIMUM_ATTEMPTS_REACHED') {
    return { message: `${activity} gave up after ${maximumAttempts} attempts; last error: ${message}. Retry the export once the cause is fixed`, type };
  }
  if (cause instanceof TimeoutFailure) {
    return { message: `${activity} timed out (${cause.timeoutType}) and has no attempts left; retry the export`, type };
  }
  return { message, type };
}

/**
 * Exports one ≤ 3-day chunk: request it from CC-FS, wait for the callback signal, download and verify
 * the ZIP. A callback that does not come in time leads to a new request; a callback for any request
 * this chunk made is good data, however late; duplicates are harmless.
 */
export async function chunkWorkflow(input: ChunkWorkflowInput): Promise<ChunkResult> {
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

  setHandler(callbackSignal, (cb) => {
    // The endpoint checked the signature and the routing token; the file name must still belong to
    // the responseId it names, or a confused upstream could make us download someone else's file.
    if (!callbackMatches(cb, cb.responseId)) {
      rejected++;
      log.warn('rejected a callback whose billFileName does not match its responseId', { responseId: cb.responseId });
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
  }));

  function enter(next: ChunkPhase): void {
    phase = next;
    since = new Date().toISOString();
    render();
  }

  function render(): void {
    const waiting =
      phase === 'waiting-for-callback'
        ? `Waiting for the CC-FS callback for responseId \`${responseIds.at(-1)}\` since ${since} (timeout ${Math.round(options.callbackTimeoutMs / 60000)} min).`
        : `**${phase}** since ${since}.`;
    setCurrentDetails(
      [
        `### Chunk #${chunk.index}: ${chunk.begin} → ${chunk.end} (${input.timeZone})`,
        waiting,
        '',
        `- requests: ${requests} of ${options.maxRequestsPerChunk}`,
        `- responseIds: ${responseIds.join(', ') || '—'}`,
        `- callbacks: ${callbacks.length} received, ${rejected} rejected`,
        `- download attempts: ${downloadAttempts}`,
      ].join('\n'),
    );
  }

  const ccfsActivity: ActivityOptions = {
    taskQueue: ccfsTaskQueue(workflowInfo().taskQueue),
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
  const { requestChunk, downloadChunk } = proxyActivities<Activities>({ ...ccfsActivity, startToCloseTimeout: '2 minutes' });
  const { saveChunkResult } = proxyActivities<Activities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 10 },
  });

  const latency = (cb: CallbackPayload) => {
    const at = requestedAt.get(cb.responseId) ?? [...requestedAt].find(([id]) => callbackMatches(cb, id))?.[1];
    return at === undefined ? undefined : Math.max(0, Date.parse(cb.receivedAt) - at);
  };
  const usable = () => callbacks.find((cb) => !consumed.has(cb.billFileName) && responseIds.some((id) => callbackMatches(cb, id)));

  async function finish(result: ChunkResult): Promise<ChunkResult> {
    enter('done');
    // Record the outcome even when the chunk is being cancelled, so the manifest says what was done.
    try {
      await CancellationScope.nonCancellable(() => saveChunkResult({ exportId: input.exportId, result }));
    } catch (err) {
      // The export must still hear that this chunk ended, or a later run of it would wait forever.
      await reportToExport({ ...failed(`the chunk's record could not be saved: ${err instanceof Error ? err.message : String(err)}`), state: 'failed' });
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
        log.info('could not report the result to the export (closed?)', { error: err instanceof Error ? err.message : String(err) });
      }
    });
  }

  const failed = (error: string, errorType?: string, state: 'failed' | 'cancelled' = 'failed'): ChunkResult => ({
    ...chunk,
    state,
    responseIds,
    requests,
    downloadAttempts,
    error,
    errorType,
  });

  try {
    for (;;) {
      const cb = usable();
      if (cb) {
        enter('downloading');
        downloadAttempts++;
        try {
          const file = await downloadChunk.executeWithOptions(
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
          return await finish({
            ...chunk,
            state: 'verified',
            responseIds,
            requests,
            downloadAttempts,
            billFileName: cb.billFileName,
            ...file,
          });
        } catch (err) {
          if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === FailureType.fileNotFound) {
            // Expired or never generated: this file is gone, so request the chunk again.
            consumed.add(cb.billFileName);
            log.warn('bill file not found on download; requesting the chunk again', { billFileName: cb.billFileName });
            continue;
          }
          throw err;
        }
      }
      if (requests >= options.maxRequestsPerChunk) {
        return await finish(
          failed(
            `no usable callback after ${requests} request(s) of this chunk, ${Math.round(options.callbackTimeoutMs / 1000)} s each; check that CC-FS can reach the callback URL (CALLBACK_BASE_URL), then retry the export`,
            FailureType.callbackTimeout,
          ),
        );
      }
      requests++;
      enter('requesting');
      const answer = await requestChunk.executeWithOptions(
        { ...ccfsActivity, startToCloseTimeout: '2 minutes', summary: `queryBillData ${range}, request ${requests}` },
        [{ exportId: input.exportId, chunk, dataType: input.dataType, filters: input.filters, request: requests }],
      );
      if (answer.kind === 'empty') {
        return await finish({ ...chunk, state: 'empty', responseIds, requests });
      }
      responseIds.push(answer.responseId);
      requestedAt.set(answer.responseId, Date.now());
      enter('waiting-for-callback');
      const arrived = await condition(() => usable() !== undefined, options.callbackTimeoutMs, {
        summary: `waiting for the CC-FS callback for responseId ${answer.responseId}`,
      });
      if (!arrived) log.warn('no callback in time; requesting the chunk again', { responseId: answer.responseId, requests });
    }
  } catch (err) {
    if (isCancellation(err)) {
      const result = failed('cancelled by request', FailureType.cancelled, 'cancelled');
      await CancellationScope.nonCancellable(() => saveChunkResult({ exportId: input.exportId, result }));
      await reportToExport(result);
      throw err;
    }
    const { message, type } = describeFailure(err, options.retry.maximumAttempts);
    return await finish(failed(message, type));
  }
}
