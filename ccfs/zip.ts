import { isUtf8 } from 'node:buffer';
import { close, fstat, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import type { DataType } from './protocol';

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
  /**
   * CSV data records, header excluded; where a quote never closes, the lines it would have swallowed
   * count one record each (and `warnings` names the line). 0 for `other` entries, which are not parsed.
   */
  rows: number;
  /** Whether the first row was a header (its first cell is `developer`). */
  header: boolean;
  uncompressedBytes: number;
  compressedBytes: number;
  /**
   * What is odd about the content, with 1-based line numbers where they apply (a quote that never
   * closes, text that is not UTF-8, a name of neither kind). Absent when nothing is.
   */
  warnings?: string[];
}

export interface ZipSummary {
  entries: ZipEntrySummary[];
  /**
   * Everything an operator should see, for the ZIP as a whole: a requested kind missing, a kind not
   * requested, and every entry's warnings prefixed with the entry name. Empty when nothing is odd.
   */
  warnings: string[];
  /**
   * No data: the ZIP has no entries (directories aside), or every entry is a `_call`/`_record` CSV
   * with no data row (header-only or blank). An entry of an unknown name is never called empty.
   */
  empty: boolean;
}

/** verifyZip's caps, and the query's data type to check the ZIP's kinds against (protocol §5). */
export interface VerifyZipOptions extends ZipLimits {
  dataType?: DataType;
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
const QUOTE_BYTE = Buffer.from('"');

const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3;

const HEADER_FIRST_CELL = 'developer';
/** Separators other than the comma that a CC-FS could plausibly use (protocol §5: separator [unknown]). */
const OTHER_SEPARATORS = [0x3b, 0x09, 0x7c] as const;
/** Warnings kept per entry; the rest are counted, so a damaged file cannot bloat a manifest. */
export const MAX_WARNINGS_PER_ENTRY = 20;
/** How much of a first line is held to find its BOM and separator before scanning starts anyway. */
const FIRST_LINE_MAX_BYTES = 64 * 1024;
/** Longer than this, a first cell is not `developer`, whatever follows: counting stops holding it. */
const FIRST_CELL_MAX_BYTES = 4096;

/** Length of the UTF-8 sequence a lead byte starts (0 for a continuation or invalid byte). */
function utf8SequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/**
 * A byte-level CSV record scanner for CC-FS files (protocol §5, where separator, quoting, encoding and
 * header are [unknown]), so it accepts every plausible reading:
 * - `"` quoting with `""` escapes; a quoted field may hold separators and newlines (one record);
 * - records end with LF, CRLF or a bare CR, mixed freely; empty lines are skipped;
 * - a UTF-8 byte order mark; an optional header row whose first cell is `developer` (quoted or not);
 * - any number of columns per record; the separator is `,` unless the first line has none and has
 *   `;`, tab or `|` instead;
 * - any ASCII-compatible encoding: only `"`, `,`, CR and LF are looked at, and GBK/GB18030/Big5 never
 *   use those values inside a character. Text that is not UTF-8 gets a warning, and collected cells
 *   are decoded as GB18030 from then on.
 *
 * Broken quoting is data, not damage: a quote that opens a field and never closes (it reaches the end
 * of the data, or its "closing" quote is followed by text after the field has crossed a line break)
 * would swallow the following lines into one record. The record is then counted by line instead: every
 * non-empty line from the one where the quote opened to the one where the reading resynchronises is
 * a record, and a warning names the line (1-based, header line included). A quote followed by text
 * within one line is kept leniently (`"a"b` → `ab`), as before.
 *
 * With `collect`, each record's cells are decoded (UTF-8) and passed to `onRow`; without it only
 * records are counted at close to memchr speed, in memory independent of the data (only the first cell
 * is decoded, to recognise a header). Collecting keeps the raw bytes of the record in progress, so that
 * a record found broken can be re-read by line: memory grows with the longest broken record.
 */
export class CsvRowScanner {
  /** Data records (header excluded). */
  rows = 0;
  header = false;
  /** Whether every byte so far is valid UTF-8. */
  utf8 = true;
  /** Warnings with line numbers, at most MAX_WARNINGS_PER_ENTRY of them; see `warningCount`. */
  readonly warnings: string[] = [];
  /** All warnings, including those not kept. */
  warningCount = 0;

  private state = FIELD_START;
  private sep = COMMA;
  private started = false;
  /** Records seen, header included. */
  private rowsSeen = 0;
  private parts: Buffer[] = [];
  private cells: string[] = [];
  /** 1-based physical line of the next byte. */
  private lineNo = 1;
  /** Completed physical lines holding at least one byte other than CR/LF. */
  private linesDone = 0;
  private lineHasContent = false;
  private recordHasContent = false;
  private recordStartLine = 1;
  private linesAtRecordStart = 0;
  /** Line where the quoted field being read opened, and whether it has crossed a line break. */
  private quoteLine = 0;
  private quoteCrossed = false;
  /** Last byte of the previous chunk (a CR there makes an LF at the start of this one part of CRLF). */
  private lastByte = -1;
  /** Raw bytes of the record in progress from earlier chunks (collecting only). */
  private raw: Buffer[] = [];
  /** While re-reading a broken record: a quote may not cross a line break. */
  private lineMode = false;
  private lastWarnedLine = 0;
  /** The byte before the last quote met inside a quoted field (-1: none). */
  private beforeQuote = -1;
  private utf8Tail: Buffer | undefined;
  /** Bytes before the first line break, held until it comes (at most FIRST_LINE_MAX_BYTES). */
  private head: Buffer[] = [];
  private headBytes = 0;

