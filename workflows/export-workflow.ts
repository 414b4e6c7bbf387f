import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { planChunks } from '../domain/chunking';
import { exportInputProblem } from '../domain/input-checks';
import { refuseInvalidInput } from './refuse-input';
import { proxyMainActivities } from './activity-proxies';
import { chunkWorkflow } from './chunk-workflow';
import {
  chunkFinishedSignal,
  chunkProgressSignal,
  chunkWorkflowId,
  exportStatusQuery,
  FailureType,
  HALTING_FAILURE_TYPES,
  type ChunkRange,
  type ChunkResult,
  type ChunkState,
  type ExportResult,
  type ExportSpan,
  type ExportState,
  type ExportStatus,
  type ExportWorkflowInput,
  type LedgerEntry,
  type WaitingChunk,
} from './definitions';
import { parseWallTime, wallToInstant } from '../domain/wall-time';
import {
  DataTypeKey,
  ExportIdKey,
  ExportStateKey,
  KindKey,
  RangeBeginKey,
  RangeEndKey,
  TenantKey,
} from './search-attributes';

// Small file activities: a minute is ample, and it is also how long a worker that died in the middle
// of one holds the export up before another worker runs it again.
const { prepareExport, writeManifest, saveChunkResults } = proxyMainActivities({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 20, maximumInterval: '1 minute' },
});

const STATES: ChunkState[] = ['pending', 'running', 'verified', 'empty', 'failed', 'cancelled'];

function countStates(ledger: LedgerEntry[]): Record<ChunkState, number> {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<ChunkState, number>;
  for (const entry of ledger) counts[entry.state]++;
  return counts;
}

function totals(ledger: LedgerEntry[]): ExportStatus['totals'] {
  return {
    chunks: ledger.length,
    bytes: ledger.reduce((n, e) => n + (e.bytes ?? 0), 0),
    rows: ledger.reduce((n, e) => n + (e.rows ?? 0), 0),
  };
}

/** The patch that made chunks outlive export runs (and report by signal) and spans adapt to refusals. */
export const CHUNKS_OUTLIVE_RUNS_PATCH = 'chunks-outlive-export-runs';

/**
 * Below this span the export stops splitting a refused range: a CC-FS that refuses an hour refuses for
 * another reason than the range's length, and halving further would only multiply requests.
 */
export const SPAN_FLOOR_SECONDS = 3600;

/** How long a cancelled export waits for its running chunks to say they stopped before it records them cancelled. */
const CANCEL_WAIT_MS = 5 * 60_000;

/** Wall-clock seconds of a range: what CC-FS's span check sees (docs/ccfs-protocol.md §3). */
const wallSeconds = (r: { begin: string; end: string }) => parseWallTime(r.end) - parseWallTime(r.begin);

/** `2024-03-01 → 03-04`: a chunk's range, short. */
const shortRange = (r: { begin: string; end: string }) =>
  `${r.begin.slice(0, 10)} → ${r.end.slice(0, 4) === r.begin.slice(0, 4) ? r.end.slice(5, 10) : r.end.slice(0, 10)}`;

