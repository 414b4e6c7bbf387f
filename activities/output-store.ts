import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { planChunks } from '../domain/chunking';
import type { ChunkResult, ExportRequest, ExportState } from '../workflows/definitions';
import { EXPORT_ID_PATTERN } from '../workflows/definitions';

/**
 * The export's directory: `OUTPUT_DIR/<exportId>/` with the ZIPs (named so a listing sorts by time),
 * `request.json`, `manifest.json`, one record per finished chunk under `chunks/`, and downloads in
 * progress under `.partial/`. Every path is built from validated values only.
 */

export const MANIFEST_FILE = 'manifest.json';
export const PARTIAL_DIR = '.partial';

export interface Manifest {
  exportId: string;
  state: ExportState;
  updatedAt: string;
  request: ExportRequest;
  /** `pending`: no record yet (not started, or still running; in a cancelled export: never started). */
  totals: { chunks: number; verified: number; empty: number; failed: number; cancelled: number; pending: number; bytes: number; rows: number };
  chunks: Array<ChunkResult | { index: number; begin: string; end: string; state: 'pending' }>;
}

const compact = (wall: string) => wall.replace(/-/g, '').replace(' ', 'T').replace(/:/g, '');

export class OutputStore {
  constructor(readonly root: string) {}

  exportDir(exportId: string): string {
    if (!EXPORT_ID_PATTERN.test(exportId)) throw new Error(`export ID "${exportId}" is not a safe name`);
    return join(this.root, exportId);
  }

  manifestPath(exportId: string): string {
    return join(this.exportDir(exportId), MANIFEST_FILE);
  }

  partialDir(exportId: string): string {
    return join(this.exportDir(exportId), PARTIAL_DIR);
  }

  /** `20240301T000000-20240304T000000_call_record.zip`: a plain listing sorts by time. */
  chunkFileName(chunk: { begin: string; end: string }, dataType: string): string {
    return `${compact(chunk.begin)}-${compact(chunk.end)}_${dataType}.zip`;
  }

  chunkRecordPath(exportId: string, index: number): string {
    return join(this.exportDir(exportId), 'chunks', `${String(index).padStart(4, '0')}.json`);
  }

  /** A unique temporary path for one download attempt. */
  async partialPath(exportId: string, index: number): Promise<string> {
    const dir = this.partialDir(exportId);
    await mkdir(dir, { recursive: true });
    return join(dir, `${String(index).padStart(4, '0')}-${randomBytes(6).toString('hex')}.zip.part`);
  }

  async readRequest(exportId: string): Promise<ExportRequest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.exportDir(exportId), 'request.json'), 'utf8')) as ExportRequest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async writeRequest(request: ExportRequest): Promise<void> {
    await writeJsonAtomic(join(this.exportDir(request.exportId), 'request.json'), request);
  }

  async readChunkResults(exportId: string): Promise<Map<number, ChunkResult>> {
    const dir = join(this.exportDir(exportId), 'chunks');
    const results = new Map<number, ChunkResult>();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return results;
      throw err;
    }
    for (const name of names.filter((n) => /^\d{4,}\.json$/.test(n))) {
      const result = JSON.parse(await readFile(join(dir, name), 'utf8')) as ChunkResult;
      results.set(result.index, result);
    }
    return results;
  }

  async writeChunkResult(exportId: string, result: ChunkResult): Promise<void> {
    const path = this.chunkRecordPath(exportId, result.index);
    // A verified chunk is never downgraded by a late record of a cancelled or failed attempt.
    const existing = await readJson<ChunkResult>(path);
    if (existing?.state === 'verified' && result.state !== 'verified') return;
    await writeJsonAtomic(path, result);
  }

  /** Chunks already verified (with their file intact) or empty: a re-run skips them. */
  async finishedChunks(exportId: string): Promise<ChunkResult[]> {
    const done: ChunkResult[] = [];
    for (const result of (await this.readChunkResults(exportId)).values()) {
      if (result.state === 'empty') done.push(result);
      if (result.state === 'verified' && result.file) {
        const info = await stat(join(this.exportDir(exportId), result.file)).catch(() => undefined);
        if (info?.size === result.bytes) done.push(result);
      }
    }
    return done;
  }

  async writeManifest(exportId: string, state: ExportState): Promise<string> {
    const request = await this.readRequest(exportId);
    if (!request) throw new Error(`export ${exportId} has no request.json`);
    const results = await this.readChunkResults(exportId);
    const plan = planChunks({ begin: request.begin, end: request.end, timeZone: request.timeZone, chunkSeconds: request.options.chunkSeconds });
    const chunks = plan.map((c) => {
      const r = results.get(c.index);
      return r && r.begin === c.begin && r.end === c.end ? r : { ...c, state: 'pending' as const };
    });
    const count = (s: string) => chunks.filter((c) => c.state === s).length;
    const manifest: Manifest = {
      exportId,
      state,
      updatedAt: new Date().toISOString(),
      request,
      totals: {
        chunks: chunks.length,
        verified: count('verified'),
        empty: count('empty'),
        failed: count('failed'),
        cancelled: count('cancelled'),
        pending: count('pending'),
        bytes: chunks.reduce((n, c) => n + ('bytes' in c ? (c.bytes ?? 0) : 0), 0),
        rows: chunks.reduce((n, c) => n + ('rows' in c ? (c.rows ?? 0) : 0), 0),
      },
      chunks,
    };
    const path = this.manifestPath(exportId);
    await writeJsonAtomic(path, manifest);
    return path;
  }

  /** Temporary download files: all of the export's, or only those of one chunk. */
  async removePartials(exportId: string, index?: number): Promise<void> {
    if (index === undefined) {
      await rm(this.partialDir(exportId), { recursive: true, force: true });
      return;
    }
    const prefix = `${String(index).padStart(4, '0')}-`;
    const dir = this.partialDir(exportId);
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dir, n), { force: true })));
  }

  /**
   * `*.tmp` files of atomic writes cut short by a crash (write, then killed before the rename).
   * Only safe once nothing writes to the export any more: a finished or cancelled export.
   */
  async removeTempFiles(exportId: string): Promise<void> {
    const dir = this.exportDir(exportId);
    for (const d of [dir, join(dir, 'chunks')]) {
      const names = await readdir(d).catch(() => [] as string[]);
      await Promise.all(names.filter((n) => n.endsWith('.tmp')).map((n) => rm(join(d, n), { force: true })));
    }
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write-then-rename, with an fsync in between, so readers never see half a file. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  const handle = await open(tmp, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}
