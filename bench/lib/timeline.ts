import type { Client } from '@temporalio/client';
import { chunkWorkflowId, exportWorkflowId } from '../../workflows/definitions';
import { runHistories } from './exports';

type HistoryEvent = NonNullable<
  Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']
>[number];

export interface TimedEvent {
  /** `activityTaskScheduled(requestChunk)`, `workflowExecutionSignaled`, … */
  label: string;
  at: number;
}

function eventMs(e: HistoryEvent): number {
  const t = e.eventTime;
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}

/** Each event of a history as a label (its type, with the activity or child type) and a server time. */
export function timedEvents(events: HistoryEvent[]): TimedEvent[] {
  const activityOf = new Map<string, string>();
  return events.map((e) => {
    const key = Object.keys(e).find(
      (k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k],
    );
    const kind = key ? key.replace(/EventAttributes$/, '') : 'unknown';
    let label = kind;
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      activityOf.set(String(e.eventId), scheduled.activityType?.name ?? '?');
      label = `${kind}(${scheduled.activityType?.name ?? '?'})`;
    }
    const ref =
      e.activityTaskStartedEventAttributes?.scheduledEventId ??
      e.activityTaskCompletedEventAttributes?.scheduledEventId ??
      e.activityTaskFailedEventAttributes?.scheduledEventId;
    if (ref !== undefined && ref !== null) label = `${kind}(${activityOf.get(String(ref)) ?? '?'})`;
    return { label, at: eventMs(e) };
  });
}

export interface Phase {
  /** `from → to` event labels. */
  phase: string;
  meanMs: number;
  totalMs: number;
  count: number;
}

/** Time between consecutive events, summed by the pair of labels, biggest total first. */
export function phases(histories: TimedEvent[][]): Phase[] {
  const acc = new Map<string, { total: number; count: number }>();
  for (const events of histories) {
    for (let i = 1; i < events.length; i++) {
      const key = `${events[i - 1]!.label} → ${events[i]!.label}`;
      const a = acc.get(key) ?? { total: 0, count: 0 };
      a.total += events[i]!.at - events[i - 1]!.at;
      a.count++;
      acc.set(key, a);
    }
  }
  return [...acc.entries()]
    .map(([phase, { total, count }]) => ({ phase, totalMs: total, count, meanMs: total / count }))
    .sort((a, b) => b.totalMs - a.totalMs);
}

export interface ExportTimeline {
  /** Chunk workflows' histories: phases within a chunk. */
  chunk: Phase[];
  /** Export workflow's histories (every run): phases between chunks. */
  parent: Phase[];
  /** Chunk workflow durations (start → completion), ms. */
  chunkDurations: number[];
  chunkEvents: TimedEvent[][];
}

/** Where an export's time went, from the server-side timestamps of its workflow histories. */
export async function exportTimeline(
  client: Client,
  exportId: string,
  chunks: number,
): Promise<ExportTimeline> {
  const chunkEvents: TimedEvent[][] = [];
  for (let i = 0; i < chunks; i++) {
    const history = await client.workflow.getHandle(chunkWorkflowId(exportId, i)).fetchHistory();
    chunkEvents.push(timedEvents(history.events ?? []));
  }
  const parentEvents: TimedEvent[][] = [];
  for (const run of await runHistories(client, exportWorkflowId(exportId))) {
    const history = await client.workflow.getHandle(exportWorkflowId(exportId), run.runId).fetchHistory();
    parentEvents.push(timedEvents(history.events ?? []));
  }
  return {
    chunk: phases(chunkEvents),
    parent: phases(parentEvents),
    chunkDurations: chunkEvents.map((e) => e.at(-1)!.at - e[0]!.at),
    chunkEvents,
  };
}
