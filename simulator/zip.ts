import { Readable } from 'node:stream';
import { ZipFile } from 'yazl';
import type { DataType } from '../ccfs/protocol';
import {
  type Account,
  type DataSet,
  type Filters,
  type WallRange,
  RECORD_COLUMNS,
  cdrColumns,
  cdrLine,
  cdrValues,
  csvCell,
  csvLine,
  encodeGbk,
  fillerTemplate,
  FILLER_SEQ_DIGITS,
  includesCalls,
  includesRecords,
  recordLine,
  recordValues,
} from './data';
import { type CsvQuirks, PLAIN_CSV } from './options';
import { type Rng, digits, rngFor } from './prng';
import { compactWallMs, formatWall } from './wall-time';

/** Everything that decides the bytes of one bill file; fixed when the query is accepted. */
export interface BillFileContent {
  seed: number | string;
  responseId: string;
  data: DataSet;
  account: Account;
  range: WallRange;
  filters: Filters;
  dataType: DataType;
  counts: { call: number; record: number };
  headerRow: boolean;
  filesPerKind: number;
  extraCdrColumns: boolean;
  /** How the CSVs are written; absent = plain (UTF-8, LF, no BOM, well-formed). */
  csv?: CsvQuirks;
  padCallFileToBytes: number | undefined;
  /** Naive wall milliseconds of generation: entry names and (fixed) entry mtimes. */
  generatedWallMs: number;
}

export interface ZipEntryPlan {
  name: string;
  kind: 'call' | 'record';
  /** Rows [first, first + count) of the kind, in begin-time order. */
  first: number;
  count: number;
  padToBytes: number | undefined;
}

export function planEntries(content: BillFileContent): ZipEntryPlan[] {
  const stamp = compactWallMs(content.generatedWallMs);
  const plans: ZipEntryPlan[] = [];
  const kinds: Array<'call' | 'record'> = [];
  if (includesCalls(content.dataType)) kinds.push('call');
  if (includesRecords(content.dataType)) kinds.push('record');
  for (const kind of kinds) {
    const random = digits(rngFor(content.seed, 'entry-name', content.responseId, kind), 3);
    const total = content.counts[kind];
    const per = Math.ceil(total / content.filesPerKind);
    for (let i = 0; i < content.filesPerKind; i++) {
      const first = Math.min(i * per, total);
      plans.push({
        name: `${stamp}${random}_${kind}_${i + 1}.csv`,
        kind,
        first,
        count: Math.min(per, total - first),
        padToBytes:
          kind === 'call' && i === content.filesPerKind - 1 ? content.padCallFileToBytes : undefined,
      });
    }
  }
  return plans;
}

const CHUNK_CHARS = 256 * 1024;

const EOL = { lf: '\n', crlf: '\r\n', cr: '\r' } as const;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function isPlain(csv: CsvQuirks): boolean {
  return (
    csv.lineEnding === 'lf' &&
    csv.encoding === 'utf8' &&
    csv.unbalancedQuoteRows.length === 0 &&
    csv.unbalancedQuote === 0 &&
    csv.missingColumns === 0 &&
    csv.embeddedNewline === 0
  );
}

/** Writes data row `index` of an entry with the quirks asked for; `rng` decides the per-row ones. */
function quirkyLine(
  csv: CsvQuirks,
  columns: readonly string[],
  values: string[],
  index: number,
  rng: Rng,
): string {
  let cells = values.map(csvCell);
  const caller = columns.indexOf('caller_no');
  if (csv.embeddedNewline > 0 && rng() < csv.embeddedNewline && caller >= 0)
    cells[caller] = csvCell(`${values[caller]}\n(display name withheld)`);
  const broken =
    csv.unbalancedQuoteRows.includes(index) || (csv.unbalancedQuote > 0 && rng() < csv.unbalancedQuote);
  const field = columns.indexOf(csv.unbalancedQuoteField);
  // Written raw: the quote opens the field and nothing closes it (issue 13 input 6).
  if (broken && field >= 0) cells[field] = `"Anonymous,${values[field]}`;
  if (csv.missingColumns > 0) cells = cells.slice(0, Math.max(1, cells.length - csv.missingColumns));
  return cells.join(',') + EOL[csv.lineEnding];
}