  constructor(
    private readonly collect: boolean,
    private readonly onRow?: (cells: string[]) => void,
  ) {}

  push(input: Buffer): void {
    if (this.started) {
      if (this.utf8) this.checkUtf8(input);
      this.scan(input);
      return;
    }
    if (input.length === 0) return;
    // The byte order mark and the separator are decided on the first line: hold bytes until it ends.
    const lineBreak = input.indexOf(LF) !== -1 || input.indexOf(CR) !== -1;
    if (this.head.length === 0 && lineBreak) {
      this.start(input);
      return;
    }
    this.head.push(Buffer.from(input));
    this.headBytes += input.length;
    if (lineBreak || this.headBytes >= FIRST_LINE_MAX_BYTES) this.start(Buffer.concat(this.head));
  }

  private start(first: Buffer): void {
    this.started = true;
    this.head = [];
    let chunk = first;
    // A UTF-8 byte order mark would hide the `developer` header cell; Excel-made CSVs start with one.
    if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf)
      chunk = chunk.subarray(3);
    this.sep = detectSeparator(chunk);
    if (this.utf8) this.checkUtf8(chunk);
    this.scan(chunk);
  }

  /** Ends the input; a last record without a final line break still counts. Never throws. */
  end(): void {
    if (!this.started && this.head.length > 0) this.start(Buffer.concat(this.head));
    if (this.utf8 && this.utf8Tail) this.utf8 = false;
    if (this.state === QUOTED) {
      this.warnOpenQuote(this.quoteLine);
      if (this.quoteCrossed) {
        // The quote swallowed every line after it: each of them is a record.
        if (this.collect) {
          const bytes = Buffer.concat(this.raw);
          this.restartRecord();
          this.lineMode = true;
          this.scan(bytes);
          this.lineMode = false;
        } else {
          if (this.lineHasContent) this.linesDone++;
          this.lineHasContent = false;
          this.countBrokenLines();
          this.recordHasContent = false;
        }
      }
    }
    if (this.recordHasContent) {
      if (this.collecting()) this.closeField(EMPTY_BUFFER, 0, 0);
      this.endRecord();
    }
    this.state = FIELD_START;
    if (!this.utf8)
      this.warn(
        'text is not valid UTF-8 (GBK or another encoding?); rows are counted on the bytes, which such encodings leave intact',
      );
  }

