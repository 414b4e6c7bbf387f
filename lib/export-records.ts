import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '../activities/output-store';
import { parseWallTime, wallToInstant } from '../domain/wall-time';
import type { ChunkState, DataType, ExportState, LedgerEntry } from '../workflows/definitions';
import { dailyExportId, dayWorkflowId, EXPORT_ID_PATTERN } from '../workflows/definitions';
import type { DayRun } from './coverage';

/**
 * The durable record of finished exports: what stays when Temporal's retention has deleted the
 * workflows. Every export that finished (completed, completed with failures, cancelled) has its
 * `manifest.json` in `OUTPUT_DIR/<exportId>/` and, when publishing, in `s3://bucket/prefix/<exportId>/`.
 * Reading every manifest to answer "which days of 2023 are verified" would read years of chunk lists,
 * so each finished export also has a small index entry:
 *
 *     OUTPUT_DIR/.index/<tenant>/<exportId>.json        (and prefix/.index/<tenant>/<exportId>.json in S3)
 *
 * One file per export, written atomically (write, fsync, rename; a single PUT in S3) by the activity
 * that finalises the manifest, after the manifest itself. One file per export rather than one file per
 * tenant because exports finish concurrently on several workers and machines: a per-export entry has
 * exactly one writer, so no update can be lost and no lock is needed. `.index` cannot clash with an
 * export's directory (an export ID never starts with a dot). Coverage of a tenant reads one directory
 * (one listing in S3) of entries of a few hundred bytes; `status <id>` reads one manifest.
 *
 * An entry that is missing (an export finished before this index existed) is rebuilt from the
 * manifest by `ExportRecords.rebuild` (`ccfs-export coverage --rebuild-index`).
 */

export const INDEX_DIR = '.index';
const ENTRY_VERSION = 1;

/** One finished export, as the index keeps it. */
export interface IndexEntry {
  v: typeof ENTRY_VERSION;
  exportId: string;
  tenant: string;
  dataType: DataType;
  timeZone: string;
  /** The request's range, wall times in `timeZone` (`yyyy-MM-dd HH:mm:ss`), end exclusive. */
  begin: string;
  end: string;
  /** The same range as ISO instants (what `list` shows and filters on). */
  rangeBegin: string;
  rangeEnd: string;
  /** Set when the export is the export of one day of a daily schedule (`daily-<tenant>-<type>-<day>`). */
  day?: string;
  /** A forced re-export of that day (`…-f<stamp>`). */
  forced?: boolean;
  state: Exclude<ExportState, 'running'>;
  counts: Record<Exclude<ChunkState, 'running'>, number>;
  totals: { chunks: number; bytes: number; rows: number };
  /** The first failed or cancelled chunk, as the day workflow names it in its error. */
  firstFailure?: { begin: string; end: string; error?: string };
  /** When the run that finished started (its request.json was written) and finished (manifest written). */
  startedAt: string;
  finishedAt: string;
  /** How many runs of this export finished (a failed export retried and verified: 2). */
  finishes: number;
}

/** A file name for a tenant ID: as is when it is a plain name, else hex (never a path). */
export function tenantDirName(tenant: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(tenant)
    ? tenant
    : `x-${Buffer.from(tenant).toString('hex')}`;
}

/** `OUTPUT_DIR/.index/<tenant>/<exportId>.json` relative to the output root (a key suffix in S3). */
export function indexEntryPath(tenant: string, exportId: string): string {
  if (!EXPORT_ID_PATTERN.test(exportId)) throw new Error(`export ID "${exportId}" is not a safe name`);
  return `${INDEX_DIR}/${tenantDirName(tenant)}/${exportId}.json`;
}

const DAILY = /-(\d{4}-\d{2}-\d{2})(?:-f([0-9TZ]+))?$/;

/** The day a daily export stands for, when `exportId` is the ID `dayExportWorkflow` gives it. */
export function dailyExportDay(
  request: Pick<Manifest['request'], 'exportId' | 'tenant' | 'dataType' | 'begin'>,
): { day: string; forced: boolean } | undefined {
  const m = DAILY.exec(request.exportId);
  if (!m) return undefined;
  const [, day, stamp] = m as unknown as [string, string, string | undefined];
  if (dailyExportId(request.tenant, request.dataType, day, stamp) !== request.exportId) return undefined;
  if (request.begin !== `${day} 00:00:00`) return undefined;
  return { day, forced: stamp !== undefined };
}