/** The lines of a kind's rows in begin-time order; `first` is the entry's first row (quirk rows count from it). */
function* rowLines(
  content: BillFileContent,
  kind: 'call' | 'record',
  entry: string,
  first: number,
): Generator<string> {
  const csv = content.csv ?? PLAIN_CSV;
  const plain = isPlain(csv);
  const columns = kind === 'call' ? cdrColumns(content.extraCdrColumns) : RECORD_COLUMNS;
  const rng = rngFor(content.seed, 'csv-quirks', content.responseId, entry);
  let index = -first;
  for (const call of content.data.calls({
    ...content.range,
    account: content.account,
    filters: content.filters,
  })) {
    if (kind === 'call') {
      for (const row of call.cdr)
        yield plain
          ? cdrLine(row, content.extraCdrColumns)
          : quirkyLine(csv, columns, cdrValues(row, content.extraCdrColumns), index++, rng);
    } else {
      for (const row of call.records)
        yield plain ? recordLine(row) : quirkyLine(csv, columns, recordValues(row), index++, rng);
    }
  }
}

/** The bytes of one CSV entry, produced on demand in ~256 KiB chunks (never the whole file in memory). */
function* entryChunks(
  content: BillFileContent,
  plan: ZipEntryPlan,
  rows: Record<string, number>,
): Generator<Buffer> {
  let pending: string[] = [];
  let pendingChars = 0;
  let bytes = 0;
  rows[plan.name] = 0;
  const csv = content.csv ?? PLAIN_CSV;
  const encode = csv.encoding === 'gbk' ? encodeGbk : (text: string): Buffer => Buffer.from(text, 'utf8');
  if (csv.bom) {
    bytes += BOM.length;
    yield BOM;
  }
  const flush = (): Buffer => {
    const buf = encode(pending.join(''));
    bytes += buf.length;
    pending = [];
    pendingChars = 0;
    return buf;
  };
  const push = (line: string): boolean => {
    pending.push(line);
    pendingChars += line.length;
    return pendingChars >= CHUNK_CHARS;
  };
  if (content.headerRow) {
    push(
      csvLine(
        plan.kind === 'call' ? cdrColumns(content.extraCdrColumns) : RECORD_COLUMNS,
        EOL[csv.lineEnding],
      ),
    );
  }
  let index = 0;
  const last = plan.first + plan.count;
  if (plan.count > 0) {
    for (const line of rowLines(content, plan.kind, plan.name, plan.first)) {
      if (index >= last) break;
      if (index++ < plan.first) continue;
      rows[plan.name] = (rows[plan.name] ?? 0) + 1;
      if (push(line)) yield flush();
    }
  }
  if (pendingChars > 0) yield flush();
  if (plan.padToBytes === undefined) return;
  const { line, seqOffset } = fillerTemplate(
    content.account,
    content.responseId.replace(/-/g, '').slice(0, 8),
    formatWall(content.range.begin),
    content.extraCdrColumns,
  );
  // Whole filler lines stamped into a buffer: no per-row strings, so padding is not the bottleneck.
  const perChunk = Math.max(1, Math.floor(CHUNK_CHARS / line.length));
  let n = 0;
  while (bytes < plan.padToBytes) {
    const lines = Math.min(perChunk, Math.ceil((plan.padToBytes - bytes) / line.length));
    const buf = Buffer.allocUnsafe(lines * line.length);
    buf.fill(line);
    for (let i = 0; i < lines; i++) {
      let v = ++n;
      for (let d = i * line.length + seqOffset + FILLER_SEQ_DIGITS - 1; v > 0; d--) {
        buf[d] = 48 + (v % 10);
        v = Math.floor(v / 10);
      }
    }
    rows[plan.name] = (rows[plan.name] ?? 0) + lines;
    bytes += buf.length;
    yield buf;
  }
}

/** Entry mtime: the generation wall time read as local time, stored in DOS format only, so the bytes do not depend on the process's zone. */
function fixedMtime(generatedWallMs: number): Date {
  const d = new Date(generatedWallMs);
  return new Date(
    d.getUTCFullYear(),
    d.getUTCMonth(),
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
  );
}

export interface BillZip {
  stream: Readable;
  entries: ZipEntryPlan[];
  /** Rows written per entry name, filled while the stream is read. */
  rows: Record<string, number>;
}

/**
 * Streams the ZIP of a bill file. The same content always gives the same bytes: fixed mtimes, fixed
 * entry order, deterministic deflate. Entries are produced lazily and back-pressure flows from the
 * consumer through yazl to the row generators.
 */
export function billZip(content: BillFileContent): BillZip {
  const zip = new ZipFile();
  const entries = planEntries(content);
  const rows: Record<string, number> = {};
  const mtime = fixedMtime(content.generatedWallMs);
  for (const plan of entries) {
    zip.addReadStreamLazy(
      plan.name,
      { mtime, compress: plan.padToBytes === undefined, forceDosTimestamp: true },
      (cb) => {
        cb(null, Readable.from(entryChunks(content, plan, rows), { objectMode: false }));
      },
    );
  }
  const stream = zip.outputStream as Readable;
  zip.on('error', (err: Error) => stream.destroy(err));
  zip.end();
  return { stream, entries, rows };
}