  private scan(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    const sep = this.sep;
    let collecting = this.collecting();
    // Start of the not-yet-saved cell content, and of the record's raw bytes, in this chunk.
    let seg = 0;
    let recStart = 0;
    let state = this.state;
    // Next quote, LF and CR at or after i (-1: none left in this chunk; -2: not looked for yet).
    let nextQuote = -2;
    let nextLf = -2;
    let nextCr = -2;
    let i = 0;
    const prevIsCr = (at: number): boolean => (at > 0 ? chunk[at - 1] === CR : this.lastByte === CR);
    while (i < n) {
      if (state === FIELD_START || state === UNQUOTED) {
        if (!collecting) {
          // Counting only: a line with no quote in it is one record whatever its separators, so
          // jump to its end (memchr speed). Only when the line ends in this chunk: a quote in the
          // next chunk may open a field after a separator that the jump would have hidden.
          if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
          if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
          if (nextQuote !== -1 && nextQuote < i) nextQuote = chunk.indexOf(QUOTE, i);
          const eol = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextLf, nextCr);
          if (eol !== -1 && (nextQuote === -1 || nextQuote > eol)) {
            if (eol > i) {
              state = UNQUOTED;
              this.lineHasContent = true;
              this.recordHasContent = true;
            }
            i = eol;
          }
        }
        if (state === UNQUOTED) {
          // Run to the end of an unquoted field in a tight loop.
          let j = i;
          while (j < n) {
            const c = chunk[j]!;
            if (c === sep || c === LF || c === CR) break;
            j++;
          }
          if (j > i) {
            this.lineHasContent = true;
            this.recordHasContent = true;
          }
          if (j === n) break;
          i = j;
        }
      } else if (state === QUOTED) {
        // Nothing but a quote (and, for line numbers, a line break) matters inside quotes.
        if (nextQuote !== -1 && nextQuote < i) nextQuote = chunk.indexOf(QUOTE, i);
        const end = nextQuote === -1 ? n : nextQuote;
        let p = i;
        for (;;) {
          if (nextLf !== -1 && nextLf < p) nextLf = chunk.indexOf(LF, p);
          if (nextCr !== -1 && nextCr < p) nextCr = chunk.indexOf(CR, p);
          const eol = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextLf, nextCr);
          if (eol === -1 || eol >= end) {
            if (end > p) this.lineHasContent = true;
            break;
          }
          if (eol > p) this.lineHasContent = true;
          if (this.lineMode) {
            // Re-reading a broken record: the line break ends the field and the record.
            this.warnOpenQuote(this.quoteLine);
            if (collecting && eol > seg) this.parts.push(chunk.subarray(seg, eol));
            seg = eol;
            p = eol;
            state = UNQUOTED;
            break;
          }
          if (!(chunk[eol] === LF && prevIsCr(eol))) this.newLine();
          this.quoteCrossed = true;
          p = eol + 1;
        }
        if (state === UNQUOTED) {
          i = p;
          continue;
        }
        if (nextQuote === -1) break;
        if (collecting && nextQuote > seg) this.parts.push(chunk.subarray(seg, nextQuote));
        this.beforeQuote = nextQuote > 0 ? chunk[nextQuote - 1]! : this.lastByte;
        // The quote itself is a byte of the line, even right after a line break.
        this.lineHasContent = true;
        state = QUOTE_IN_QUOTED;
        i = nextQuote + 1;
        continue;
      }
      const b = chunk[i]!;
      if (b === sep) {
        if (collecting) {
          this.closeField(chunk, state === QUOTE_IN_QUOTED ? i : seg, i);
          collecting = this.collecting();
        }
        this.lineHasContent = true;
        this.recordHasContent = true;
        state = FIELD_START;
        seg = i + 1;
      } else if (b === LF || b === CR) {
        if (b === LF && prevIsCr(i)) {
          // The LF of a CRLF whose CR already ended the record.
          i++;
          seg = i;
          recStart = i;
          continue;
        }
        if (this.recordHasContent && collecting)
          this.closeField(chunk, state === QUOTE_IN_QUOTED ? i : seg, i);
        this.newLine();
        this.endRecord();
        state = FIELD_START;
        seg = i + 1;
        recStart = i + 1;
        collecting = this.collecting();
      } else if (b === QUOTE && state === FIELD_START) {
        state = QUOTED;
        this.quoteLine = this.lineNo;
        this.quoteCrossed = false;
        this.lineHasContent = true;
        this.recordHasContent = true;
        seg = i + 1;
      } else if (b === QUOTE && state === QUOTE_IN_QUOTED) {
        // `""` is an escaped quote: this second quote is content.
        state = QUOTED;
        seg = i;
      } else if (state === QUOTE_IN_QUOTED && this.quoteCrossed && !this.lineMode) {
        // A "closing" quote followed by text, after the field crossed a line break: the quote
        // opened earlier never closed, and this one most likely opens a field of a later line.
        this.warnOpenQuote(this.quoteLine);
        if (this.collect) {
          // Re-read the record by line up to the quote just before i, then that quote in whatever
          // state the re-reading ends in, and go on from i.
          if (i > recStart) this.raw.push(chunk.subarray(recStart, i));
          const bytes = Buffer.concat(this.raw);
          this.restartRecord();
          this.lineMode = true;
          this.scan(bytes.subarray(0, bytes.length - 1));
          this.lineMode = false;
          this.scan(QUOTE_BYTE);
          state = this.state;
          seg = i;
          recStart = i;
          collecting = this.collecting();
        } else {
          this.countBrokenLines();
          const before = this.beforeQuote;
          state = before === sep || before === LF || before === CR ? QUOTED : UNQUOTED;
          if (state === QUOTED) {
            this.quoteLine = this.lineNo;
            this.quoteCrossed = false;
          }
          this.lineHasContent = true;
          this.recordHasContent = true;
        }
        continue;
      } else {
        // Start of an unquoted field, or text after a closing quote (kept, leniently).
        state = UNQUOTED;
        seg = i;
        this.lineHasContent = true;
        this.recordHasContent = true;
      }
      i++;
    }
    if (collecting) {
      if (seg < n && (state === QUOTED || state === UNQUOTED)) this.parts.push(chunk.subarray(seg, n));
      if (this.collect) {
        if (recStart < n) this.raw.push(chunk.subarray(recStart, n));
      } else if (this.parts.reduce((k, p) => k + p.length, 0) > FIRST_CELL_MAX_BYTES) {
        // Counting holds the first cell only to recognise `developer`; a cell this long is not it,
        // and holding it could hold the whole entry.
        this.parts = [];
        this.cells.push('');
      }
    }
    this.state = state;
    this.lastByte = chunk[n - 1]!;
  }

  private checkUtf8(chunk: Buffer): void {
    let body = chunk;
    if (this.utf8Tail) {
      const tail = this.utf8Tail;
      const need = utf8SequenceLength(tail[0]!) - tail.length;
      if (chunk.length < need) {
        this.utf8Tail = Buffer.concat([tail, chunk]);
        return;
      }
      this.utf8Tail = undefined;
      if (!isUtf8(Buffer.concat([tail, chunk.subarray(0, need)]))) {
        this.utf8 = false;
        return;
      }
      body = chunk.subarray(need);
    }
    // Hold back a sequence cut by the chunk boundary; it is checked with the next chunk.
    let cut = body.length;
    for (let k = 1; k <= 3 && k <= body.length; k++) {
      const b = body[body.length - k]!;
      if ((b & 0xc0) === 0x80) continue;
      const len = utf8SequenceLength(b);
      if (len > k) cut = body.length - k;
      break;
    }
    if (!isUtf8(body.subarray(0, cut))) {
      this.utf8 = false;
      return;
    }
    if (cut < body.length) this.utf8Tail = Buffer.from(body.subarray(cut));
  }

  /** Whether cells are decoded: always with `collect`; else only the first cell of the first record (header). */
  private collecting(): boolean {
    return this.collect || (this.rowsSeen === 0 && this.cells.length === 0);
  }

  /** A physical line ended (outside or inside quotes). */
  private newLine(): void {
    if (this.lineHasContent) this.linesDone++;
    this.lineHasContent = false;
    this.lineNo++;
  }

  /** Counting only: the lines the broken record swallowed are records; the current line starts a new one. */
  private countBrokenLines(): void {
    const lines = this.linesDone - this.linesAtRecordStart;
    if (this.rowsSeen === 0 && lines > 0) {
      // The broken record was the first: its first line may be the header.
      this.header = isHeaderCell(this.cells[0]);
      this.rows += lines - (this.header ? 1 : 0);
      this.cells = [];
      this.parts = [];
    } else this.rows += lines;
    this.rowsSeen += lines;
    this.linesAtRecordStart = this.linesDone;
    this.recordStartLine = this.lineNo;
  }

  /** With `collect`: forget the record in progress so that its raw bytes can be read again from its first line. */
  private restartRecord(): void {
    this.raw = [];
    this.parts = [];
    this.cells = [];
    this.state = FIELD_START;
    this.lineNo = this.recordStartLine;
    this.linesDone = this.linesAtRecordStart;
    this.lineHasContent = false;
    this.recordHasContent = false;
    this.lastByte = -1;
  }

  private warnOpenQuote(line: number): void {
    if (line <= this.lastWarnedLine) return;
    this.lastWarnedLine = line;
    this.warn(`line ${line}: quote opened here never closes; rows counted by line`);
  }

  private warn(message: string): void {
    this.warningCount++;
    if (this.warnings.length < MAX_WARNINGS_PER_ENTRY) this.warnings.push(message);
  }

  /** Closes a field whose last content, if any, is `chunk[from, to)`, decoding it to a cell. */
  private closeField(chunk: Buffer, from: number, to: number): void {
    let value: string;
    if (this.parts.length === 0) {
      value = to > from ? this.decode(chunk.subarray(from, to)) : '';
    } else {
      if (to > from) this.parts.push(chunk.subarray(from, to));
      value = this.decode(Buffer.concat(this.parts));
      this.parts = [];
    }
    this.cells.push(value);
  }

  /** UTF-8 while the text is valid UTF-8; after that GB18030 (a superset of GBK and of ASCII). */
  private decode(bytes: Buffer): string {
    return this.utf8 ? bytes.toString('utf8') : GB18030.decode(bytes);
  }

  private endRecord(): void {
    const cells = this.cells;
    // No allocation per record when counting: these are empty then.
    if (cells.length > 0) this.cells = [];
    if (this.parts.length > 0) this.parts = [];
    if (this.raw.length > 0) this.raw = [];
    const empty = !this.recordHasContent;
    this.recordHasContent = false;
    this.linesAtRecordStart = this.linesDone;
    this.recordStartLine = this.lineNo;
    if (empty) return;
    const first = this.rowsSeen === 0;
    this.rowsSeen++;
    if (first && isHeaderCell(cells[0])) {
      this.header = true;
      return;
    }
    this.rows++;
    if (this.collect) this.onRow?.(cells);
  }
}

