import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { planChunks } from '../domain/chunking';
import { parseWallTime } from '../domain/wall-time';
import type { ChunkResult, ExportRequest, ExportState } from '../workflows/definitions';
import { EXPORT_ID_PATTERN } from '../workflows/definitions';
import { indexEntryOf, indexEntryPath, requestWrittenAt, type IndexEntry } from '../lib/export-records';

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
  totals: {
    chunks: number;
    verified: number;
    empty: number;
    failed: number;
    cancelled: number;
    pending: number;
    bytes: number;
    rows: number;
  };
  chunks: Array<ChunkResult | { index: number; begin: string; end: string; state: 'pending' }>;
  /**
   * Chunk spans in wall-clock seconds: planned (`options.chunkSeconds`), in use (shorter once CC-FS
   * refused a range as too long), the longest range CC-FS answered (verified or empty), and the
   * ranges it refused (each split into the chunks listed in `chunks`).
   */
  span: {
    plannedSeconds: number;
    usedSeconds: number;
    acceptedSeconds?: number;
    refused: Array<{ index: number; begin: string; end: string; seconds: number }>;
  };
}

/** The error type of a record the export writes for a range CC-FS refused as too long (workflows/definitions.ts). */
const SPAN_REFUSED = 'CcfsSpanRefused';

type ManifestChunk = Manifest['chunks'][number];