const instant = (wall: string, zone: string) =>
  new Date(wallToInstant(parseWallTime(wall), zone) * 1000).toISOString();

/**
 * The index entry of a finished manifest; undefined while the export runs. `previous` is the entry
 * an earlier run wrote (for `finishes`), `startedAt` when this run started.
 */
export function indexEntryOf(
  manifest: Manifest,
  startedAt: string,
  previous?: IndexEntry,
): IndexEntry | undefined {
  if (manifest.state === 'running') return undefined;
  const r = manifest.request;
  const daily = dailyExportDay(r);
  const failure = manifest.chunks.find((c) => c.state === 'failed' || c.state === 'cancelled');
  const t = manifest.totals;
  return {
    v: ENTRY_VERSION,
    exportId: manifest.exportId,
    tenant: r.tenant,
    dataType: r.dataType,
    timeZone: r.timeZone,
    begin: r.begin,
    end: r.end,
    rangeBegin: instant(r.begin, r.timeZone),
    rangeEnd: instant(r.end, r.timeZone),
    ...(daily && { day: daily.day, ...(daily.forced && { forced: true }) }),
    state: manifest.state,
    counts: {
      pending: t.pending,
      verified: t.verified,
      empty: t.empty,
      failed: t.failed,
      cancelled: t.cancelled,
    },
    totals: { chunks: t.chunks, bytes: t.bytes, rows: t.rows },
    ...(failure && {
      firstFailure: {
        begin: failure.begin,
        end: failure.end,
        ...('error' in failure && failure.error !== undefined && { error: failure.error }),
      },
    }),
    startedAt,
    finishedAt: manifest.updatedAt,
    // A run may finalise its manifest more than once (a rewrite after a late chunk record): one run
    // counts once, and each run writes request.json anew when it starts.
    finishes: (previous?.finishes ?? 0) + (previous?.startedAt === startedAt ? 0 : 1),
  };
}

/**
 * How a day's run reads in coverage, from its entry: the same state, export and error the day
 * workflow's search attributes and memo carry (workflows/daily-export-workflow.ts builds that error
 * from the export's result the same way).
 */
export function dayRunOf(entry: IndexEntry): DayRun | undefined {
  if (!entry.day) return undefined;
  const ok = entry.state === 'completed';
  const failure = entry.firstFailure;
  return {
    tenant: entry.tenant,
    dataType: entry.dataType,
    day: entry.day,
    workflowId: dayWorkflowId(entry.tenant, entry.dataType, entry.day),
    runId: `record:${entry.exportId}`,
    status: ok ? 'COMPLETED' : 'FAILED',
    state: ok ? (entry.counts.verified > 0 ? 'verified' : 'empty') : 'failed',
    startTime: entry.startedAt,
    exportId: entry.exportId,
    finishes: entry.finishes,
    ...(!ok && {
      error:
        `export ${entry.exportId} ended ${entry.state}: ${entry.counts.failed} failed and ${entry.counts.cancelled} cancelled chunk(s)` +
        (failure ? `; ${failure.begin} → ${failure.end}: ${failure.error ?? 'no detail'}` : ''),
    }),
    timeZone: entry.timeZone,
  };
}

/** Where the record is kept: a directory, or an S3 prefix (lib/storage/s3.ts `S3ObjectReader`). */
export interface RecordSource {
  /** `local` or `s3`. */
  readonly kind: string;
  /** The text of `<rel>` (e.g. `exp-1/manifest.json`), undefined when there is none. */
  read(rel: string): Promise<string | undefined>;
  /** Names (not paths) of the files directly under `<rel>/`. */
  list(rel: string): Promise<string[]>;
  /** Where `<rel>` is, for people: a path or an `s3://` URL. */
  location(rel: string): string;
}

/** The record in `OUTPUT_DIR`. */
export class LocalRecordSource implements RecordSource {
  readonly kind = 'local';
  constructor(readonly root: string) {}