const EMPTY_BUFFER = Buffer.alloc(0);
/** Text that is not UTF-8 is most likely GBK from a Chinese CC-FS; GB18030 decodes GBK and more. */
const GB18030 = new TextDecoder('gb18030');

function isHeaderCell(cell: string | undefined): boolean {
  return (
    cell
      ?.replace(/^\ufeff/, '')
      .trim()
      .toLowerCase() === HEADER_FIRST_CELL
  );
}

/**
 * The separator of a file, from its first line: a comma if it has one outside quotes, else the most
 * frequent of `;`, tab and `|`, else a comma (a one-column file).
 */
function detectSeparator(chunk: Buffer): number {
  let end = chunk.length;
  for (let k = 0; k < chunk.length; k++) {
    const b = chunk[k];
    if (b === LF || b === CR) {
      end = k;
      break;
    }
  }
  const counts = new Map<number, number>();
  let quoted = false;
  for (let k = 0; k < end; k++) {
    const b = chunk[k]!;
    if (b === QUOTE) quoted = !quoted;
    else if (!quoted) counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  if ((counts.get(COMMA) ?? 0) > 0) return COMMA;
  let best = COMMA;
  let bestCount = 0;
  for (const s of OTHER_SEPARATORS) {
    const c = counts.get(s) ?? 0;
    if (c > bestCount) {
      best = s;
      bestCount = c;
    }
  }
  return best;
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

/**
 * How much one read of a ZIP asks the file system for. yauzl's own reader reads 16 KiB at a time, one
 * read after the other: 462 MiB/s on the bench machine against 4.3 GiB/s with 1 MiB reads, which made
 * verification take longer than the download (bench/results/README.md, download).
 */
export const ZIP_READ_BYTES = 1024 * 1024;

/**
 * Bytes [start, end) of a file descriptor in positioned reads of ZIP_READ_BYTES. Not fs.ReadStream:
 * destroying that (as `for await` does when an entry ends) closes the descriptor, which every
 * entry's stream shares.
 */
class RangeStream extends Readable {
  constructor(
    private readonly fd: number,
    private position: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: ZIP_READ_BYTES });
  }

  override _read(): void {
    const length = Math.min(ZIP_READ_BYTES, this.end - this.position);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(length);
    read(this.fd, buffer, 0, length, this.position, (err, n) => {
      if (err) this.destroy(err);
      else if (n === 0) this.destroy(new Error(`unexpected end of file at byte ${this.position}`));
      else {
        this.position += n;
        this.push(n < length ? buffer.subarray(0, n) : buffer);
      }
    });
  }
}