/** Wall-clock seconds of a range (what CC-FS's span check sees). */
const wallSeconds = (r: { begin: string; end: string }) => parseWallTime(r.end) - parseWallTime(r.begin);

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
      return JSON.parse(
        await readFile(join(this.exportDir(exportId), 'request.json'), 'utf8'),
      ) as ExportRequest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async writeRequest(request: ExportRequest): Promise<void> {
    await writeJsonAtomic(join(this.exportDir(request.exportId), 'request.json'), request);
  }

  async readChunkResults(exportId: string): Promise<Map<number, ChunkResult>> {
    return new Map((await this.readChunkRecords(exportId)).map(({ result }) => [result.index, result]));
  }

  /** Every chunk record with the time it was last written (which of two records of one range is newer). */
  private async readChunkRecords(exportId: string): Promise<Array<{ result: ChunkResult; mtimeMs: number }>> {
    const dir = join(this.exportDir(exportId), 'chunks');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records: Array<{ result: ChunkResult; mtimeMs: number }> = [];
    for (const name of names.filter((n) => /^\d{4,}\.json$/.test(n))) {
      const path = join(dir, name);
      const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
      records.push({ result: JSON.parse(text) as ChunkResult, mtimeMs: info.mtimeMs });
    }
    return records;
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

  /**
   * The span a run of this export last used: the shortest `spanSeconds` of the records of ranges CC-FS
   * refused, or undefined when it refused none. A new run (retry) plans its gaps with it.
   */
  async spanInUse(exportId: string): Promise<number | undefined> {
    const spans = [...(await this.readChunkResults(exportId)).values()].flatMap((r) =>
      r.errorType === SPAN_REFUSED && r.spanSeconds !== undefined ? [r.spanSeconds] : [],
    );
    return spans.length > 0 ? Math.min(...spans) : undefined;
  }

  /**
   * The manifest's chunks, in time order. While no range was split and every record matches the plan
   * of the request, that plan (the records overlaid by index and range). Otherwise the records are the
   * truth: verified and empty ones first, then the newest failed or cancelled record of each range
   * they leave open; what no record covers is pending, planned with the span in use. Records of
   * refused ranges are not chunks (their parts are): they are listed under `span.refused`.
   */
  private async manifestChunks(
    exportId: string,
    request: ExportRequest,
  ): Promise<{ chunks: ManifestChunk[]; span: Manifest['span'] }> {
    const records = await this.readChunkRecords(exportId);
    const refused = records
      .filter((r) => r.result.errorType === SPAN_REFUSED && r.result.spanSeconds !== undefined)
      .map((r) => r.result);
    const plannedSeconds = request.options.chunkSeconds;
    const usedSeconds = Math.min(plannedSeconds, ...refused.map((r) => r.spanSeconds!));
    const plan = planChunks({
      begin: request.begin,
      end: request.end,
      timeZone: request.timeZone,
      chunkSeconds: plannedSeconds,
    });
    const aligned =
      refused.length === 0 &&
      records.every(({ result: r }) => plan[r.index]?.begin === r.begin && plan[r.index]?.end === r.end);
    let chunks: ManifestChunk[];
    if (aligned) {
      const byIndex = new Map(records.map(({ result }) => [result.index, result]));
      chunks = plan.map((c) => byIndex.get(c.index) ?? { ...c, state: 'pending' as const });
    } else {
      const done = records
        .filter(({ result: r }) => r.state === 'verified' || r.state === 'empty')
        .sort((a, b) => a.result.begin.localeCompare(b.result.begin));
      const others = records
        .filter(({ result: r }) => (r.state === 'failed' || r.state === 'cancelled') && !refused.includes(r))
        .sort((a, b) => b.mtimeMs - a.mtimeMs);
      const taken: ChunkResult[] = [];
      const overlaps = (r: ChunkResult) =>
        r.begin < request.begin ||
        r.end > request.end ||
        taken.some((t) => r.begin < t.end && t.begin < r.end);
      for (const { result } of [...done, ...others]) if (!overlaps(result)) taken.push(result);
      taken.sort((a, b) => a.begin.localeCompare(b.begin));
      chunks = [];
      let nextIndex = Math.max(plan.length, ...records.map(({ result }) => result.index + 1));
      let cursor = request.begin;
      const gap = (end: string) => {
        if (end <= cursor) return;
        for (const c of planChunks({
          begin: cursor,
          end,
          timeZone: request.timeZone,
          chunkSeconds: usedSeconds,
        })) {
          chunks.push({ index: nextIndex++, begin: c.begin, end: c.end, state: 'pending' });
        }
      };
      for (const r of taken) {
        gap(r.begin);
        chunks.push(r);
        cursor = r.end;
      }
      gap(request.end);
    }
    const answered = chunks.filter((c) => c.state === 'verified' || c.state === 'empty').map(wallSeconds);
    return {
      chunks,
      span: {
        plannedSeconds,
        usedSeconds,
        ...(answered.length > 0 && { acceptedSeconds: Math.max(...answered) }),
        refused: refused
          .map(({ index, begin, end }) => ({ index, begin, end, seconds: wallSeconds({ begin, end }) }))
          .sort((a, b) => a.begin.localeCompare(b.begin) || b.seconds - a.seconds),
      },
    };
  }

  async writeManifest(exportId: string, state: ExportState): Promise<string> {
    const request = await this.readRequest(exportId);
    if (!request) throw new Error(`export ${exportId} has no request.json`);
    const { chunks, span } = await this.manifestChunks(exportId, request);
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
      span,
    };
    const path = this.manifestPath(exportId);
    await writeJsonAtomic(path, manifest);
    // The durable record of a finished export (lib/export-records.ts): written after the manifest, so an
    // entry never names a manifest that is not there; coverage and status read it after retention.
    if (state !== 'running') {
      const rel = indexEntryPath(request.tenant, exportId);
      const previous = await readJson<IndexEntry>(join(this.root, rel));
      const entry = indexEntryOf(manifest, await requestWrittenAt(this.exportDir(exportId)), previous);
      if (entry) await writeJsonAtomic(join(this.root, rel), entry);
    }
    return path;
  }

  /** Path of the index entry of a finished export (lib/export-records.ts), for publishing it. */
  indexEntryFile(tenant: string, exportId: string): string {
    return join(this.root, indexEntryPath(tenant, exportId));
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
    await Promise.all(
      names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dir, n), { force: true })),
    );
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
