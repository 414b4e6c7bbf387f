import { ApplicationFailure, setCurrentDetails } from '@temporalio/workflow';
import { loadInputProblem } from '../domain/input-checks';
import { proxyMainActivities } from './activity-proxies';
import { refuseInvalidInput } from './refuse-input';
import { describeFailure } from './chunk-workflow';
import type { ExportChunkLoad, LoadExportWorkflowInput, LoadExportWorkflowResult } from './definitions';

/**
 * Loads an export that already exists (issue 17: `ccfs-export load`, `POST /exports/:id/load`) into
 * the workers' PostgreSQL database (LOAD_DATABASE_URL, worker configuration: the URL never enters this
 * history): every verified chunk's ZIP in order, each chunk's load saved in its record. Idempotent:
 * files already loaded there insert nothing. Fails (`LoaderNotConfigured`) when the worker has no
 * loader; a chunk whose load fails is reported in the result and the others still load.
 */
export async function loadExportWorkflow(input: LoadExportWorkflowInput): Promise<LoadExportWorkflowResult> {
  refuseInvalidInput(loadInputProblem(input));
  const small = { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 10 } } as const;
  const { listLoadableChunks, saveChunkLoad } = proxyMainActivities(small);
  const { loadChunk } = proxyMainActivities({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout: '1 minute',
    retry: {
      initialInterval: '1 second',
      maximumInterval: '1 minute',
      backoffCoefficient: 2,
      maximumAttempts: 8,
    },
  });
  const chunks = await listLoadableChunks({ exportId: input.exportId });
  const result: LoadExportWorkflowResult = {
    exportId: input.exportId,
    chunks: [],
    totals: { chunks: chunks.length, loaded: 0, rowsInFiles: 0, rowsInserted: 0, rowsAlreadyPresent: 0 },
    ok: true,
  };
  const render = (): void =>
    setCurrentDetails(
      [
        `**Loading export ${input.exportId} into PostgreSQL**`,
        '',
        `- chunks loaded: ${result.totals.loaded} of ${result.totals.chunks}`,
        `- rows in files: ${result.totals.rowsInFiles}`,
        `- rows inserted: ${result.totals.rowsInserted}`,
        `- rows already present: ${result.totals.rowsAlreadyPresent}`,
        `- failed chunks: ${result.chunks.filter((c) => c.error || c.load?.ok === false).length}`,
      ].join('\n'),
    );
  render();
  for (const chunk of chunks) {
    const entry: ExportChunkLoad = { index: chunk.chunk, file: chunk.file };
    try {
      const out = await loadChunk(chunk);
      if (!out.configured) {
        throw ApplicationFailure.nonRetryable(
          'the workers of this task queue have no loader: set LOAD_DATABASE_URL in their environment',
          'LoaderNotConfigured',
        );
      }
      const { configured: _configured, ...load } = out;
      entry.load = load;
      await saveChunkLoad({ exportId: input.exportId, chunk: chunk.chunk, load });
      result.totals.loaded++;
      result.totals.rowsInFiles += load.rowsInFiles;
      result.totals.rowsInserted += load.rowsInserted;
      result.totals.rowsAlreadyPresent += load.rowsAlreadyPresent;
      if (!load.ok) result.ok = false;
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'LoaderNotConfigured') throw err;
      entry.error = describeFailure(err, 8).message;
      result.ok = false;
    }
    result.chunks.push(entry);
    render();
  }
  return result;
}
