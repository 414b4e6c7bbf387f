import { join } from 'node:path';
import { OutputStore } from '../../activities/output-store';
import type { ChunkLoad } from '../../workflows/definitions';
import { chunkLoadOf } from '../../activities/load';
import type { Loader } from './loader';

/** One chunk of `loadExport`: its index and file, and its load (or why it was not loaded). */
export interface ExportChunkLoad {
  index: number;
  file?: string;
  state: string;
  load?: ChunkLoad;
  error?: string;
}

export interface ExportLoad {
  exportId: string;
  chunks: ExportChunkLoad[];
  totals: {
    chunks: number;
    loaded: number;
    rowsInFiles: number;
    rowsInserted: number;
    rowsAlreadyPresent: number;
  };
  /** Every verified chunk loaded and reconciled. */
  ok: boolean;
}

export class ExportNotFoundError extends Error {
  override readonly name = 'ExportNotFoundError';
}

/**
 * Loads an export that already exists in OUTPUT_DIR (issue 17, `ccfs-export load` and
 * `POST /exports/:id/load`): every verified chunk's ZIP, in chunk order, into `loader`'s database —
 * made before the loader was configured, or into another database. Idempotent: files already loaded
 * there insert nothing. A chunk that fails (mismatch, file missing) is reported and the others still
 * load. Throws ExportNotFoundError when OUTPUT_DIR has no such export.
 */
export async function loadExport(
  loader: Loader,
  outputDir: string,
  exportId: string,
  onChunk?: (c: ExportChunkLoad) => void,
): Promise<ExportLoad> {
  const output = new OutputStore(outputDir);
  const request = await output.readRequest(exportId);
  if (!request) throw new ExportNotFoundError(`no export ${exportId} in ${outputDir}`);
  const results = [...(await output.readChunkResults(exportId)).values()].sort((a, b) => a.index - b.index);
  const out: ExportLoad = {
    exportId,
    chunks: [],
    totals: { chunks: results.length, loaded: 0, rowsInFiles: 0, rowsInserted: 0, rowsAlreadyPresent: 0 },
    ok: true,
  };
  for (const r of results) {
    const c: ExportChunkLoad = { index: r.index, state: r.state, ...(r.file && { file: r.file }) };
    if (r.state === 'verified' && r.file && r.sha256) {
      try {
        const loaded = await loader.load({
          path: join(output.exportDir(exportId), r.file),
          sha256: r.sha256,
          fileName: r.file,
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
    }
    out.chunks.push(c);
    onChunk?.(c);
  }
  return out;
}
