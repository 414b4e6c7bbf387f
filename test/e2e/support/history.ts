import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

/**
 * Reads activity attempts out of a workflow's history, so tests can assert the failure chain and
 * the number of attempts where retries matter. Temporal writes an activity's Started event only when
 * the activity closes: it carries the last attempt's number and the failure of the attempt before it.
 */

type Failure = temporal.api.failure.v1.IFailure;

export interface FailureSummary {
  message: string;
  /** ApplicationFailure type, or `timeout:<TYPE>` for a timeout, or `cancelled`. */
  type: string | undefined;
}

export interface ActivityRun {
  activityType: string;
  /** Attempt number of the attempt that closed the activity. */
  attempts: number;
  /** The failure of the attempt before the last one. */
  lastFailure: FailureSummary | undefined;
  /** Identity of the worker that ran the last attempt. */
  identity: string | undefined;
  outcome: 'completed' | 'failed' | 'timed-out' | 'cancelled' | 'open';
  /** The final failure (failed, timed out). */
  failure: FailureSummary | undefined;
  retryState: string | undefined;
}

const TIMEOUT_TYPES: Record<number, string> = {
  1: 'START_TO_CLOSE',
  2: 'SCHEDULE_TO_START',
  3: 'SCHEDULE_TO_CLOSE',
  4: 'HEARTBEAT',
};

export function summarizeFailure(failure: Failure | null | undefined): FailureSummary | undefined {
  if (!failure) return undefined;
  let type: string | undefined;
  if (failure.applicationFailureInfo) type = failure.applicationFailureInfo.type ?? undefined;
  else if (failure.timeoutFailureInfo)
    type = `timeout:${TIMEOUT_TYPES[Number(failure.timeoutFailureInfo.timeoutType)] ?? String(failure.timeoutFailureInfo.timeoutType)}`;
  else if (failure.canceledFailureInfo) type = 'cancelled';
  return { message: failure.message ?? '', type };
}

/** Every activity the workflow scheduled, in order, optionally only of one type. */
export async function activityRuns(
  client: Client,
  workflowId: string,
  activityType?: string,
): Promise<ActivityRun[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const runs = new Map<string, ActivityRun>();
  for (const event of history.events ?? []) {
    const id = String(event.eventId);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      runs.set(id, {
        activityType: scheduled.activityType?.name ?? '',
        attempts: 0,
        lastFailure: undefined,
        identity: undefined,
        outcome: 'open',
        failure: undefined,
        retryState: undefined,
      });
      continue;
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const run = runs.get(String(started.scheduledEventId));
      if (run)
        Object.assign(run, {
          attempts: started.attempt ?? 0,
          lastFailure: summarizeFailure(started.lastFailure),
          identity: started.identity ?? undefined,
        });
      continue;
    }
    const closed =
      (event.activityTaskCompletedEventAttributes && {
        outcome: 'completed' as const,
        a: event.activityTaskCompletedEventAttributes,
      }) ||
      (event.activityTaskFailedEventAttributes && {
        outcome: 'failed' as const,
        a: event.activityTaskFailedEventAttributes,
      }) ||
      (event.activityTaskTimedOutEventAttributes && {
        outcome: 'timed-out' as const,
        a: event.activityTaskTimedOutEventAttributes,
      }) ||
      (event.activityTaskCanceledEventAttributes && {
        outcome: 'cancelled' as const,
        a: event.activityTaskCanceledEventAttributes,
      });
    if (closed) {
      const run = runs.get(String(closed.a.scheduledEventId));
      if (!run) continue;
      run.outcome = closed.outcome;
      if ('failure' in closed.a) run.failure = summarizeFailure(closed.a.failure);
      if ('retryState' in closed.a && closed.a.retryState !== undefined && closed.a.retryState !== null)
        run.retryState = String(closed.a.retryState);
    }
  }
  return [...runs.values()].filter((r) => activityType === undefined || r.activityType === activityType);
}
