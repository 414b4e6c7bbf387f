import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import { buildExportRequest, type ExportOptionsInput } from '../../lib/export-input';
import type { DataType, ExportResult } from '../../workflows/definitions';
import { exportWorkflowId } from '../../workflows/definitions';
import type { Product } from './stack';

let n = 0;

export interface TimedExport {
  exportId: string;
  wallMs: number;
  result: ExportResult;
  /** Epoch ms of the start call, for lining up with the simulator's records. */
  startedAt: number;
}

/** Starts an export through ExportService (as the API and CLI do) and waits for its result. */
export async function timedExport(
  product: Product,
  input: { from: string; to: string; dataType?: DataType; options?: ExportOptionsInput; label: string },
): Promise<TimedExport> {
  const exportId = `bench-${input.label}-${Date.now().toString(36)}-${(n++).toString(36)}`;
  const request = buildExportRequest(
    {
      exportId,
      from: input.from,
      to: input.to,
      dataType: input.dataType ?? 'call',
      timeZone: 'UTC',
      options: input.options,
    },
    { timeZone: 'UTC', origin: 'bench' },
  );
  const startedAt = Date.now();
  const t0 = performance.now();
  await product.exports.start(request);
  const result = await product.exports.result(exportId);
  return { exportId, wallMs: performance.now() - t0, result, startedAt };
}

export interface RunHistory {
  runId: string;
  events: number;
  continuedAsNew: boolean;
}

/** Every run of a workflow ID (continue-as-new chain), oldest first, with its history length. */
export async function runHistories(client: Client, workflowId: string): Promise<RunHistory[]> {
  const runs: RunHistory[] = [];
  let handle = client.workflow.getHandle(workflowId);
  const first = (await handle.describe()).runId;
  // Walk from the latest run back through each run's first event (its continuedExecutionRunId).
  let runId: string | undefined = first;
  const seen = new Set<string>();
  while (runId && !seen.has(runId)) {
    seen.add(runId);
    handle = client.workflow.getHandle(workflowId, runId);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const last = events.at(-1);
    runs.unshift({
      runId,
      events: events.length,
      continuedAsNew: Boolean(last?.workflowExecutionContinuedAsNewEventAttributes),
    });
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
  }
  return runs;
}

export const exportHistories = (client: Client, exportId: string) =>
  runHistories(client, exportWorkflowId(exportId));
