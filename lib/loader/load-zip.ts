import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { isUtf8 } from 'node:buffer';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import yauzl from 'yauzl';
import { classifyEntryName, readZipRows, type ZipLimits, type ZipRow } from '../../ccfs/zip';
import { type LoadKind, TABLES, keyIndexName, resolveKeys } from './schema';

/**
 * Loads one verified ZIP (docs/ccfs-protocol.md §5) into the loader's tables, idempotently.
 *
 * Per `_call`/`_record` entry: the rows of `readZipRows` (exactly those verifyZip counts) are COPYed
 * into a temporary staging table named by the file's sha256 and the entry, then one transaction
 * records the entry in `ccfs_load` (unique per sha256 + entry), inserts into the target with
 * `ON CONFLICT DO NOTHING`, checks that every staged row's key is now in the target, and commits.
 * A crash at any point loses nothing and doubles nothing: staging dies with the session and is
 * redone from scratch, and the insert and its `ccfs_load` row commit together or not at all.
 * Memory is flat: rows stream from the inflater to COPY with back-pressure.
 */

export interface LoadZipInput {
  /** The verified ZIP on local disk. */
  path: string;
  /** Its hex sha256 (from the chunk's verification): with the entry name, the identity of a load. */
  sha256: string;
  /** ZIP file name as published (recorded in ccfs_load). */
  fileName: string;
  exportId: string;
  chunk: number;
  tenant: string;
  /** IANA zone in which the files' `YYYY-MM-DD hh:mm:ss` times are read (the tenant's). */
  timeZone: string;
  /** Rows verifyZip counted per entry name (the manifest's); a different count read is a mismatch. */
  expectedRows?: Record<string, number>;
  /** Called every few thousand rows and between entries, for activity heartbeats. */
  onProgress?: (p: { entry: string; rows: number }) => void;
  limits?: ZipLimits;
  keys?: Partial<Record<LoadKind, readonly string[]>>;
}

export interface EntryLoad {
  entry: string;
  kind: LoadKind;
  rowsRead: number;
  rowsInserted: number;
  rowsAlreadyPresent: number;
  /** Record entries: rows whose call (tenant, call_id) has a CDR row in ccfs_cdr when loaded. */
  recordsWithCdr?: number;
  /** True when ccfs_load already listed this file's entry: nothing was read or inserted this time. */
  alreadyLoaded: boolean;
  /** Per day of `call_begin` in the tenant's zone (`YYYY-MM-DD`, or `unknown`): rows read and inserted. */
  days: Record<string, DayCount>;
}

/** One day's rows of a load: read from the files, inserted (the rest were already present). */
export interface DayCount {
  read: number;
  inserted: number;
}

/** Per chunk (one ZIP): rows in files = rows inserted + rows already present, and the CDR share. */
export interface Reconciliation {
  rowsInFiles: number;
  rowsInserted: number;
  rowsAlreadyPresent: number;
  /** Recording-index rows of the file and how many of them have a CDR; share = with / total (null when 0). */
  recordRows: number;
  recordsWithCdr: number;
  recordCdrShare: number | null;
  /** Per day of `call_begin` (tenant zone; `unknown` when it is not a date): the same three counts. */
  days: Record<string, { rowsInFiles: number; rowsInserted: number; rowsAlreadyPresent: number }>;
  /** True when rows in files = inserted + already present and every count matched the manifest. */
  ok: boolean;
  /** What did not add up, empty when ok. */
  mismatches: string[];
}

export interface LoadZipResult {
  entries: EntryLoad[];
  reconciliation: Reconciliation;
}

/** A count that does not add up: loud and not retryable (a retry would read the same file). */
export class LoadMismatchError extends Error {
  override readonly name = 'LoadMismatchError';
}

type Row = ZipRow;

const BATCH_CHARS = 256 * 1024;
const PROGRESS_EVERY_ROWS = 20_000;
const HEADER_FIRST_CELL = 'developer';
const LOCAL_TIME =
  /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?$/;