/** `71:59:59`, `3 d`: a span for people. */
export function formatSpan(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

/** What one running chunk waits for, in words: its phase from its last report, else since when it runs. */
function describeWaitingChunk(c: WaitingChunk): string {
  const p = c.progress;
  const head = `#${c.index} ${shortRange(c)}`;
  if (!p) return `${head} running since ${c.startedAt?.slice(11, 16) ?? '?'} UTC`;
  const request = `(request ${p.requests} of ${p.maxRequests})`;
  const since = p.since.slice(11, 16);
  if (p.phase === 'waiting-for-callback')
    return `${head} waiting for the CC-FS callback for responseId ${p.responseId ?? '?'} since ${since} UTC ${request}`;
  return `${head} ${p.phase} since ${since} UTC ${request}`;
}

/**
 * One export: splits the range into abutting chunks of at most `chunkSeconds` in the tenant's zone,
 * runs each as a child `chunkWorkflow` with bounded concurrency, keeps a ledger of chunk states and the
 * manifest on disk, and continues-as-new before its history grows large, so a ten-year backfill is one
 * export. Chunks outlive the run that started them (parent-close policy ABANDON) and report their
 * result by `chunkFinishedSignal`, so continue-as-new never waits for a slow chunk. A range CC-FS
 * refuses as too long (`CcfsSpanRefused`) is split, and later chunks use the shorter span.
 * Runs of the previous release (children awaited by result) replay on `legacyExportWorkflow`.
 */
export async function exportWorkflow(input: ExportWorkflowInput): Promise<ExportResult> {
  // Input that would make planning throw fails the run, naming the field, instead of retrying the
  // workflow task forever (no command for valid input: runs in flight replay unchanged).
  refuseInvalidInput(exportInputProblem(input));
  if (input.chunksOutliveRuns || patched(CHUNKS_OUTLIVE_RUNS_PATCH)) return await runExport(input);
  return await legacyExportWorkflow(input);
}

async function runExport(input: ExportWorkflowInput): Promise<ExportResult> {
  const { request } = input;
  const { options } = request;
  const ledger: LedgerEntry[] = input.ledger ? input.ledger.map((e) => ({ ...e })) : [];
  const span: ExportSpan = input.span ?? {
    plannedSeconds: options.chunkSeconds,
    usedSeconds: options.chunkSeconds,
    refused: [],
  };
  let nextIndex = input.nextIndex ?? ledger.reduce((n, e) => Math.max(n, e.index + 1), 0);
  let state: ExportState = 'running';
  let manifestPath: string | undefined;
  // Bumped by every change the main loop waits for (a chunk finished, started, split).
  let version = 0;
  let starting = 0;

  const running = () => ledger.filter((e) => e.state === 'running');

  /** Running chunks, oldest first, when the export can start no other chunk now: what it waits for. */
  function waitingFor(): WaitingChunk[] | undefined {
    const active = running();
    if (active.length === 0) return undefined;
    const canStart =
      !halted && active.length < options.maxChunksInFlight && ledger.some((e) => e.state === 'pending');
    if (canStart) return undefined;
    return active
      .sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''))
      .slice(0, 5)
      .map(({ index, begin, end, startedAt, progress }) => ({ index, begin, end, startedAt, progress }));
  }

  function status(): ExportStatus {
    return {
      exportId: request.exportId,
      workflowId: workflowInfo().workflowId,
      state,
      request,
      counts: countStates(ledger),
      totals: totals(ledger),
      chunks: ledger,
      manifestPath,
      span,
      waitingFor: state === 'running' ? waitingFor() : undefined,
    };
  }

  function render(): void {
    const counts = countStates(ledger);
    const t = totals(ledger);
    const failed = ledger.filter((e) => e.state === 'failed').slice(0, 10);
    const lines = [
      `### Export \`${request.exportId}\`: ${state}`,
      `${request.dataType} ${request.begin} → ${request.end} (${request.timeZone}), ${ledger.length} chunks, ${t.rows} rows, ${t.bytes} bytes`,
      '',
      // A list, not a table: the Temporal UI renders Markdown tables without cell padding.
      ...STATES.map((s) => `- ${s}: ${counts[s]}`),
    ];
    if (span.refused.length > 0) {
      const last = span.refused.at(-1)!;
      lines.push(
        '',
        `**Span:** CC-FS refused ${span.refused.length} range(s) as too long (last: #${last.index} ${last.begin} → ${last.end}, ${formatSpan(last.seconds)}); chunks now span at most ${formatSpan(span.usedSeconds)} (planned ${formatSpan(span.plannedSeconds)}).`,
      );
    }
    const waiting = state === 'running' ? waitingFor() : undefined;
    if (waiting) {
      const n = running().length;
      lines.push(
        '',
        `**Waiting for ${n} chunk${n === 1 ? '' : 's'}:**`,
        // A blank line first: the Temporal UI's Markdown does not start a list right after a line.
        '',
        ...waiting.map((c) => `- ${describeWaitingChunk(c)}`),
      );
    } else {
      const active = running().slice(0, 10);
      if (active.length > 0)
        lines.push('', `Running: ${active.map((e) => `#${e.index} ${e.begin.slice(0, 10)}`).join(', ')}`);
    }
    if (failed.length > 0)
      lines.push(
        '',
        '**Failed:**',
        '',
        ...failed.map((e) => `- #${e.index} ${e.begin} → ${e.end}: ${e.error ?? ''}`),
      );
    const warned = ledger.filter((e) => e.warnings?.length).slice(0, 10);
    if (warned.length > 0)
      lines.push(
        '',
        '**Warnings** (verified; the data is kept, read the manifest):',
        '',
        ...warned.map(
          (e) =>
            `- #${e.index} ${e.begin} → ${e.end}: ${e.warnings![0]}${e.warnings!.length > 1 ? ` (+${e.warnings!.length - 1} more)` : ''}`,
        ),
      );
    setCurrentDetails(lines.join('\n'));
  }

  function setState(next: ExportState): void {
    state = next;
    upsertSearchAttributes([{ key: ExportStateKey, value: next }]);
    render();
  }

  // Manifest writes are serialised and coalesced: one in flight, another only if something changed.
  // Not cancellable: a write in flight when the export is cancelled must finish, or the manifest
  // would miss the last chunks and the rejected write would go unhandled.
  let dirty = false;
  let writing: Promise<void> | undefined;
  function flushManifest(): Promise<void> {
    dirty = true;
    writing ??= CancellationScope.nonCancellable(async () => {
      try {
        while (dirty) {
          dirty = false;
          manifestPath = (await writeManifest({ exportId: request.exportId, state })).manifestPath;
        }
      } finally {
        writing = undefined;
      }
    });
    return writing;
  }
  /** A progress write: a failure is logged (the next write or the final one will say it again). */
  function flushManifestInBackground(): void {
    flushManifest().catch((err: unknown) =>
      log.warn('manifest write failed', { error: err instanceof Error ? err.message : String(err) }),
    );
  }

  // Records the export writes itself (refused ranges, chunks not attempted), in order and not
  // cancellable; awaited before the run continues as new or ends.
  let saves: Promise<void> = Promise.resolve();
  function saveRecords(results: ChunkResult[]): void {
    saves = saves.then(() =>
      CancellationScope.nonCancellable(() => saveChunkResults({ exportId: request.exportId, results })).then(
        () => flushManifestInBackground(),
        (err: unknown) =>
          log.warn('saving chunk records failed', {
            error: err instanceof Error ? err.message : String(err),
          }),
      ),
    );
  }

  // Set by the first failure that every further chunk would hit too (bad credentials, locked IP).
  let halted: { index: number; errorType: string; error: string } | undefined;

  /** Records the chunks a halted export will not start, so the ledger and the manifest both say why. */
  function skipRemaining(): void {
    if (!halted) return;
    const reason = halted;
    const skipped = ledger.filter((e) => e.state === 'pending');
    if (skipped.length === 0) return;
    const error = `not attempted: chunk ${reason.index} failed with ${reason.errorType}, which every chunk would hit (${reason.error}); fix it, then retry the export`;
    for (const entry of skipped)
      Object.assign(entry, { state: 'failed', error, errorType: FailureType.notAttempted });
    saveRecords(
      skipped.map((e): ChunkResult => ({
        index: e.index,
        begin: e.begin,
        end: e.end,
        state: 'failed',
        responseIds: [],
        requests: 0,
        error,
        errorType: FailureType.notAttempted,
      })),
    );
    render();
  }

  /**
   * Re-plans every run of abutting pending chunks that holds a chunk longer than the span in use, with
   * fresh indices (chunk workflow IDs of an export are never reused for another range). Chunks stay
   * abutting in the tenant's zone: a run is re-planned from its first begin to its last end.
   */
  function replanPending(): void {
    const out: LedgerEntry[] = [];
    let group: LedgerEntry[] = [];
    const flush = () => {
      if (group.length > 0 && group.some((e) => wallSeconds(e) > span.usedSeconds)) {
        const planned = planChunks({
          begin: group[0]!.begin,
          end: group.at(-1)!.end,
          timeZone: request.timeZone,
          chunkSeconds: span.usedSeconds,
        });
        for (const c of planned)
          out.push({ index: nextIndex++, begin: c.begin, end: c.end, state: 'pending' });
      } else out.push(...group);
      group = [];
    };
    for (const entry of ledger) {
      if (entry.state !== 'pending') {
        flush();
        out.push(entry);
        continue;
      }
      if (entry.previousRequests) {
        // A retried chunk keeps its index and range (its earlier requests' files are for that range),
        // unless CC-FS would refuse it.
        flush();
        if (wallSeconds(entry) > span.usedSeconds) {
          group.push(entry);
          flush();
        } else out.push(entry);
        continue;
      }
      if (group.length > 0 && group.at(-1)!.end !== entry.begin) flush();
      group.push(entry);
    }
    flush();
    ledger.splice(0, ledger.length, ...out);
  }

  /**
   * CC-FS refused a chunk's range as too long. The first refusal at the span in use tries one second
   * less (a CC-FS that reads "three days" as "less than three days"), further refusals halve it, down
   * to `SPAN_FLOOR_SECONDS`. A range longer than the span in use (planned before CC-FS refused
   * another) is split without learning anything new.
   */
  function onSpanRefused(entry: LedgerEntry, result: ChunkResult): void {
    const seconds = wallSeconds(entry);
    if (seconds <= span.usedSeconds) {
      const next = span.usedSeconds < span.plannedSeconds ? Math.floor(seconds / 2) : seconds - 1;
      if (next < SPAN_FLOOR_SECONDS) {
        const error = `CC-FS refused this ${formatSpan(seconds)} range as too long, and the export does not split below ${formatSpan(SPAN_FLOOR_SECONDS)}: CC-FS said "${result.error ?? result.errorType}"; check the range and CC-FS's limits, then retry the export`;
        Object.assign(entry, {
          state: 'failed',
          error,
          errorType: FailureType.spanRefused,
          requests: result.requests,
        });
        saveRecords([
          {
            ...result,
            index: entry.index,
            begin: entry.begin,
            end: entry.end,
            state: 'failed',
            error,
            errorType: FailureType.spanRefused,
          },
        ]);
        log.error('CC-FS refuses even the smallest span', { chunk: entry.index, seconds });
        return;
      }
      span.usedSeconds = next;
      log.warn('CC-FS refused a range as too long; using a shorter span', {
        chunk: entry.index,
        refusedSeconds: seconds,
        spanSeconds: next,
      });
    }
    span.refused.push({ index: entry.index, begin: entry.begin, end: entry.end, seconds });
    if (span.refused.length > 20) span.refused.shift();
    saveRecords([
      {
        ...result,
        index: entry.index,
        begin: entry.begin,
        end: entry.end,
        state: 'failed',
        errorType: FailureType.spanRefused,
        error: `CC-FS refused this ${formatSpan(seconds)} range as too long (${result.error ?? 'no description'}); split into ranges of at most ${formatSpan(span.usedSeconds)}`,
        spanSeconds: span.usedSeconds,
      },
    ]);
    Object.assign(entry, { state: 'pending', startedAt: undefined, progress: undefined });
    replanPending();
  }

  /** A chunk's result, from its signal or (in the run that started it) its completion; the first one counts. */
  function applyResult(result: ChunkResult): void {
    const entry = ledger.find(
      (e) => e.index === result.index && e.begin === result.begin && e.end === result.end,
    );
    if (entry?.state !== 'running') return; // a duplicate, or a chunk of an earlier export run
    version++;
    if (result.state === 'failed' && result.errorType === FailureType.spanRefused)
      onSpanRefused(entry, result);
    else {
      Object.assign(entry, {
        state: result.state,
        requests: result.requests,
        bytes: result.bytes,
        rows: result.rows,
        error: result.error,
        errorType: result.errorType,
        // Content an operator should look at (a kind missing, quotes that never close): shown by
        // status, the CLI and the details below, not only in the manifest.
        warnings: result.warnings?.length ? result.warnings : undefined,
        progress: undefined,
      });
      if (
        result.state === 'failed' &&
        result.errorType &&
        HALTING_FAILURE_TYPES.includes(result.errorType) &&
        !halted
      ) {
        halted = { index: entry.index, errorType: result.errorType, error: result.error ?? result.errorType };
        log.error('stopping the export: this failure would repeat for every chunk', {
          chunk: entry.index,
          errorType: result.errorType,
        });
        skipRemaining();
      }
    }
    render();
    flushManifestInBackground();
  }

  /** A chunk workflow that ended without a result (terminated, failed outright) or could not start. */
  function applyFailure(entry: LedgerEntry, err: unknown): void {
    if (entry.state !== 'running') return;
    version++;
    if (isCancellation(err) || (err instanceof ChildWorkflowFailure && isCancellation(err.cause)))
      entry.state = 'cancelled';
    else {
      entry.state = 'failed';
      entry.error =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    entry.progress = undefined;
    render();
    flushManifestInBackground();
  }

  const instant = (wall: string) => new Date(wallToInstant(parseWallTime(wall), request.timeZone) * 1000);

  function launch(entry: LedgerEntry): void {
    const previousRequests = entry.previousRequests;
    // Given to the chunk; the ledger need not carry them across continue-as-new.
    delete entry.previousRequests;
    entry.state = 'running';
    entry.startedAt = new Date().toISOString();
    entry.progress = undefined;
    starting++;
    version++;
    render();
    // Not cancellable: cancelling the export cancels its chunks explicitly (by workflow ID), the same
    // way for chunks of this run and of earlier runs.
    CancellationScope.nonCancellable(() =>
      startChild(chunkWorkflow, {
        workflowId: chunkWorkflowId(request.exportId, entry.index),
        // The chunk outlives this run: continue-as-new does not wait for it, and it reports its
        // result to whichever run of the export is current.
        parentClosePolicy: 'ABANDON',
        args: [
          {
            exportId: request.exportId,
            chunk: { index: entry.index, begin: entry.begin, end: entry.end },
            timeZone: request.timeZone,
            dataType: request.dataType,
            filters: request.filters,
            options,
            ...(previousRequests && { previousRequests }),
          },
        ],
        staticSummary: `${request.exportId} chunk #${entry.index}: ${request.dataType} ${entry.begin} → ${entry.end}`,
        staticDetails: `Chunk #${entry.index} of export \`${request.exportId}\`, ${request.timeZone}.`,
        typedSearchAttributes: [
          { key: ExportIdKey, value: request.exportId },
          { key: TenantKey, value: request.tenant },
          { key: DataTypeKey, value: request.dataType },
          { key: RangeBeginKey, value: instant(entry.begin) },
          { key: RangeEndKey, value: instant(entry.end) },
          { key: KindKey, value: 'chunk' },
        ],
      }),
    ).then(
      (handle) => {
        starting--;
        version++;
        handle.result().then(
          (result) => applyResult(result),
          (err: unknown) => applyFailure(entry, err),
        );
      },
      (err: unknown) => {
        starting--;
        applyFailure(entry, err);
      },
    );
  }

  /**
   * The first ledger of a run that did not continue from another (a new export, or `retry` of a
   * finished one). Chunk records on disk are the truth: verified and empty chunks are kept, failed or
   * cancelled chunks whose earlier requests are known run again with the same index and range (so
   * they can fetch those requests' files first), and only the gaps between records are planned. A
   * previous run may have split ranges CC-FS refused: records that do not match the plan of the
   * request were planned with a learned span, and the longest of those that CC-FS answered is a span
   * it accepts, so the gaps use it. When every record matches the plan, the plan's indices are kept.
   */
  function firstLedger(prepared: {
    done: Array<Pick<LedgerEntry, 'index' | 'begin' | 'end' | 'state' | 'requests' | 'bytes' | 'rows'>>;
    previousRequests?: Array<
      Pick<LedgerEntry, 'index' | 'begin' | 'end'> & {
        requests: NonNullable<LedgerEntry['previousRequests']>;
      }
    >;
    spanSeconds?: number;
  }): void {
    const plan = planChunks({
      begin: request.begin,
      end: request.end,
      timeZone: request.timeZone,
      chunkSeconds: options.chunkSeconds,
    });
    const records: LedgerEntry[] = [
      ...prepared.done.map(({ index, begin, end, state, requests, bytes, rows }): LedgerEntry => ({
        index,
        begin,
        end,
        state,
        requests,
        bytes,
        rows,
      })),
      ...(prepared.previousRequests ?? []).map(({ index, begin, end, requests }): LedgerEntry => ({
        index,
        begin,
        end,
        state: 'pending',
        previousRequests: requests,
      })),
    ];
    const fits = (r: ChunkRange) => plan[r.index]?.begin === r.begin && plan[r.index]?.end === r.end;
    const accepted = records.filter((r) => r.state !== 'pending' && !fits(r)).map(wallSeconds);
    const learned = Math.min(
      prepared.spanSeconds ?? span.usedSeconds,
      accepted.length > 0 ? Math.max(...accepted) : span.usedSeconds,
    );
    if (learned >= SPAN_FLOOR_SECONDS && learned < span.usedSeconds) span.usedSeconds = learned;
    nextIndex = Math.max(plan.length, ...records.map((r) => r.index + 1));
    let cursor = request.begin;
    const gap = (end: string) => {
      if (end <= cursor) return;
      // Where nothing was split, the gap is planned as before, with the plan's own indices.
      const planned = plan.filter((c) => c.begin >= cursor && c.end <= end);
      if (
        span.usedSeconds === span.plannedSeconds &&
        planned[0]?.begin === cursor &&
        planned.at(-1)?.end === end
      ) {
        ledger.push(...planned.map((c): LedgerEntry => ({ ...c, state: 'pending' })));
        return;
      }
      for (const c of planChunks({
        begin: cursor,
        end,
        timeZone: request.timeZone,
        chunkSeconds: span.usedSeconds,
      })) {
        ledger.push({ index: nextIndex++, begin: c.begin, end: c.end, state: 'pending' });
      }
    };
    // Kept records come first where two overlap (a verified range over a stale failed one).
    const sorted = [...records].sort(
      (a, b) =>
        a.begin.localeCompare(b.begin) || Number(a.state === 'pending') - Number(b.state === 'pending'),
    );
    for (const r of sorted) {
      if (r.begin < cursor || r.end > request.end) continue; // overlaps a record already taken
      gap(r.begin);
      ledger.push(r);
      cursor = r.end;
    }
    gap(request.end);
    replanPending();
  }

  // Before the first command: a chunk that finished while the previous run was continuing as new has
  // signalled this workflow ID, and its signal waits for this handler. Not earlier: setHandler delivers
  // buffered signals at once, and their handler uses the helpers (and `let`s) declared above.
  setHandler(chunkFinishedSignal, (result) => applyResult(result));
  setHandler(chunkProgressSignal, (report) => {
    const entry = ledger.find((e) => e.index === report.index);
    if (entry?.state !== 'running') return;
    entry.progress = report;
    render();
  });
  setHandler(exportStatusQuery, () => status());

  if (!input.ledger) {
    // Until prepareExport has read the records, the status shows the plan of the request.
    ledger.push(
      ...planChunks({
        begin: request.begin,
        end: request.end,
        timeZone: request.timeZone,
        chunkSeconds: options.chunkSeconds,
      }).map((c): LedgerEntry => ({ ...c, state: 'pending' })),
    );
    const prepared = await prepareExport({ request });
    manifestPath = prepared.manifestPath;
    ledger.length = 0;
    firstLedger(prepared);
  }
  setState('running');

  // Only a run that did something (started a chunk, took a result) continues as new: a history that
  // is already long when the run starts could otherwise continue as new forever without progress.
  const shouldContinueAsNew = () => {
    const info = workflowInfo();
    return version > 0 && (info.continueAsNewSuggested || info.historyLength >= options.maxHistoryEvents);
  };

  try {
    for (;;) {
      const active = running().length;
      const next = halted ? undefined : ledger.find((e) => e.state === 'pending');
      if (!next && active === 0 && starting === 0) break;
      if (shouldContinueAsNew()) {
        // Chunks still running go on and report to the next run: nothing here waits for them.
        await condition(() => starting === 0);
        await saves;
        await flushManifest();
        await condition(allHandlersFinished);
        log.info('continuing as new', {
          historyLength: workflowInfo().historyLength,
          running: running().length,
        });
        return await continueAsNew<typeof exportWorkflow>({
          request,
          ledger,
          chunksOutliveRuns: true,
          span,
          nextIndex,
        });
      }
      if (next && active < options.maxChunksInFlight) {
        launch(next);
        continue;
      }
      const seen = version;
      await condition(() => version !== seen || shouldContinueAsNew());
    }
    await saves;
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      await condition(() => starting === 0);
      // Chunks of earlier runs are not this run's children: each is cancelled by its workflow ID.
      await Promise.all(
        running().map((e) =>
          getExternalWorkflowHandle(chunkWorkflowId(request.exportId, e.index))
            .cancel()
            .catch((cancelErr: unknown) =>
              log.info('chunk could not be cancelled (finished?)', {
                chunk: e.index,
                error: cancelErr instanceof Error ? cancelErr.message : String(cancelErr),
              }),
            ),
        ),
      );
      // Each chunk records "cancelled" (or its result, if it finished first) and signals it.
      await condition(() => running().length === 0, CANCEL_WAIT_MS);
      for (const entry of ledger)
        if (entry.state === 'pending' || entry.state === 'running') entry.state = 'cancelled';
      await saves;
      setState('cancelled');
      await flushManifest();
    });
    throw err;
  }

  setState(
    ledger.some((e) => e.state === 'failed' || e.state === 'cancelled')
      ? 'completed_with_failures'
      : 'completed',
  );
  await flushManifest();
  if (!manifestPath) throw ApplicationFailure.nonRetryable('manifest was not written', 'ManifestMissing');
  return {
    exportId: request.exportId,
    state,
    counts: countStates(ledger),
    totals: totals(ledger),
    manifestPath,
    failedChunks: ledger.flatMap(({ index, begin, end, state, error, errorType }) =>
      state === 'failed' || state === 'cancelled' ? [{ index, begin, end, state, error, errorType }] : [],
    ),
  };
}

