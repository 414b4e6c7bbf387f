import {
  ApplicationFailure,
  ChildWorkflowFailure,
  defineSearchAttributeKey,
  WorkflowExecutionAlreadyStartedError,
} from '@temporalio/common';
import {
  isCancellation,
  setCurrentDetails,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { MAX_CHUNK_SECONDS } from '../domain/chunking';
import { dailyInputProblem, dayInputProblem } from '../domain/input-checks';
import { refuseInvalidInput } from './refuse-input';
import { dayInstants, dayRange } from '../domain/daily';
import { previousLocalDay } from '../domain/wall-time';
import {
  DAY_INCOMPLETE,
  dailyExportId,
  daySearchAttributes,
  dayWorkflowId,
  exportWorkflowId,
  WorkflowType,
  type DailyExportInput,
  type DailyExportResult,
  type DayExportInput,
  type DayExportResult,
  type DayMemo,
  type DayState,
  type ExportRequest,
  type ExportResult,
} from './definitions';
import type { exportWorkflow } from './export-workflow';
import {
  DataTypeKey,
  DayKey,
  ExportIdKey,
  ExportStateKey,
  KindKey,
  RangeBeginKey,
  RangeEndKey,
  TenantKey,
} from './search-attributes';

/**
 * Daily exports driven by a Temporal Schedule. Two workflows, one role each:
 *
 * - `dailyExportWorkflow` is the schedule's action. It turns the action's *scheduled* time (the
 *   `TemporalScheduledStartTime` search attribute the schedule sets) into the previous local day of
 *   the tenant, so a catch-up run after an outage or a backfill run exports the day it stands for,
 *   never "yesterday as of now". It then starts that day's `dayExportWorkflow`.
 * - `dayExportWorkflow` has one workflow ID per tenant, data type and day and is the day's lock: it
 *   runs the export as a child `exportWorkflow` and completes only when the day is verified or empty.
 *   It is started with `ALLOW_DUPLICATE_FAILED_ONLY`, so the server itself guarantees that a day is
 *   never exported twice at once (a running ID cannot be started again), that a verified or empty
 *   day is not exported again (its last run completed), and that a failed, cancelled or terminated
 *   day is exported again by the next run, backfill or catch-up. `force` starts it with
 *   `ALLOW_DUPLICATE` instead (still never while it runs).
 *
 * Both live in one file because they are two halves of one mechanism and the lock is useless without
 * its caller; each is a separate workflow type, so the UI and the coverage query tell them apart.
 */

// IDs, inputs, results and the day's search attributes live in definitions.ts (clients share them);
// the calendar in domain/daily.ts.

/** Set by the server on every workflow a schedule starts (the nominal time of the action). */
export const ScheduledStartTimeKey = defineSearchAttributeKey('TemporalScheduledStartTime', 'DATETIME');

/**
 * Fails the run on input no day can be derived from (a bad zone, data type or day), naming the field:
 * a plain error there would retry the workflow task forever. Valid input issues no command here, so
 * runs in flight replay unchanged.
 */
function scheduledTime(): Date | undefined {
  return workflowInfo().typedSearchAttributes.get(ScheduledStartTimeKey);
}

const message = (err: unknown): string => {
  let e: unknown = err;
  // The innermost message says what went wrong (e.g. the CC-FS answer), the wrappers only where.
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
};

/**
 * The action of a daily schedule: exports the local day before the action's scheduled time through
 * that day's `dayExportWorkflow`, or reports why it did not (the day is verified, empty or running).
 */
export async function dailyExportWorkflow(input: DailyExportInput): Promise<DailyExportResult> {
  refuseInvalidInput(dailyInputProblem(input));
  const scheduled = scheduledTime();
  if (!scheduled) {
    throw ApplicationFailure.nonRetryable(
      'dailyExportWorkflow derives its day from the schedule that starts it and was started without TemporalScheduledStartTime; start dayExportWorkflow for a given day instead',
      'NotScheduled',
    );
  }
  const { day } = previousLocalDay(scheduled, input.timeZone);
  const workflowId = dayWorkflowId(input.tenant, input.dataType, day);
  setCurrentDetails(
    `Scheduled for ${scheduled.toISOString()}: exports ${day} (${input.timeZone}) through \`${workflowId}\`.`,
  );
  let handle;
  try {
    handle = await startChild(dayExportWorkflow, {
      workflowId,
      args: [{ ...input, day, origin: `schedule:${input.scheduleId ?? workflowInfo().workflowId}` }],
      // The server enforces the policy described at the top of this file.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      // A cancelled or terminated schedule run asks the day to stop cleanly (manifest written, partial
      // files removed) rather than killing it mid-download.
      parentClosePolicy: 'REQUEST_CANCEL',
      typedSearchAttributes: daySearchAttributes({ ...input, day }),
      memo: { timeZone: input.timeZone, scheduleId: input.scheduleId } satisfies DayMemo,
      staticSummary: `day ${day} of ${input.tenant}/${input.dataType} (${input.timeZone})`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const reason = `day ${day} is already verified, empty or being exported (${workflowId}); use backfill --force to export it again`;
      setCurrentDetails(`Skipped: ${reason}.`);
      return { outcome: 'skipped', day, dayWorkflowId: workflowId, reason };
    }
    throw err;
  }
  try {
    const result = await handle.result();
    return { outcome: 'exported', day, dayWorkflowId: workflowId, result };
  } catch (err) {
    if (err instanceof ChildWorkflowFailure && !isCancellation(err.cause)) {
      // Fail the schedule's run too, so the schedule's recent actions show the bad day.
      throw ApplicationFailure.nonRetryable(`day ${day} was not exported: ${message(err)}`, DAY_INCOMPLETE);
    }
    throw err;
  }
}

/**
 * One local day of one tenant and data type, run under the day's workflow ID: exports
 * `[D 00:00:00, D+1 00:00:00)` in the tenant's zone as a child `exportWorkflow` (one chunk: a day is
 * at most 25 hours) and completes only when every chunk is verified or empty.
 */
export async function dayExportWorkflow(input: DayExportInput): Promise<DayExportResult> {
  refuseInvalidInput(dayInputProblem(input));
  const { begin, end } = dayRange(input.day);
  // A forced run writes a fresh directory: the verified files of the earlier run stay untouched, and
  // the export does not reuse them (an export resumes the chunks it finds on disk).
  const stamp = input.force
    ? workflowInfo()
        .startTime.toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')
    : undefined;
  const exportId = dailyExportId(input.tenant, input.dataType, input.day, stamp);
  const childId = exportWorkflowId(exportId);
  upsertSearchAttributes([{ key: ExportIdKey, value: exportId }]);
  upsertMemo({ exportId } satisfies Partial<DayMemo>);

  const request: ExportRequest = {
    exportId,
    tenant: input.tenant,
    begin,
    end,
    timeZone: input.timeZone,
    dataType: input.dataType,
    filters: input.filters,
    // Always the largest chunk: a day of 23, 24 or 25 hours is one chunk, so a day is one CC-FS query,
    // and a re-run of a failed day finds the same chunk plan on disk.
    options: { ...input.options, chunkSeconds: MAX_CHUNK_SECONDS },
    origin: input.origin,
  };
  const range = dayInstants(input.day, input.timeZone);
  const fail = (error: string): ApplicationFailure => {
    upsertSearchAttributes([{ key: ExportStateKey, value: 'failed' satisfies DayState }]);
    upsertMemo({ error } satisfies Partial<DayMemo>);
    setCurrentDetails(`### Day ${input.day}: failed\n${error}`);
    return ApplicationFailure.nonRetryable(error, DAY_INCOMPLETE);
  };
  setCurrentDetails(
    `### Day ${input.day}: exporting\n${begin} → ${end} (${input.timeZone}) as \`${childId}\`${input.force ? ' (forced)' : ''}.`,
  );

  let result: ExportResult;
  try {
    const child = await startChild<typeof exportWorkflow>(WorkflowType.export, {
      workflowId: childId,
      args: [{ request }],
      // The day workflow is the lock; its export may run again after a failure and then resumes on
      // disk, fetching only the chunks that are not verified yet.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      parentClosePolicy: 'REQUEST_CANCEL',
      staticSummary: `${request.dataType} daily export ${input.day} (${request.timeZone}), tenant ${request.tenant}`,
      staticDetails: [
        `**Export** \`${exportId}\` requested by ${request.origin}${input.force ? ' (forced re-export)' : ''}`,
        '',
        `- day: ${input.day}, ${begin} → ${end}, ${request.timeZone}`,
        `- dataType: ${request.dataType}`,
        `- filters: ${JSON.stringify(request.filters)}`,
      ].join('\n'),
      // The same attributes as an export started through the API (ExportService.start), plus the day.
      typedSearchAttributes: [
        { key: ExportIdKey, value: exportId },
        { key: TenantKey, value: request.tenant },
        { key: DataTypeKey, value: request.dataType },
        { key: RangeBeginKey, value: range.begin },
        { key: RangeEndKey, value: range.end },
        { key: ExportStateKey, value: 'running' },
        { key: KindKey, value: 'export' },
        { key: DayKey, value: input.day },
      ],
    });
    result = await child.result();
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw fail(`export ${exportId} is already running outside this day's workflow`);
    }
    if (isCancellation(err) || (err instanceof ChildWorkflowFailure && isCancellation(err.cause))) throw err;
    throw fail(`export ${exportId} failed: ${message(err)}`);
  }

  if (result.state !== 'completed') {
    const first = result.failedChunks[0];
    throw fail(
      `export ${exportId} ended ${result.state}: ${result.counts.failed} failed and ${result.counts.cancelled} cancelled chunk(s)${first ? `; ${first.begin} → ${first.end}: ${first.error ?? 'no detail'}` : ''}`,
    );
  }
  const state: DayState = result.counts.verified > 0 ? 'verified' : 'empty';
  upsertSearchAttributes([{ key: ExportStateKey, value: state }]);
  setCurrentDetails(
    `### Day ${input.day}: ${state}\n${result.totals.rows} rows, ${result.totals.bytes} bytes in \`${exportId}\`.`,
  );
  return {
    day: input.day,
    begin,
    end,
    timeZone: input.timeZone,
    state,
    exportId,
    exportWorkflowId: childId,
    manifestPath: result.manifestPath,
    totals: result.totals,
  };
}
