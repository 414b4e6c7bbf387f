import { join } from 'node:path';
import { OutputStore } from '../../activities/output-store';
import { chunkLoadOf } from '../../activities/load';
import type { ExportChunkLoad, LoadExportWorkflowResult } from '../../workflows/definitions';
import type { Loader } from './loader';

export class ExportNotFoundError extends Error {
  override readonly name = 'ExportNotFoundError';
}

/**
 * Loads an export that already exists in OUTPUT_DIR straight into `loader`'s database (issue 17:
 * `ccfs-export load` with LOAD_DATABASE_URL in the CLI's own environment — another database than
 * the workers', or no workers at all): every verified chunk's ZIP in chunk order. The same result as
 * `loadExportWorkflow`, which does this on the workers. Idempotent: files already loaded there insert
 * nothing. A chunk that fails (mismatch, file missing) is reported and the others still load.
 * Throws ExportNotFoundError when OUTPUT_DIR has no such export.
 */
export async function loadExport(
  loader: Loader,
  outputDir: string,
  exportId: string,
  onChunk?: (c: ExportChunkLoad) => void,
): Promise<LoadExportWorkflowResult> {
  const output = new OutputStore(outputDir);
  const request = await output.readRequest(exportId);
  if (!request) throw new ExportNotFoundError(`no export ${exportId} in ${outputDir}`);
  const verified = [...(await output.readChunkResults(exportId)).values()]
    .filter((r) => r.state === 'verified' && r.file && r.sha256)
    .sort((a, b) => a.index - b.index);
  const out: LoadExportWorkflowResult = {
    exportId,
    chunks: [],
    totals: { chunks: verified.length, loaded: 0, rowsInFiles: 0, rowsInserted: 0, rowsAlreadyPresent: 0 },
    ok: true,
  };
  for (const r of verified) {
    const c: ExportChunkLoad = { index: r.index, file: r.file! };
    try {
      const loaded = await loader.load({
        path: join(output.exportDir(exportId), r.file!),
        sha256: r.sha256!,
        fileName: r.file!,
        exportId,
        chunk: r.index,
        tenant: request.tenant,
        timeZone: request.timeZone,
        ...(r.entries && { expectedRows: Object.fromEntries(r.entries.map((e) => [e.name, e.rows])) }),
      });
      c.load = chunkLoadOf(loaded, new Date().toISOString());
      out.totals.loaded++;
      out.totals.rowsInFiles += c.load.rowsInFiles;
      out.totals.rowsInserted += c.load.rowsInserted;
      out.totals.rowsAlreadyPresent += c.load.rowsAlreadyPresent;
      if (!c.load.ok) out.ok = false;
    } catch (err) {
      c.error = err instanceof Error ? err.message : String(err);
      out.ok = false;
    }
    out.chunks.push(c);
    onChunk?.(c);
  }
  return out;
}
