import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { planChunks } from '../domain/chunking';
import { chunkWorkflow } from './chunk-workflow';
import {
  chunkWorkflowId,
  exportStatusQuery,
  FailureType,
  HALTING_FAILURE_TYPES,
  type ChunkResult,
  type ChunkState,
  type ExportResult,
  type ExportState,
  type ExportStatus,
  type ExportWorkflowInput,
  type LedgerEntry,
} from './definitions';
import { parseWallTime, wallToInstant } from '../domain/wall-time';
import { DataTypeKey, ExportIdKey, ExportStateKey, KindKey, RangeBeginKey, RangeEndKey, TenantKey } from './search-attributes';

// Small file activities: a minute is ample, and it is also how long a worker that died in the middle
// of one holds the export up before another worker runs it again.
const { prepareExport, writeManifest, saveChunkResults } = proxyActivities<Activities>({
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

/**
 * One export: splits the range into abutting ≤ 3-day chunks in the tenant's zone, runs each as a
 * child `chunkWorkflow` with bounded concurrency, keeps a ledger of chunk states and the manifest on
 * disk, and continues-as-new before its history grows large, so a ten-year backfill is one export.
 */
export async function exportWorkflow(input: ExportWorkflowInput): Promise<ExportResult> {
  const { request } = input;
  const { options } = request;
  const ledger: LedgerEntry[] =
    input.ledger ??
    planChunks({ begin: request.begin, end: request.end, timeZone: request.timeZone, chunkSeconds: options.chunkSeconds }).map(
      (c): LedgerEntry => ({ ...c, state: 'pending' }),
    );
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
    if (active.length > 0) lines.push('', `Running: ${active.map((e) => `#${e.index} ${e.begin.slice(0, 10)}`).join(', ')}`);
    if (failed.length > 0) lines.push('', '**Failed:**', ...failed.map((e) => `- #${e.index} ${e.begin} → ${e.end}: ${e.error ?? ''}`));
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
    flushManifest().catch((err: unknown) => log.warn('manifest write failed', { error: err instanceof Error ? err.message : String(err) }));
  }

  // Set by the first failure that every further chunk would hit too (bad credentials, locked IP).
  let halted: { index: number; errorType: string; error: string } | undefined;

  if (!input.ledger) {
    const prepared = await prepareExport({ request });
    manifestPath = prepared.manifestPath;
    for (const done of prepared.done) {
      const entry = ledger[done.index];
      if (entry && entry.begin === done.begin && entry.end === done.end) {
        Object.assign(entry, { state: done.state, requests: done.requests, bytes: done.bytes, rows: done.rows });
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
      if (result.state === 'failed' && result.errorType && HALTING_FAILURE_TYPES.includes(result.errorType) && !halted) {
        halted = { index: entry.index, errorType: result.errorType, error: result.error ?? result.errorType };
        log.error('stopping the export: this failure would repeat for every chunk', { chunk: entry.index, errorType: result.errorType });
      }
    } catch (err) {
      if (isCancellation(err) || (err instanceof ChildWorkflowFailure && isCancellation(err.cause))) {
        entry.state = 'cancelled';
      } else {
        entry.state = 'failed';
        entry.error = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
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
    for (const entry of skipped) Object.assign(entry, { state: 'failed', error, errorType: FailureType.notAttempted });
    await saveChunkResults({
      exportId: request.exportId,
      results: skipped.map(
        (e): ChunkResult => ({ index: e.index, begin: e.begin, end: e.end, state: 'failed', responseIds: [], requests: 0, error, errorType: FailureType.notAttempted }),
      ),
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
      for (const entry of ledger) if (entry.state === 'pending' || entry.state === 'running') entry.state = 'cancelled';
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

  setState(ledger.some((e) => e.state === 'failed' || e.state === 'cancelled') ? 'completed_with_failures' : 'completed');
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
