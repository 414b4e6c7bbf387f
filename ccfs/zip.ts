import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';

/**
 * Streaming verification of the ZIP files CC-FS produces (docs/ccfs-protocol.md §5). Nothing here
 * holds a whole entry in memory: entries are inflated chunk by chunk, CRC-checked, and their CSV
 * rows counted by a byte-level scanner.
 */

export const DEFAULT_MAX_ENTRIES = 10_000;
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 20 * 1024 ** 3;
export const DEFAULT_MAX_COMPRESSION_RATIO = 200;
/**
 * Entries smaller than this are exempt from the ratio cap: a few kilobytes of repeated text can
 * legitimately compress far beyond 200:1, and they cannot exhaust a disk.
 */
export const RATIO_EXEMPT_BELOW_BYTES = 1024 * 1024;

export interface ZipLimits {
  maxEntries?: number;
  maxUncompressedBytes?: number;
  maxCompressionRatio?: number;
}

export type EntryKind = 'call' | 'record' | 'other';

export interface ZipEntrySummary {
  name: string;
  kind: EntryKind;
  /** CSV data rows, header excluded; 0 for `other` entries, whose content is not parsed. */
  rows: number;
  /** Whether the first row was a header (its first cell is `developer`). */
  header: boolean;
  uncompressedBytes: number;
  compressedBytes: number;
}

export interface ZipSummary {
  entries: ZipEntrySummary[];
}

export interface ZipRow {
  entry: string;
  kind: EntryKind;
  cells: string[];
}

export type ZipErrorType = 'ZipCorrupt' | 'ZipLimitExceeded';

export class ZipVerificationError extends Error {
  override readonly name = 'ZipVerificationError';
  constructor(
    readonly type: ZipErrorType,
    message: string,
    readonly entry?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `_call` → CDRs, `_record` → recording index; with or without the `_{seq}` suffix (§5). */
export function classifyEntryName(name: string): EntryKind {
  const base = name.slice(name.lastIndexOf('/') + 1).toLowerCase();
  const exact = /_(call|record)(?:_\d+)?\.csv$/.exec(base);
  if (exact) return exact[1] as 'call' | 'record';
  const call = base.includes('_call');
  const record = base.includes('_record');
  if (call && !record) return 'call';
  if (record && !call) return 'record';
  return 'other';
}

/** Why an entry name is unsafe to extract, or undefined. Backslashes are already turned into `/`. */
export function unsafeEntryName(name: string): string | undefined {
  if (name.length === 0) return 'empty entry name';
  if (name.includes('\0')) return 'entry name contains a NUL byte';
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name)) return 'absolute entry name';
  if (name.split('/').includes('..')) return 'entry name escapes the extraction directory with ".."';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// CSV scanning

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3;

const HEADER_FIRST_CELL = 'developer';
const EMPTY = Buffer.alloc(0);

/**
 * A byte-level CSV row scanner: comma separator, `"` quoting with `""` escapes, records ended by
 * LF or CRLF, quoted fields may hold newlines. Lenient where CC-FS' format is unknown: a quote
 * inside an unquoted field is literal, and text after a closing quote joins the field. Empty
 * lines are skipped. Delimiters are ASCII, so UTF-8 text can be scanned as bytes.
 *
 * With `collect`, each row's cells are decoded and passed to `onRow`; without it only rows are
 * counted (the first row is always collected, to recognise a header).
 */
export class CsvRowScanner {
  /** Data rows (header excluded). */
  rows = 0;
  header = false;
  private state = FIELD_START;
  private rowsSeen = 0;
  private fieldBytes = 0;
  private fieldQuoted = false;
  /** The last content byte of the current field was an unquoted CR (stripped before LF). */
  private trailingCr = false;
  private fieldsInRow = 0;
  private lastFieldEmpty = false;
  private parts: Buffer[] = [];
  private cells: string[] = [];
  private atStart = true;

  constructor(
    private readonly collect: boolean,
    private readonly onRow?: (cells: string[]) => void,
  ) {}

