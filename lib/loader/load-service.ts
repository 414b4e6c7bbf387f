import type { Client, WorkflowHandle } from '@temporalio/client';
import type { loadExportWorkflow } from '../../workflows/load-export-workflow';
import {
  type LoadExportWorkflowResult,
  EXPORT_ID_PATTERN,
  loadExportWorkflowId,
  WorkflowType,
} from '../../workflows/definitions';

/**
 * Starts the load of an existing export on the workers (issue 17): `loadExportWorkflow`, ID
 * `ccfs-export/<exportId>/load`. A load already running is joined rather than started twice; a
 * finished one may be run again (idempotent: it inserts what is missing). Used by the CLI and the API.
 * Throws RangeError for an export ID outside EXPORT_ID_PATTERN.
 */
export async function startExportLoad(
  client: Client,
  taskQueue: string,
  exportId: string,
): Promise<WorkflowHandle<typeof loadExportWorkflow>> {
  if (!EXPORT_ID_PATTERN.test(exportId))
    throw new RangeError(`invalid export ID ${JSON.stringify(exportId)}`);
  return client.workflow.start<typeof loadExportWorkflow>(WorkflowType.loadExport, {
    taskQueue,
    workflowId: loadExportWorkflowId(exportId),
    args: [{ exportId }],
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `load export ${exportId} into PostgreSQL`,
  });
}

/** Starts (or joins) the load and waits for its result. */
export async function loadExportAndWait(
  client: Client,
  taskQueue: string,
  exportId: string,
): Promise<LoadExportWorkflowResult> {
  return (await startExportLoad(client, taskQueue, exportId)).result();
}