  async read(rel: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.root, rel), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async list(rel: string): Promise<string[]> {
    try {
      return await readdir(join(this.root, rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw err;
    }
  }

  location(rel: string): string {
    return join(this.root, rel);
  }
}

/** Runs `fn` over `items` with at most `limit` at once (S3 GETs of index entries). */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

function parseEntry(text: string | undefined): IndexEntry | undefined {
  if (!text) return undefined;
  try {
    const entry = JSON.parse(text) as IndexEntry;
    return entry.v === ENTRY_VERSION && typeof entry.exportId === 'string' ? entry : undefined;
  } catch {
    // An entry is written atomically; an unreadable one is not ours. The manifest still is the truth.
    return undefined;
  }
}

/** A finished export read back from the record: its manifest and where it is. */
export interface RecordedExport {
  manifest: Manifest;
  /** The local path of manifest.json when it is there, else its S3 URL. */
  manifestPath: string;
  entry?: IndexEntry;
}

/**
 * Reads the durable record from one or more sources (the local `OUTPUT_DIR` first, then S3): the
 * same export in both counts once, with the newer entry. No source configured: nothing is known.
 */
export class ExportRecords {
  constructor(readonly sources: RecordSource[]) {}

  /** Every index entry, of one tenant or of all, newest entry per export. */
  async entries(filter: { tenant?: string; dataType?: string } = {}): Promise<IndexEntry[]> {
    const byId = new Map<string, IndexEntry>();
    for (const source of this.sources) {
      const tenants = filter.tenant ? [tenantDirName(filter.tenant)] : await source.list(INDEX_DIR);
      for (const dir of tenants) {
        const names = (await source.list(`${INDEX_DIR}/${dir}`)).filter((n) => n.endsWith('.json'));
        const entries = await mapLimit(names, 32, async (n) =>
          parseEntry(await source.read(`${INDEX_DIR}/${dir}/${n}`)),
        );
        for (const e of entries) {
          if (!e) continue;
          if (filter.tenant && e.tenant !== filter.tenant) continue;
          if (filter.dataType && e.dataType !== filter.dataType) continue;
          const seen = byId.get(e.exportId);
          if (!seen || seen.finishedAt < e.finishedAt) byId.set(e.exportId, e);
        }
      }
    }
    return [...byId.values()];
  }

  /** Day runs (for coverage) of every recorded daily export matching the filter. */
  async dayRuns(filter: { tenant?: string; dataType?: string } = {}): Promise<DayRun[]> {
    return (await this.entries(filter)).flatMap((e) => dayRunOf(e) ?? []);
  }

  /** The recorded export with this ID (its manifest), or undefined. A running export's manifest counts too. */
  async find(exportId: string): Promise<RecordedExport | undefined> {
    if (!EXPORT_ID_PATTERN.test(exportId)) return undefined;
    const rel = `${exportId}/manifest.json`;
    for (const source of this.sources) {
      const text = await source.read(rel);
      if (!text) continue;
      const manifest = JSON.parse(text) as Manifest;
      const entry = parseEntry(await source.read(indexEntryPath(manifest.request.tenant, exportId)));
      return { manifest, manifestPath: source.location(rel), entry };
    }
    return undefined;
  }

  /**
   * Writes the entries missing from the index of the first (local) source from the manifests in it:
   * for exports finished before the index existed. Returns how many were written.
   */
  async rebuild(write: (rel: string, entry: IndexEntry) => Promise<void>): Promise<number> {
    const source = this.sources[0];
    if (!source) return 0;
    let written = 0;
    for (const name of await source.list('.')) {
      if (!EXPORT_ID_PATTERN.test(name)) continue;
      const text = await source.read(`${name}/manifest.json`);
      if (!text) continue;
      const manifest = JSON.parse(text) as Manifest;
      const rel = indexEntryPath(manifest.request.tenant, name);
      if (await source.read(rel)) continue;
      const entry = indexEntryOf(manifest, manifest.updatedAt);
      if (!entry) continue;
      await write(rel, entry);
      written++;
    }
    return written;
  }
}

/** The time request.json of an export was last written: when its latest run started. */
export async function requestWrittenAt(exportDir: string): Promise<string> {
  const info = await stat(join(exportDir, 'request.json')).catch(() => undefined);
  return (info?.mtime ?? new Date()).toISOString();
}

/** A ledger entry as `status` shows it, from a manifest chunk. */
export function ledgerOf(chunk: Manifest['chunks'][number]): LedgerEntry {
  const c = chunk as Partial<LedgerEntry> & Pick<LedgerEntry, 'index' | 'begin' | 'end' | 'state'>;
  return {
    index: c.index,
    begin: c.begin,
    end: c.end,
    state: c.state,
    ...(c.requests !== undefined && { requests: c.requests }),
    ...(c.bytes !== undefined && { bytes: c.bytes }),
    ...(c.rows !== undefined && { rows: c.rows }),
    ...(c.error !== undefined && { error: c.error }),
    ...(c.errorType !== undefined && { errorType: c.errorType }),
    ...(c.warnings !== undefined && { warnings: c.warnings }),
  };
}