  push(input: Buffer): void {
    let chunk = input;
    if (this.atStart) {
      if (chunk.length === 0) return;
      this.atStart = false;
      // A UTF-8 byte order mark would hide the `developer` header cell; Excel-made CSVs start with one.
      if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf)
        chunk = chunk.subarray(3);
    }
    const n = chunk.length;
    // The first row is always collected so that a header can be recognised.
    let collecting = this.collect || this.rowsSeen === 0;
    // Start of the not-yet-saved cell content in this chunk (used only while collecting).
    let seg = 0;
    let state = this.state;
    // Positions of the next quote and line feed at or after i (-1: none left in this chunk).
    let nextQuote = -2;
    let nextLf = -2;
    let i = 0;
    while (i < n) {
      if (!collecting && (state === FIELD_START || state === UNQUOTED)) {
        // Counting only: a line with no quote in it is one row whatever its commas, so jump to
        // its end (memchr speed). Its bytes join the current field, so a row is still empty only
        // if it has no bytes at all. Only when the line ends in this chunk: a quote in the next
        // chunk may open a field after a comma that the jump would have hidden.
        if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
        if (nextQuote !== -1 && nextQuote < i) nextQuote = chunk.indexOf(QUOTE, i);
        if (nextLf !== -1 && (nextQuote === -1 || nextQuote > nextLf)) {
          if (nextLf > i) {
            state = UNQUOTED;
            this.fieldBytes += nextLf - i;
            this.trailingCr = chunk[nextLf - 1] === CR;
          }
          i = nextLf;
        }
      }
      if (state === UNQUOTED) {
        // Run to the end of an unquoted field in a tight loop.
        let j = i;
        while (j < n) {
          const c = chunk[j]!;
          if (c === COMMA || c === LF) break;
          j++;
        }
        if (j > i) {
          this.fieldBytes += j - i;
          this.trailingCr = chunk[j - 1] === CR;
        }
        if (j === n) break;
        i = j;
      } else if (state === QUOTED) {
        // Nothing but a quote matters inside quotes: jump to it.
        const q = chunk.indexOf(QUOTE, i);
        if (q === -1) {
          this.fieldBytes += n - i;
          break;
        }
        this.fieldBytes += q - i;
        if (collecting && q > seg) this.parts.push(chunk.subarray(seg, q));
        state = QUOTE_IN_QUOTED;
        i = q + 1;
        continue;
      }
      const b = chunk[i]!;
      if (b === COMMA || b === LF) {
        const lineEnd = b === LF;
        if (collecting) this.closeCollectedField(chunk, state === QUOTE_IN_QUOTED ? i : seg, i, lineEnd);
        else this.closeField(lineEnd);
        state = FIELD_START;
        seg = i + 1;
        if (lineEnd) {
          this.endRow();
          collecting = this.collect || this.rowsSeen === 0;
        }
      } else if (b === QUOTE && state === FIELD_START) {
        state = QUOTED;
        this.fieldQuoted = true;
        seg = i + 1;
      } else if (b === QUOTE && state === QUOTE_IN_QUOTED) {
        // `""` is an escaped quote: this second quote is content.
        state = QUOTED;
        seg = i;
        this.fieldBytes++;
      } else {
        // Start of an unquoted field, or text after a closing quote (kept, leniently).
        state = UNQUOTED;
        seg = i;
        this.fieldBytes++;
        this.trailingCr = b === CR;
      }
      i++;
    }
    if (collecting && seg < n && (state === QUOTED || state === UNQUOTED))
      this.parts.push(chunk.subarray(seg, n));
    this.state = state;
  }

  /** Ends the input; a last row without a final newline still counts. Throws on an open quote. */
  end(): void {
    if (this.state === QUOTED) throw new Error('unterminated quoted field at the end of the data');
    if (this.state !== FIELD_START || this.fieldsInRow > 0) {
      if (this.collect || this.rowsSeen === 0) this.closeCollectedField(EMPTY, 0, 0, true);
      else this.closeField(true);
      this.endRow();
    }
    this.state = FIELD_START;
  }

  /** Closes a field whose last content, if any, is `chunk[from, to)`, decoding it to a cell. */
  private closeCollectedField(chunk: Buffer, from: number, to: number, lineEnd: boolean): void {
    const strip = lineEnd && this.trailingCr ? 1 : 0;
    let value: string;
    if (this.parts.length === 0) {
      value = to - strip > from ? chunk.toString('utf8', from, to - strip) : '';
    } else {
      if (to > from) this.parts.push(chunk.subarray(from, to));
      value = Buffer.concat(this.parts).toString('utf8');
      if (strip) value = value.slice(0, -1);
      this.parts = [];
    }
    this.cells.push(value);
    this.closeField(lineEnd);
  }