/**
 * The export as the previous release ran it, kept unchanged so its histories replay: children are
 * awaited by result, and continue-as-new first drains every running chunk.
 */
async function legacyExportWorkflow(input: ExportWorkflowInput): Promise<ExportResult> {
  const { request } = input;
  const { options } = request;
  const ledger: LedgerEntry[] =
    input.ledger ??
    planChunks({
      begin: request.begin,
      end: request.end,
      timeZone: request.timeZone,
      chunkSeconds: options.chunkSeconds,
    }).map((c): LedgerEntry => ({ ...c, state: 'pending' }));
  let state: ExportState = 'running';
  let manifestPath: string | undefined;

  setHandler(exportStatusQuery, () => status());

  function status(): ExportStatus {
    return {
      exportId: request.exportId,
      workflowId: workflowInfo().workflowId,
      state,
      request,
      counts: countStates(ledger),
      totals: totals(ledger),
      chunks: ledger,
      manifestPath,
    };
  }

  function render(): void {
    const counts = countStates(ledger);
    const t = totals(ledger);
    const active = ledger.filter((e) => e.state === 'running').slice(0, 10);
    const failed = ledger.filter((e) => e.state === 'failed').slice(0, 10);
    const lines = [
      `### Export \`${request.exportId}\`: ${state}`,
      `${request.dataType} ${request.begin} → ${request.end} (${request.timeZone}), ${ledger.length} chunks, ${t.rows} rows, ${t.bytes} bytes`,
      '',
      // A list, not a table: the Temporal UI renders Markdown tables without cell padding.
      ...STATES.map((s) => `- ${s}: ${counts[s]}`),
    ];
    if (active.length > 0)
      lines.push('', `Running: ${active.map((e) => `#${e.index} ${e.begin.slice(0, 10)}`).join(', ')}`);
    if (failed.length > 0)
      lines.push(
        '',
        '**Failed:**',
        ...failed.map((e) => `- #${e.index} ${e.begin} → ${e.end}: ${e.error ?? ''}`),
      );
    setCurrentDetails(lines.join('\n'));
  }

  function setState(next: ExportState): void {
    state = next;
    upsertSearchAttributes([{ key: ExportStateKey, value: next }]);
    render();
  }

  // Manifest writes are serialised and coalesced: one in flight, another only if something changed.
  // Not cancellable: a write in flight when the export is cancelled must finish, or the manifest
  // would miss the last chunks and the rejected write would go unhandled.
  let dirty = false;
  let writing: Promise<void> | undefined;
  function flushManifest(): Promise<void> {
    dirty = true;
    writing ??= CancellationScope.nonCancellable(async () => {
      try {
        while (dirty) {
          dirty = false;
          manifestPath = (await writeManifest({ exportId: request.exportId, state })).manifestPath;
        }
      } finally {
        writing = undefined;
      }
    });
    return writing;
  }
  /** A progress write: a failure is logged (the next write or the final one will say it again). */
  function flushManifestInBackground(): void {
    flushManifest().catch((err: unknown) =>
      log.warn('manifest write failed', { error: err instanceof Error ? err.message : String(err) }),
    );
  }

  // Set by the first failure that every further chunk would hit too (bad credentials, locked IP).
  let halted: { index: number; errorType: string; error: string } | undefined;

  if (!input.ledger) {
    const prepared = await prepareExport({ request });
    manifestPath = prepared.manifestPath;
    for (const done of prepared.done) {
      const entry = ledger[done.index];
      if (entry && entry.begin === done.begin && entry.end === done.end) {
        Object.assign(entry, {
          state: done.state,
          requests: done.requests,
          bytes: done.bytes,
          rows: done.rows,
        });
      }
    }
  }
  setState('running');

  const instant = (wall: string) => new Date(wallToInstant(parseWallTime(wall), request.timeZone) * 1000);
  const inFlight = new Set<number>();
  const shouldContinueAsNew = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= options.maxHistoryEvents;
  };

  async function runChunk(entry: LedgerEntry): Promise<void> {
    entry.state = 'running';
    render();
    try {
      const result: ChunkResult = await (
        await startChild(chunkWorkflow, {
          workflowId: chunkWorkflowId(request.exportId, entry.index),
          args: [
            {
              exportId: request.exportId,
              chunk: { index: entry.index, begin: entry.begin, end: entry.end },
              timeZone: request.timeZone,
              dataType: request.dataType,
              filters: request.filters,
              options,
            },
          ],
          staticSummary: `${request.exportId} chunk ${entry.index + 1} of ${ledger.length}: ${request.dataType} ${entry.begin} → ${entry.end}`,
          staticDetails: `Chunk ${entry.index + 1} of ${ledger.length} of export \`${request.exportId}\`, ${request.timeZone}.`,
          typedSearchAttributes: [
            { key: ExportIdKey, value: request.exportId },
            { key: TenantKey, value: request.tenant },
            { key: DataTypeKey, value: request.dataType },
            { key: RangeBeginKey, value: instant(entry.begin) },
            { key: RangeEndKey, value: instant(entry.end) },
            { key: KindKey, value: 'chunk' },
          ],
        })
      ).result();
      Object.assign(entry, {
        state: result.state,
        requests: result.requests,
        bytes: result.bytes,
        rows: result.rows,
        error: result.error,
        errorType: result.errorType,
      });
      if (
        result.state === 'failed' &&
        result.errorType &&
        HALTING_FAILURE_TYPES.includes(result.errorType) &&
        !halted
      ) {
        halted = { index: entry.index, errorType: result.errorType, error: result.error ?? result.errorType };
        log.error('stopping the export: this failure would repeat for every chunk', {
          chunk: entry.index,
          errorType: result.errorType,
        });
      }
    } catch (err) {
      if (isCancellation(err) || (err instanceof ChildWorkflowFailure && isCancellation(err.cause))) {
        entry.state = 'cancelled';
      } else {
        entry.state = 'failed';
        entry.error =
          err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      }
    } finally {
      inFlight.delete(entry.index);
      render();
      flushManifestInBackground();
    }
  }

  /** Records the chunks a halted export will not start, so the ledger and the manifest both say why. */
  async function skipRemaining(): Promise<void> {
    if (!halted) return;
    const reason = halted;
    const skipped = ledger.filter((e) => e.state === 'pending');
    if (skipped.length === 0) return;
    const error = `not attempted: chunk ${reason.index} failed with ${reason.errorType}, which every chunk would hit (${reason.error}); fix it, then retry the export`;
    for (const entry of skipped)
      Object.assign(entry, { state: 'failed', error, errorType: FailureType.notAttempted });
    await saveChunkResults({
      exportId: request.exportId,
      results: skipped.map((e): ChunkResult => ({
        index: e.index,
        begin: e.begin,
        end: e.end,
        state: 'failed',
        responseIds: [],
        requests: 0,
        error,
        errorType: FailureType.notAttempted,
      })),
    });
    render();
  }

  try {
    for (const entry of ledger) {
      if (entry.state !== 'pending' && entry.state !== 'running') continue;
      await condition(() => inFlight.size < options.maxChunksInFlight || halted !== undefined);
      if (halted || shouldContinueAsNew()) break;
      inFlight.add(entry.index);
      void runChunk(entry);
    }
    await condition(() => inFlight.size === 0);
    await skipRemaining();
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      await condition(() => inFlight.size === 0);
      for (const entry of ledger)
        if (entry.state === 'pending' || entry.state === 'running') entry.state = 'cancelled';
      setState('cancelled');
      await flushManifest();
    });
    throw err;
  }

  if (ledger.some((e) => e.state === 'pending' || e.state === 'running')) {
    // Drained: no child runs across the boundary, so the next run owns every remaining chunk.
    await flushManifest();
    await condition(allHandlersFinished);
    log.info('continuing as new', { historyLength: workflowInfo().historyLength });
    return await continueAsNew<typeof exportWorkflow>({ request, ledger });
  }

  setState(
    ledger.some((e) => e.state === 'failed' || e.state === 'cancelled')
      ? 'completed_with_failures'
      : 'completed',
  );
  await flushManifest();
  if (!manifestPath) throw ApplicationFailure.nonRetryable('manifest was not written', 'ManifestMissing');
  const result: ExportResult = {
    exportId: request.exportId,
    state,
    counts: countStates(ledger),
    totals: totals(ledger),
    manifestPath,
    failedChunks: ledger.flatMap(({ index, begin, end, state, error, errorType }) =>
      state === 'failed' || state === 'cancelled' ? [{ index, begin, end, state, error, errorType }] : [],
    ),
  };
  return result;
}