/** yauzl's random access over one file descriptor, in reads of ZIP_READ_BYTES (positioned reads, so streams may overlap). */
class LargeReadFile extends yauzl.RandomAccessReader {
  constructor(private readonly fd: number) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return new RangeStream(this.fd, start, end);
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    // The central directory and local headers: one positioned read, repeated only if it comes short.
    const step = (done: number): void => {
      if (done >= length) {
        callback(null);
        return;
      }
      read(this.fd, buffer, offset + done, length - done, position + done, (err, n) => {
        if (err) callback(err);
        else if (n === 0) callback(new Error(`unexpected end of file at byte ${position + done}`));
        else step(done + n);
      });
    };
    step(0);
  }

  override close(callback: (err: Error | null) => void): void {
    close(this.fd, (err) => callback(err ?? null));
  }
}

function openFd(path: string): Promise<{ fd: number; size: number }> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err) return reject(err);
      fstat(fd, (statErr, stats) => {
        if (statErr) return close(fd, () => reject(statErr));
        resolve({ fd, size: stats.size });
      });
    });
  });
}

async function openZip(path: string): Promise<yauzl.ZipFile> {
  // File system errors (ENOENT, EACCES) pass through unchanged, as documented on verifyZip.
  const { fd, size } = await openFd(path);
  const reader = new LargeReadFile(fd);
  try {
    // decodeStrings: false so that unsafe names reach our own check (and message) instead of
    // yauzl's; validateEntrySizes makes yauzl fail an inflated stream whose length differs.
    // autoClose: false — zip.close() (always called by our callers) closes the descriptor.
    return await yauzl.fromRandomAccessReaderPromise(reader, size, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (err) {
    close(fd, () => undefined);
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

/**
 * Reads every entry of a ZIP (protocol §5): names must be safe, caps respected, every CRC-32 and size
 * right — those failures, and only those, throw ZipVerificationError (`ZipCorrupt` for transfer damage,
 * `ZipLimitExceeded` for a cap). The content of a ZIP whose checks pass is data, never a failure:
 * the CSV records of `call` and `record` entries are counted (see CsvRowScanner for every reading
 * accepted) and whatever is odd becomes a warning. `options.dataType` (the query's) adds ZIP-level
 * warnings for a requested kind with no file and for files of a kind not requested.
 * File system errors (ENOENT, EACCES) pass through unchanged.
 */
export async function verifyZip(path: string, options?: VerifyZipOptions): Promise<ZipSummary> {
  const zip = await openZip(path);
  try {
    const entries = await checkDirectory(zip, resolveLimits(options));
    const read: ReadEntry[] = [];
    for (const checked of entries) {
      const parse = checked.kind !== 'other';
      const scanner = new CsvRowScanner(false);
      const bytes = await streamEntry(zip, checked, parse ? (c) => scanner.push(c) : () => undefined);
      if (parse) scanner.end();
      read.push({ checked, scanner, bytes });
    }
    return summarize(read, options?.dataType);
  } finally {
    zip.close();
  }
}

/** An entry whose CRC-32 and size were checked, with the scanner its bytes went through (ended). */
interface ReadEntry {
  checked: CheckedEntry;
  scanner: CsvRowScanner;
  bytes: number;
}

/** verifyZip's summary of entries read in central-directory order. */
function summarize(read: ReadEntry[], dataType: DataType | undefined): ZipSummary {
  const summary: ZipSummary = { entries: [], warnings: [], empty: true };
  for (const { checked, scanner, bytes } of read) {
    const parse = checked.kind !== 'other';
    const warnings: string[] = [];
    if (parse) {
      warnings.push(...scanner.warnings);
      const more = scanner.warningCount - scanner.warnings.length;
      if (more > 0) warnings.push(`${more} more warnings of the same kinds not shown`);
    } else if (!checked.name.endsWith('/')) {
      warnings.push('name has neither _call nor _record; kept in the ZIP, rows not counted');
    }
    const entry: ZipEntrySummary = {
      name: checked.name,
      kind: checked.kind,
      rows: scanner.rows,
      header: scanner.header,
      uncompressedBytes: bytes,
      compressedBytes: checked.entry.compressedSize,
    };
    if (warnings.length > 0) entry.warnings = warnings;
    summary.entries.push(entry);
    // Unknown entries may hold data under names we do not know: never call such a ZIP empty.
    if (!checked.name.endsWith('/') && (checked.kind === 'other' || scanner.rows > 0)) summary.empty = false;
  }
  summary.warnings.push(...kindWarnings(summary, dataType));
  for (const e of summary.entries) for (const w of e.warnings ?? []) summary.warnings.push(`${e.name}: ${w}`);
  return summary;
}

/** A requested kind without a file, or files of a kind that was not requested; nothing for an empty ZIP. */
function kindWarnings(summary: ZipSummary, dataType: DataType | undefined): string[] {
  if (dataType === undefined || summary.empty) return [];
  const has = (kind: EntryKind): boolean => summary.entries.some((e) => e.kind === kind);
  const out: string[] = [];
  const wantCall = dataType !== 'record';
  const wantRecord = dataType !== 'call';
  if (wantCall && !has('call')) out.push(`no _call file although dataType ${dataType} asks for CDRs`);
  if (wantRecord && !has('record'))
    out.push(`no _record file although dataType ${dataType} asks for the recording index`);
  if (!wantCall && has('call'))
    out.push(`_call files although dataType ${dataType} asks only for the recording index`);
  if (!wantRecord && has('record'))
    out.push(`_record files although dataType ${dataType} asks only for CDRs`);
  return out;
}

/**
 * Streams the data rows of every `call` and `record` entry, header rows skipped, exactly the records
 * verifyZip counts (a record found broken by an unclosed quote is yielded line by line; its lines are
 * held in memory until the break is found). Applies the same checks as verifyZip; a CRC failure is
 * thrown after the entry's rows.
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
      scanner.end();
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

// ---------------------------------------------------------------------------------------------
// Verifying while the bytes arrive

const LOCAL_HEADER_SIG = 0x04034b50;
const DESCRIPTOR_SIG = Buffer.from([0x50, 0x4b, 0x07, 0x08]);
const LOCAL_HEADER_BYTES = 30;
/** A data descriptor with its signature: 16 bytes, or 24 with ZIP64 sizes. */
const DESCRIPTOR_MAX_BYTES = 24;

/** What the streaming pass found for one entry, by the offset of its local header. */
interface StreamedEntry {
  offset: number;
  method: number;
  crc: number;
  /** Bytes of entry data (stored: compressed = uncompressed). */
  bytes: number;
  scanner: CsvRowScanner;
  parse: boolean;
}

/**
 * verifyZip while the ZIP arrives (protocol §5), so that a download is read once: feed it the bytes in
 * order with `push`, then call `finish(path)` once they are on disk. It walks the local headers of
 * stored entries (how CC-FS's bill files of any size come: the CSV is not compressed, or the padded
 * bench file), computing each entry's CRC-32 and counting its rows as the bytes pass, the end of an
 * entry with a data descriptor found by its signature, CRC-32 and sizes. `finish` then reads only the
 * central directory, applies every check verifyZip applies to it, and accepts the streamed results
 * when each entry's offset, method, sizes and CRC-32 match what was streamed; the summary is then
 * exactly verifyZip's. Anything else — a deflated entry, a descriptor without signature, a ZIP64 local
 * header without its extra field, a mismatch of any kind, damage — and `finish` returns
 * verifyZip(path) itself, with its errors. `push` never throws.
 */
export class StreamingZipVerifier {
  /** Why the streaming pass stopped being usable (undefined while it still is). */
  gaveUp: string | undefined;
  /** Whether the last `finish` used the streamed results (false: it read the file again). */
  streamed = false;
  /** Entries the last `finish` read from the file (those from the first compressed one on). */
  readAgain = 0;
  /** Offset of the first local header not streamed (a compressed entry), if any. */
  private stoppedAt: number | undefined;
  private readonly entries: StreamedEntry[] = [];
  /** Absolute offset of the next byte pushed. */
  private offset = 0;
  /** Bytes held until enough arrive to decide (a local header, a possible data descriptor). */
  private pending: Buffer | undefined;
  private state: 'header' | 'data' | 'done' = 'header';
  private current: StreamedEntry | undefined;
  /** Data bytes still to come of an entry of known size; -1: ends at its data descriptor. */
  private remaining = -1;

  /** Feeds the next bytes of the ZIP, in order. */
  push(chunk: Buffer): void {
    if (this.state === 'done' || this.gaveUp !== undefined) return;
    try {
      let buf = chunk;
      if (this.pending) {
        buf = Buffer.concat([this.pending, chunk]);
        this.pending = undefined;
      }
      // `base`: absolute offset of buf[0].
      const base = this.offset - (buf.length - chunk.length);
      this.offset += chunk.length;
      let at = 0;
      while (at < buf.length && this.usable()) {
        at = this.state === 'header' ? this.header(buf, at, base) : this.data(buf, at);
        if (at < 0) return; // the rest is pending
      }
    } catch (err) {
      this.giveUp(`streaming verification failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * The summary of the ZIP now at `path`: from the streamed results when the central directory
   * confirms them (entries from the first compressed one on are read from the file, as verifyZip
   * reads them), else verifyZip(path, options). Errors are verifyZip's.
   */
  async finish(path: string, options?: VerifyZipOptions): Promise<ZipSummary> {
    this.streamed = false;
    this.readAgain = 0;
    // 'done': the bytes reached what follows the last entry (the central directory).
    if (this.state !== 'done') this.giveUp('the data ended before the central directory');
    if (this.gaveUp === undefined) {
      const zip = await openZip(path);
      try {
        const entries = await checkDirectory(zip, resolveLimits(options));
        const byOffset = new Map(this.entries.map((e) => [e.offset, e]));
        const read: ReadEntry[] = [];
        let used = 0;
        for (const checked of entries) {
          const e = byOffset.get(checked.entry.relativeOffsetOfLocalHeader);
          const d = checked.entry;
          if (!e && this.stoppedAt !== undefined && d.relativeOffsetOfLocalHeader >= this.stoppedAt) {
            // Not streamed: read as verifyZip reads it (its errors, in the same order).
            const parse = checked.kind !== 'other';
            const scanner = new CsvRowScanner(false);
            const bytes = await streamEntry(zip, checked, parse ? (c) => scanner.push(c) : () => undefined);
            if (parse) scanner.end();
            read.push({ checked, scanner, bytes });
            this.readAgain++;
            continue;
          }
          if (
            !e ||
            e.method !== 0 ||
            d.compressionMethod !== 0 ||
            d.compressedSize !== e.bytes ||
            d.uncompressedSize !== e.bytes ||
            d.crc32 >>> 0 !== e.crc >>> 0 ||
            e.parse !== (checked.kind !== 'other')
          ) {
            this.giveUp(`entry "${checked.name}" differs from what was streamed`);
            break;
          }
          if (e.parse) e.scanner.end();
          read.push({ checked, scanner: e.scanner, bytes: e.bytes });
          used++;
        }
        if (this.gaveUp === undefined && used === this.entries.length) {
          this.streamed = true;
          return summarize(read, options?.dataType);
        }
        this.gaveUp ??= 'the central directory lists other entries than were streamed';
      } catch {
        // verifyZip below reports the error in its own words.
      } finally {
        zip.close();
      }
    }
    return verifyZip(path, options);
  }

  /** Still reading entries (a method, so that the loop re-reads the state its steps change). */
  private usable(): boolean {
    return this.state !== 'done' && this.gaveUp === undefined;
  }

  private giveUp(reason: string): void {
    this.gaveUp ??= reason;
    this.pending = undefined;
  }

  /** Parses a local header at `at`; returns where its data starts, or -1 with the bytes held. */
  private header(buf: Buffer, at: number, base: number): number {
    if (buf.length - at < 4) return this.hold(buf, at);
    if (buf.readUInt32LE(at) !== LOCAL_HEADER_SIG) {
      // The central directory (or anything else): the entries are over.
      this.state = 'done';
      return buf.length;
    }
    if (buf.length - at < LOCAL_HEADER_BYTES) return this.hold(buf, at);
    const nameLength = buf.readUInt16LE(at + 26);
    const extraLength = buf.readUInt16LE(at + 28);
    const end = at + LOCAL_HEADER_BYTES + nameLength + extraLength;
    if (buf.length < end) return this.hold(buf, at);
    const flags = buf.readUInt16LE(at + 6);
    const method = buf.readUInt16LE(at + 8);
    if (method !== 0) {
      // A compressed entry's end is unknown without inflating it: stop here; finish reads this
      // entry and the ones after it from the file.
      this.stoppedAt = base + at;
      this.state = 'done';
      return buf.length;
    }
    if (flags & 0x1) {
      this.giveUp('encrypted entry');
      return buf.length;
    }
    const name = buf.subarray(at + LOCAL_HEADER_BYTES, at + LOCAL_HEADER_BYTES + nameLength);
    // The kind decides whether rows are counted; the central directory's name is checked in finish.
    const decoded = yauzl.getFileNameLowLevel(flags, Buffer.from(name), [], false);
    const kind = decoded.endsWith('/') ? 'other' : classifyEntryName(decoded);
    this.current = {
      offset: base + at,
      method,
      crc: 0,
      bytes: 0,
      scanner: new CsvRowScanner(false),
      parse: kind !== 'other',
    };
    this.entries.push(this.current);
    if (flags & 0x8) {
      this.remaining = -1;
    } else {
      let size = buf.readUInt32LE(at + 18);
      if (size === 0xffffffff) {
        const zip64 = zip64CompressedSize(buf.subarray(end - extraLength, end), buf.readUInt32LE(at + 22));
        if (zip64 === undefined) {
          this.giveUp('ZIP64 local header without its sizes');
          return buf.length;
        }
        size = zip64;
      }
      this.remaining = size;
    }
    this.state = 'data';
    return end;
  }

  /** Consumes entry data from `at`; returns where the next header starts, or -1 with bytes held. */
  private data(buf: Buffer, at: number): number {
    const entry = this.current!;
    if (this.remaining >= 0) {
      const n = Math.min(this.remaining, buf.length - at);
      this.feed(entry, buf.subarray(at, at + n));
      this.remaining -= n;
      if (this.remaining === 0) this.state = 'header';
      return at + n;
    }
    // A data descriptor ends the entry: its signature, then the CRC-32 and sizes of the bytes before it.
    for (;;) {
      const sig = buf.indexOf(DESCRIPTOR_SIG, at);
      // Keep back a tail that could begin a signature straddling two chunks (rarely any).
      const safeEnd = sig === -1 ? Math.max(at, buf.length - signaturePrefixAtEnd(buf)) : sig;
      if (safeEnd > at) this.feed(entry, buf.subarray(at, safeEnd));
      at = safeEnd;
      if (sig === -1) return this.hold(buf, at);
      if (buf.length - sig < DESCRIPTOR_MAX_BYTES) {
        // Enough for a 16-byte descriptor may already be here; wait for 24 unless it matches already.
        if (buf.length - sig >= 16 && this.descriptorMatches(buf, sig, false)) return sig + 16;
        return this.hold(buf, sig);
      }
      if (this.descriptorMatches(buf, sig, false)) return sig + 16;
      if (this.descriptorMatches(buf, sig, true)) return sig + 24;
      // Data that happens to look like a signature.
      this.feed(entry, buf.subarray(sig, sig + 1));
      at = sig + 1;
    }
  }

  private descriptorMatches(buf: Buffer, sig: number, zip64: boolean): boolean {
    const entry = this.current!;
    if (buf.readUInt32LE(sig + 4) !== entry.crc >>> 0) return false;
    const ok = zip64
      ? Number(buf.readBigUInt64LE(sig + 8)) === entry.bytes &&
        Number(buf.readBigUInt64LE(sig + 16)) === entry.bytes
      : buf.readUInt32LE(sig + 8) === entry.bytes && buf.readUInt32LE(sig + 12) === entry.bytes;
    if (ok) this.state = 'header';
    return ok;
  }

  private feed(entry: StreamedEntry, bytes: Buffer): void {
    if (bytes.length === 0) return;
    entry.crc = crc32(bytes, entry.crc);
    entry.bytes += bytes.length;
    if (entry.parse) entry.scanner.push(bytes);
  }

  private hold(buf: Buffer, at: number): number {
    // A copy: the caller's buffer may be reused once push returns.
    this.pending = at < buf.length ? Buffer.from(buf.subarray(at)) : undefined;
    return -1;
  }
}

/** How many last bytes of `buf` (0–3) are the start of a data descriptor signature. */
function signaturePrefixAtEnd(buf: Buffer): number {
  for (let n = Math.min(DESCRIPTOR_SIG.length - 1, buf.length); n > 0; n--) {
    if (buf.subarray(buf.length - n).equals(DESCRIPTOR_SIG.subarray(0, n))) return n;
  }
  return 0;
}

/** The compressed size in a local header's ZIP64 extra field (tag 1: uncompressed size first, then compressed). */
function zip64CompressedSize(extra: Buffer, uncompressed32: number): number | undefined {
  let i = 0;
  while (i + 4 <= extra.length) {
    const tag = extra.readUInt16LE(i);
    const size = extra.readUInt16LE(i + 2);
    if (tag === 0x0001) {
      // In a local header both sizes are present when either is 0xFFFFFFFF; read what is there.
      let p = i + 4;
      if (uncompressed32 === 0xffffffff || size >= 16) p += 8;
      if (p + 8 > i + 4 + size) return undefined;
      return Number(extra.readBigUInt64LE(p));
    }
    i += 4 + size;
  }
  return undefined;
}