  private closeField(lineEnd: boolean): void {
    const strip = lineEnd && this.trailingCr ? 1 : 0;
    this.lastFieldEmpty = !this.fieldQuoted && this.fieldBytes - strip === 0;
    this.fieldsInRow++;
    this.fieldBytes = 0;
    this.fieldQuoted = false;
    this.trailingCr = false;
  }

  private endRow(): void {
    const emptyLine = this.fieldsInRow === 1 && this.lastFieldEmpty;
    const cells = this.cells;
    this.cells = [];
    this.fieldsInRow = 0;
    if (emptyLine) return;
    const first = this.rowsSeen === 0;
    this.rowsSeen++;
    if (first && cells[0]?.trim().toLowerCase() === HEADER_FIRST_CELL) {
      this.header = true;
      return;
    }
    this.rows++;
    if (this.collect) this.onRow?.(cells);
  }
}

// ---------------------------------------------------------------------------------------------
// ZIP walking

interface CheckedEntry {
  entry: yauzl.Entry;
  name: string;
  kind: EntryKind;
}

function toVerificationError(err: unknown, entry?: string): Error {
  if (err instanceof ZipVerificationError) return err;
  // File system errors (missing file, permissions, I/O) are not a property of the archive.
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string') return err;
  const detail = err instanceof Error ? err.message : String(err);
  const where = entry ? ` in entry "${entry}"` : '';
  return new ZipVerificationError('ZipCorrupt', `ZIP is corrupt${where}: ${detail}`, entry, { cause: err });
}

async function openZip(path: string): Promise<yauzl.ZipFile> {
  try {
    // decodeStrings: false so that unsafe names reach our own check (and message) instead of
    // yauzl's; validateEntrySizes makes yauzl fail an inflated stream whose length differs.
    return await yauzl.openPromise(path, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (err) {
    throw toVerificationError(err);
  }
}

/** Reads the central directory and applies every check that needs no entry data. */
async function checkDirectory(zip: yauzl.ZipFile, limits: Required<ZipLimits>): Promise<CheckedEntry[]> {
  if (zip.entryCount > limits.maxEntries) {
    throw new ZipVerificationError(
      'ZipLimitExceeded',
      `ZIP has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}`,
    );
  }
  const out: CheckedEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const raw = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
      const unsafe = unsafeEntryName(name);
      if (unsafe)
        throw new ZipVerificationError('ZipCorrupt', `ZIP entry "${name}" is rejected: ${unsafe}`, name);
      if (seen.has(name))
        throw new ZipVerificationError('ZipCorrupt', `ZIP has two entries named "${name}"`, name);
      seen.add(name);
      if (entry.isEncrypted())
        throw new ZipVerificationError('ZipCorrupt', `ZIP entry "${name}" is encrypted`, name);
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
        throw new ZipVerificationError(
          'ZipCorrupt',
          `ZIP entry "${name}" uses unsupported compression method ${entry.compressionMethod}`,
          name,
        );
      }
      total += entry.uncompressedSize;
      if (total > limits.maxUncompressedBytes) {
        throw new ZipVerificationError(
          'ZipLimitExceeded',
          `ZIP declares more than ${limits.maxUncompressedBytes} uncompressed bytes (limit reached at entry "${name}")`,
          name,
        );
      }
      if (entry.uncompressedSize >= RATIO_EXEMPT_BELOW_BYTES) {
        const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1);
        if (ratio > limits.maxCompressionRatio) {
          throw new ZipVerificationError(
            'ZipLimitExceeded',
            `ZIP entry "${name}" has compression ratio ${ratio.toFixed(0)}:1, above the limit of ${limits.maxCompressionRatio}:1 (possible ZIP bomb)`,
            name,
          );
        }
      }
      out.push({ entry, name, kind: name.endsWith('/') ? 'other' : classifyEntryName(name) });
    }
  } catch (err) {
    throw toVerificationError(err);
  }
  return out;
}

/**
 * Streams one entry through `onChunk`, checking the actual byte count against the declared size
 * as it goes (a lying header cannot make us inflate more than declared) and the CRC-32 at the end.
 */