/**
 * A CC-FS time as a local `timestamp` literal, or undefined when the text is not a valid date/time
 * (the original text is kept in its text column either way). Accepts `-` or `/`, a space or `T`,
 * seconds and fractions optional (§5 documents `YYYY-MM-DD hh:mm:ss`; other readings are plausible).
 */
export function localTimestamp(text: string): string | undefined {
  if (text.length === 19 && canonicalTime(text)) return text;
  const m = LOCAL_TIME.exec(text.trim());
  if (!m) return undefined;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = Number(m[4] ?? 0);
  const mi = Number(m[5] ?? 0);
  const s = Number(m[6] ?? 0);
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
  if (d > days) return undefined;
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(y, 4)}-${p(mo)}-${p(d)} ${p(h)}:${p(mi)}:${p(s)}${m[7] ? `.${m[7]}` : ''}`;
}

const digit = (s: string, i: number): number => s.charCodeAt(i) - 48;
const two = (s: string, i: number): number => digit(s, i) * 10 + digit(s, i + 1);

/** The documented `YYYY-MM-DD hh:mm:ss`, checked by character: the common case, without a regex. */
function canonicalTime(s: string): boolean {
  for (let i = 0; i < 19; i++) {
    const c = s.charCodeAt(i);
    if (i === 4 || i === 7) {
      if (c !== 45) return false;
    } else if (i === 10) {
      if (c !== 32) return false;
    } else if (i === 13 || i === 16) {
      if (c !== 58) return false;
    } else if (c < 48 || c > 57) return false;
  }
  const y = two(s, 0) * 100 + two(s, 2);
  const mo = two(s, 5);
  const d = two(s, 8);
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || two(s, 11) > 23 || two(s, 14) > 59 || two(s, 17) > 59)
    return false;
  if (d <= 28) return true;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
}

/** COPY text format escaping; NUL cannot be stored in text and is dropped. */
function copyEscape(s: string): string {
  return /[\\\t\n\r\0]/.test(s) ? s.replace(/[\\\t\n\r\0]/g, (c) => COPY_ESCAPES[c]!) : s;
}
const COPY_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '',
};

/** How the cells of one entry map onto staging columns: documented position, or header name. */
interface ColumnMap {
  /** For each cell index: the documented column index, or -1 for `extra` under `extraNames[i]`. */
  target: number[];
  extraNames: string[];
}

function columnMap(kind: LoadKind, header: string[] | undefined): ColumnMap {
  const cols = TABLES[kind].columns;
  if (!header) return { target: cols.map((_, i) => i), extraNames: [] };
  const target: number[] = [];
  const extraNames: string[] = [];
  const used = new Set<number>();
  header.forEach((raw, i) => {
    const name = raw.trim().toLowerCase();
    const at = cols.indexOf(name);
    if (at >= 0 && !used.has(at)) {
      used.add(at);
      target[i] = at;
    } else {
      target[i] = -1;
      extraNames[i] = raw.trim() === '' || extraNames.includes(raw.trim()) ? `col_${i + 1}` : raw.trim();
    }
  });
  return { target, extraNames };
}

/** The staging line of one record: documented columns, local times, extra as jsonb. */
function stagingLine(kind: LoadKind, map: ColumnMap, cells: string[]): string {
  const t = TABLES[kind];
  const values: (string | undefined)[] = new Array<string | undefined>(t.columns.length);
  let extra: Record<string, string> | undefined;
  for (let i = 0; i < cells.length; i++) {
    const at = i < map.target.length ? map.target[i]! : -1;
    if (at >= 0) values[at] = cells[i];
    else (extra ??= {})[map.extraNames[i] ?? `col_${i + 1}`] = cells[i]!.replace(/\0/g, '');
  }
  const out: string[] = [];
  for (const v of values) out.push(v === undefined ? '\\N' : copyEscape(v));
  for (const name of t.times) {
    const v = values[t.columns.indexOf(name)];
    const local = v === undefined ? undefined : localTimestamp(v);
    out.push(local ?? '\\N');
  }
  out.push(extra ? copyEscape(JSON.stringify(extra)) : '{}');
  return out.join('\t') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Header peek: readZipRows skips header rows, so the header's names are read here from each entry's
// first line (BOM stripped, separator and quotes as the row scanner reads them).

async function readHeaders(path: string): Promise<Map<string, string[] | undefined>> {
  const zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false });
  const out = new Map<string, string[] | undefined>();
  try {
    for await (const entry of zip.eachEntry()) {
      const raw = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
      if (classifyEntryName(name) === 'other') continue;
      const stream = await zip.openReadStreamPromise(entry);
      const parts: Buffer[] = [];
      let size = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        parts.push(chunk);
        size += chunk.length;
        if (chunk.includes(10) || chunk.includes(13) || size >= 64 * 1024) break;
      }
      stream.destroy();
      out.set(name, parseHeaderLine(Buffer.concat(parts)));
    }
  } finally {
    zip.close();
  }
  return out;
}

/** The header's cells when the first line's first cell is `developer`, else undefined. */
export function parseHeaderLine(bytes: Buffer): string[] | undefined {
  let b = bytes;
  if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
  let end = b.length;
  let quoted = false;
  for (let k = 0; k < b.length; k++) {
    if (b[k] === 0x22) quoted = !quoted;
    else if (!quoted && (b[k] === 10 || b[k] === 13)) {
      end = k;
      break;
    }
  }
  const line = b.subarray(0, end);
  const text = isUtf8(line) ? line.toString('utf8') : new TextDecoder('gb18030').decode(line);
  let sep = ',';
  if (!text.includes(',')) {
    const counts = [';', '\t', '|'].map((s) => [s, text.split(s).length - 1] as const);
    const best = counts.reduce((a, c) => (c[1] > a[1] ? c : a), [',', 0] as const);
    if (best[1] > 0) sep = best[0];
  }
  const cells: string[] = [];
  let cell = '';
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuote) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') inQuote = false;
      else cell += c;
    } else if (c === '"') inQuote = true;
    else if (c === sep) {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  cells.push(cell);
  return cells[0]?.trim().toLowerCase() === HEADER_FIRST_CELL ? cells : undefined;
}

// ---------------------------------------------------------------------------------------------

function stagingName(sha256: string, entry: string): string {
  const e = createHash('sha256').update(entry).digest('hex').slice(0, 12);
  return `ccfs_stage_${sha256.slice(0, 24)}_${e}`;
}

function stagingSql(kind: LoadKind, name: string): string {
  const t = TABLES[kind];
  const cols = [
    ...t.columns.map((c) => `${c} text`),
    ...t.times.map((c) => `${c}_local timestamp`),
    'extra jsonb',
  ];
  return `CREATE TEMPORARY TABLE ${name} (${cols.join(', ')})`;
}

async function writeOrWait(stream: NodeJS.WritableStream, data: string): Promise<void> {
  if (!stream.write(data)) await once(stream, 'drain');
}

/** Streams one entry's rows into its staging table; returns the rows COPY reported. */
async function copyEntry(
  client: PoolClient,
  kind: LoadKind,
  name: string,
  map: ColumnMap,
  entry: string,
  rows: AsyncIterator<Row>,
  first: Row,
  onRows: (n: number) => void,
): Promise<{ copied: number; next: IteratorResult<Row> }> {
  const t = TABLES[kind];
  const cols = [...t.columns, ...t.times.map((c) => `${c}_local`), 'extra'];
  const stream = client.query(copyFrom(`COPY ${name} (${cols.join(', ')}) FROM STDIN`));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  // The error may come while a write waits for 'drain': handled below, never an unhandled rejection.
  done.catch(() => undefined);
  let batch = '';
  let n = 0;
  let next: IteratorResult<Row>;
  let current = first;
  try {
    for (;;) {
      batch += stagingLine(kind, map, current.cells);
      n++;
      if (n % PROGRESS_EVERY_ROWS === 0) onRows(n);
      if (batch.length >= BATCH_CHARS) {
        await writeOrWait(stream, batch);
        batch = '';
      }
      next = await rows.next();
      if (next.done || next.value.entry !== entry) break;
      current = next.value;
    }
    if (batch) await writeOrWait(stream, batch);
    stream.end();
    await done;
  } catch (err) {
    stream.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  return { copied: stream.rowCount, next };
}

/**
 * Loads every `_call`/`_record` entry of `input.path` (call entries first, so a recording's CDR from
 * the same ZIP counts towards the share). Throws LoadMismatchError when a count does not add up (the
 * transaction of that entry is rolled back); ZipVerificationError / pg errors pass through (a retry
 * redoes the staging from scratch).
 */
export async function loadZip(client: PoolClient, input: LoadZipInput): Promise<LoadZipResult> {
  const keys = resolveKeys(input.keys);
  const headers = await readHeaders(input.path);
  const entryNames = [...headers.keys()];
  const kindOf = (e: string): LoadKind => (classifyEntryName(e) === 'call' ? 'call' : 'record');
  // A ZIP listing a record entry before a call entry is read twice (calls, then records).
  const firstRecord = entryNames.findIndex((e) => kindOf(e) === 'record');
  const lastCall = entryNames.map(kindOf).lastIndexOf('call');
  const passes: LoadKind[][] =
    firstRecord >= 0 && lastCall > firstRecord ? [['call'], ['record']] : [['call', 'record']];

  const results = new Map<string, EntryLoad>();
  for (const kinds of passes) {
    const iterator = readZipRows(input.path, input.limits)[Symbol.asyncIterator]();
    let next = await iterator.next();
    const seen = new Set<string>();
    try {
      while (!next.done) {
        const row = next.value;
        const kind = row.kind === 'call' ? 'call' : 'record';
        if (!kinds.includes(kind)) {
          next = await iterator.next();
          continue;
        }
        seen.add(row.entry);
        const loaded = await loadEntry(
          client,
          input,
          keys,
          kind,
          row.entry,
          headers.get(row.entry),
          iterator,
          row,
        );
        results.set(row.entry, loaded.load);
        next = loaded.next;
      }
    } finally {
      await iterator.return?.(undefined);
    }
    // Entries without data rows (header-only, blank) are recorded too, so every entry is accounted for.
    for (const entry of entryNames) {
      if (seen.has(entry) || !kinds.includes(kindOf(entry))) continue;
      const loaded = await loadEntry(
        client,
        input,
        keys,
        kindOf(entry),
        entry,
        headers.get(entry),
        undefined,
        undefined,
      );
      results.set(entry, loaded.load);
    }
  }
  const entries = entryNames.map((e) => results.get(e)!).filter(Boolean);
  return { entries, reconciliation: reconcile(entries, input.expectedRows) };
}

/** Sums of a ZIP's entry loads and the checks of issue 17 (rows in files = inserted + already present). */
export function reconcile(entries: EntryLoad[], expectedRows?: Record<string, number>): Reconciliation {
  const r: Reconciliation = {
    rowsInFiles: 0,
    rowsInserted: 0,
    rowsAlreadyPresent: 0,
    recordRows: 0,
    recordsWithCdr: 0,
    recordCdrShare: null,
    days: {},
    ok: true,
    mismatches: [],
  };
  for (const e of entries) {
    r.rowsInFiles += e.rowsRead;
    r.rowsInserted += e.rowsInserted;
    r.rowsAlreadyPresent += e.rowsAlreadyPresent;
    if (e.kind === 'record') {
      r.recordRows += e.rowsRead;
      r.recordsWithCdr += e.recordsWithCdr ?? 0;
    }
    let dayRead = 0;
    let dayInserted = 0;
    for (const [day, c] of Object.entries(e.days)) {
      const d = (r.days[day] ??= { rowsInFiles: 0, rowsInserted: 0, rowsAlreadyPresent: 0 });
      d.rowsInFiles += c.read;
      d.rowsInserted += c.inserted;
      d.rowsAlreadyPresent += c.read - c.inserted;
      dayRead += c.read;
      dayInserted += c.inserted;
    }
    if (dayRead !== e.rowsRead || dayInserted !== e.rowsInserted)
      r.mismatches.push(
        `${e.entry}: per day ${dayRead} read and ${dayInserted} inserted, in all ${e.rowsRead} and ${e.rowsInserted}`,
      );
    if (e.rowsRead !== e.rowsInserted + e.rowsAlreadyPresent)
      r.mismatches.push(
        `${e.entry}: ${e.rowsRead} rows read ≠ ${e.rowsInserted} inserted + ${e.rowsAlreadyPresent} present`,
      );
    const expected = expectedRows?.[e.entry];
    if (expected !== undefined && expected !== e.rowsRead)
      r.mismatches.push(`${e.entry}: ${e.rowsRead} rows loaded, the manifest counts ${expected}`);
  }
  if (expectedRows) {
    for (const name of Object.keys(expectedRows)) {
      if (classifyEntryName(name) !== 'other' && !entries.some((e) => e.entry === name))
        r.mismatches.push(`${name}: in the manifest, not in the ZIP`);
    }
  }
  r.recordCdrShare = r.recordRows > 0 ? r.recordsWithCdr / r.recordRows : null;
  r.ok = r.mismatches.length === 0;
  return r;
}

async function loadEntry(
  client: PoolClient,
  input: LoadZipInput,
  keys: Record<LoadKind, string[]>,
  kind: LoadKind,
  entry: string,
  header: string[] | undefined,
  rows: AsyncIterator<Row> | undefined,
  first: Row | undefined,
): Promise<{ load: EntryLoad; next: IteratorResult<Row> }> {
  const t = TABLES[kind];
  const previous = await client.query<{
    rows_read: string;
    records_with_cdr: string | null;
    days: Record<string, DayCount> | null;
  }>('SELECT rows_read, records_with_cdr, days FROM ccfs_load WHERE sha256 = $1 AND entry = $2', [
    input.sha256,
    entry,
  ]);
  const skipRest = async (): Promise<IteratorResult<Row>> => {
    if (!rows) return { done: true, value: undefined };
    for (;;) {
      const n = await rows.next();
      if (n.done || n.value.entry !== entry) return n;
    }
  };
  if (previous.rows[0]) {
    // Loaded before (a retry after the commit, or the same export loaded again): nothing to do.
    const read = Number(previous.rows[0].rows_read);
    input.onProgress?.({ entry, rows: read });
    const load: EntryLoad = {
      entry,
      kind,
      rowsRead: read,
      rowsInserted: 0,
      rowsAlreadyPresent: read,
      alreadyLoaded: true,
      // Loaded this time: nothing inserted, every row already present.
      days: Object.fromEntries(
        Object.entries(previous.rows[0].days ?? { unknown: { read, inserted: 0 } }).map(([d, c]) => [
          d,
          { read: c.read, inserted: 0 },
        ]),
      ),
    };
    if (kind === 'record') load.recordsWithCdr = Number(previous.rows[0].records_with_cdr ?? 0);
    return { load, next: await skipRest() };
  }

  const stage = stagingName(input.sha256, entry);
  // Staging in memory where it fits (temp_buffers can only be raised before a session's first
  // temporary table, so a failure here is ignored: the load is as correct, only slower).
  await client.query("SET temp_buffers = '256MB'").catch(() => undefined);
  await client.query(`DROP TABLE IF EXISTS ${stage}`);
  await client.query(stagingSql(kind, stage));
  try {
    const map = columnMap(kind, header);
    let copied = 0;
    let next: IteratorResult<Row> = { done: true, value: undefined };
    if (rows && first) {
      const c = await copyEntry(client, kind, stage, map, entry, rows, first, (n) =>
        input.onProgress?.({ entry, rows: n }),
      );
      copied = c.copied;
      next = c.next;
    }
    input.onProgress?.({ entry, rows: copied });

    const key = keys[kind];
    const textCols = t.columns.map((c) => (key.includes(c) ? `coalesce(${c}, '')` : c));
    const timeCols = t.times.map((c) => `${c}_local AT TIME ZONE $2::text`);
    const keyMatch = key
      .map((c) => (c === 'tenant' ? 't.tenant = $1' : `t.${c} = coalesce(s.${c}, '')`))
      .join(' AND ');
    await client.query('BEGIN');
    try {
      const claimed = await client.query(
        `INSERT INTO ccfs_load (export_id, chunk, file_name, sha256, entry, kind, tenant, rows_read, rows_inserted, rows_already_present)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0) ON CONFLICT (sha256, entry) DO NOTHING RETURNING id`,
        [input.exportId, input.chunk, input.fileName, input.sha256, entry, kind, input.tenant, copied],
      );
      if (claimed.rowCount === 0) {
        // Another worker loaded this entry meanwhile (its transaction committed first).
        await client.query('ROLLBACK');
        const load: EntryLoad = {
          entry,
          kind,
          rowsRead: copied,
          rowsInserted: 0,
          rowsAlreadyPresent: copied,
          alreadyLoaded: true,
          days: { unknown: { read: copied, inserted: 0 } },
        };
        return { load, next };
      }
      // Inserted rows counted per day of their call_begin, as the staged rows are below.
      const inserted = await client.query<{ day: string; n: string }>(
        `WITH ins AS (
           INSERT INTO ${t.table} (tenant, ${t.columns.join(', ')}, ${t.times.map((c) => `${c}_at`).join(', ')}, extra, export_id, chunk, source_sha256, source_entry)
           SELECT $1, ${textCols.join(', ')}, ${timeCols.join(', ')}, coalesce(extra, '{}'::jsonb), $3, $4, $5, $6 FROM ${stage}
           ON CONFLICT (${key.join(', ')}) DO NOTHING
           RETURNING call_begin_at
         )
         SELECT coalesce(to_char(call_begin_at AT TIME ZONE $2::text, 'YYYY-MM-DD'), 'unknown') AS day, count(*) AS n
         FROM ins GROUP BY 1`,
        [input.tenant, input.timeZone, input.exportId, input.chunk, input.sha256, entry],
      );
      const staged = await client.query<{ day: string; n: string }>(
        `SELECT coalesce(to_char(call_begin_local, 'YYYY-MM-DD'), 'unknown') AS day, count(*) AS n FROM ${stage} GROUP BY 1`,
      );
      const days: Record<string, DayCount> = {};
      for (const d of staged.rows) days[d.day] = { read: Number(d.n), inserted: 0 };
      let rowsInserted = 0;
      for (const d of inserted.rows) {
        (days[d.day] ??= { read: 0, inserted: 0 }).inserted += Number(d.n);
        rowsInserted += Number(d.n);
      }
      // Rows not inserted must be in the target already: a staged key missing now means rows lost.
      const missing = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${stage} s WHERE NOT EXISTS (SELECT 1 FROM ${t.table} t WHERE ${keyMatch})`,
        [input.tenant],
      );
      if (Number(missing.rows[0]!.n) !== 0) {
        throw new LoadMismatchError(
          `${entry}: ${missing.rows[0]!.n} of ${copied} staged rows are neither inserted nor present in ${t.table}`,
        );
      }
      let recordsWithCdr: number | undefined;
      if (kind === 'record') {
        const r = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${stage} s WHERE EXISTS (SELECT 1 FROM ccfs_cdr c WHERE c.tenant = $1 AND c.call_id = coalesce(s.call_id, ''))`,
          [input.tenant],
        );
        recordsWithCdr = Number(r.rows[0]!.n);
      }
      const present = copied - rowsInserted;
      await client.query(
        'UPDATE ccfs_load SET rows_inserted = $1, rows_already_present = $2, records_with_cdr = $3, days = $4 WHERE id = $5',
        [
          rowsInserted,
          present,
          recordsWithCdr ?? null,
          JSON.stringify(days),
          (claimed.rows[0] as { id: string }).id,
        ],
      );
      await client.query('COMMIT');
      const load: EntryLoad = {
        entry,
        kind,
        rowsRead: copied,
        rowsInserted,
        rowsAlreadyPresent: present,
        alreadyLoaded: false,
        days,
      };
      if (recordsWithCdr !== undefined) load.recordsWithCdr = recordsWithCdr;
      return { load, next };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    await client.query(`DROP TABLE IF EXISTS ${stage}`).catch(() => undefined);
  }
}

/** The unique index ON CONFLICT relies on, for diagnostics. */
export const keyIndexFor = (kind: LoadKind, key?: readonly string[]): string =>
  keyIndexName(kind, key ?? resolveKeys()[kind]);