async function streamEntry(
  zip: yauzl.ZipFile,
  checked: CheckedEntry,
  onChunk: (chunk: Buffer) => void,
): Promise<number> {
  const { entry, name } = checked;
  let stream: Readable;
  try {
    stream = await zip.openReadStreamPromise(entry);
  } catch (err) {
    throw toVerificationError(err, name);
  }
  let crc = 0;
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > entry.uncompressedSize) {
        throw new ZipVerificationError(
          'ZipCorrupt',
          `ZIP entry "${name}" holds more than its declared ${entry.uncompressedSize} bytes`,
          name,
        );
      }
      crc = crc32(chunk, crc);
      onChunk(chunk);
    }
  } catch (err) {
    stream.destroy();
    throw toVerificationError(err, name);
  }
  if (bytes !== entry.uncompressedSize) {
    throw new ZipVerificationError(
      'ZipCorrupt',
      `ZIP entry "${name}" holds ${bytes} bytes, not the declared ${entry.uncompressedSize}`,
      name,
    );
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) {
    throw new ZipVerificationError(
      'ZipCorrupt',
      `ZIP entry "${name}" fails its CRC-32 check (computed ${hex(crc)}, declared ${hex(entry.crc32)})`,
      name,
    );
  }
  return bytes;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function resolveLimits(limits: ZipLimits = {}): Required<ZipLimits> {
  return {
    maxEntries: limits.maxEntries ?? DEFAULT_MAX_ENTRIES,
    maxUncompressedBytes: limits.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_BYTES,
    maxCompressionRatio: limits.maxCompressionRatio ?? DEFAULT_MAX_COMPRESSION_RATIO,
  };
}

function csvError(err: unknown, name: string): ZipVerificationError {
  const detail = err instanceof Error ? err.message : String(err);
  return new ZipVerificationError('ZipCorrupt', `ZIP entry "${name}" is not readable CSV: ${detail}`, name, {
    cause: err,
  });
}

/**
 * Reads every entry of a ZIP: names must be safe, caps respected, every CRC-32 and size right.
 * Counts the CSV data rows of `call` and `record` entries. Throws ZipVerificationError.
 */
export async function verifyZip(path: string, limits?: ZipLimits): Promise<ZipSummary> {
  const zip = await openZip(path);
  try {
    const entries = await checkDirectory(zip, resolveLimits(limits));
    const summary: ZipSummary = { entries: [] };
    for (const checked of entries) {
      const parse = checked.kind !== 'other';
      const scanner = new CsvRowScanner(false);
      const bytes = await streamEntry(zip, checked, parse ? (c) => scanner.push(c) : () => undefined);
      if (parse) {
        try {
          scanner.end();
        } catch (err) {
          throw csvError(err, checked.name);
        }
      }
      summary.entries.push({
        name: checked.name,
        kind: checked.kind,
        rows: scanner.rows,
        header: scanner.header,
        uncompressedBytes: bytes,
        compressedBytes: checked.entry.compressedSize,
      });
    }
    return summary;
  } finally {
    zip.close();
  }
}

/**
 * Streams the data rows of every `call` and `record` entry, header rows skipped. Applies the same
 * checks as verifyZip with default limits; a CRC failure is thrown after the entry's rows.
 */
export async function* readZipRows(path: string, limits?: ZipLimits): AsyncIterable<ZipRow> {
  const zip = await openZip(path);
  try {
    const entries = await checkDirectory(zip, resolveLimits(limits));
    for (const checked of entries) {
      if (checked.kind === 'other') continue;
      const { name: entry, kind } = checked;
      let stream: Readable;
      try {
        stream = await zip.openReadStreamPromise(checked.entry);
      } catch (err) {
        throw toVerificationError(err, entry);
      }
      let pending: string[][] = [];
      const scanner = new CsvRowScanner(true, (cells) => pending.push(cells));
      let crc = 0;
      let bytes = 0;
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          if (bytes > checked.entry.uncompressedSize) {
            throw new ZipVerificationError(
              'ZipCorrupt',
              `ZIP entry "${entry}" holds more than its declared ${checked.entry.uncompressedSize} bytes`,
              entry,
            );
          }
          crc = crc32(chunk, crc);
          scanner.push(chunk);
          if (pending.length > 0) {
            const rows = pending;
            pending = [];
            for (const cells of rows) yield { entry, kind, cells };
          }
        }
      } catch (err) {
        stream.destroy();
        throw toVerificationError(err, entry);
      }
      try {
        scanner.end();
      } catch (err) {
        throw csvError(err, entry);
      }
      for (const cells of pending) yield { entry, kind, cells };
      if (bytes !== checked.entry.uncompressedSize || crc >>> 0 !== checked.entry.crc32 >>> 0) {
        throw new ZipVerificationError(
          'ZipCorrupt',
          `ZIP entry "${entry}" fails its size or CRC-32 check`,
          entry,
        );
      }
    }
  } finally {
    zip.close();
  }
}
