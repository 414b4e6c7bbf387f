import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { stringify } from 'csv-stringify/sync';
import fc from 'fast-check';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CsvRowScanner,
  DEFAULT_MAX_COMPRESSION_RATIO,
  DEFAULT_MAX_ENTRIES,
  DEFAULT_MAX_UNCOMPRESSED_BYTES,
  MAX_WARNINGS_PER_ENTRY,
  ZipVerificationError,
  classifyEntryName,
  readZipRows,
  unsafeEntryName,
  verifyZip,
  type ZipRow,
} from '../../ccfs/zip';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ccfs-zip-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
interface EntrySpec {
  name: string;
  data: string | Buffer;
  compress?: boolean;
}

async function makeZip(entries: EntrySpec[]): Promise<string> {
  const path = join(dir, `t${counter++}.zip`);
  const zip = new yazl.ZipFile();
  for (const e of entries)
    if (e.name.endsWith('/')) zip.addEmptyDirectory(e.name);
    else
      zip.addBuffer(Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data, 'utf8'), e.name, {
        compress: e.compress ?? true,
      });
  zip.end();
  const out = createWriteStream(path);
  zip.outputStream.pipe(out);
  await finished(out);
  return path;
}

/** Rewrites bytes of a built ZIP (to forge what yazl refuses to write). */
async function patchZip(path: string, patch: (buf: Buffer) => void): Promise<void> {
  const buf = await readFile(path);
  patch(buf);
  await writeFile(path, buf);
}

function replaceAll(buf: Buffer, from: string, to: string): void {
  expect(to.length).toBe(from.length);
  let at = buf.indexOf(from);
  expect(at).toBeGreaterThanOrEqual(0);
  while (at >= 0) {
    buf.write(to, at, 'latin1');
    at = buf.indexOf(from, at + 1);
  }
}

async function rejection(p: Promise<unknown>): Promise<ZipVerificationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ZipVerificationError);
  return err as ZipVerificationError;
}

async function collect(path: string): Promise<ZipRow[]> {
  const rows: ZipRow[] = [];
  for await (const row of readZipRows(path)) rows.push(row);
  return rows;
}

const HEADER = 'developer,account_id,cc_id,agent_id,call_id\n';
const CALL = '20240101101500123456_call_1.csv';
const RECORD = '20240101101500123456_record_1.csv';

describe('verifyZip', () => {
  it('summarises a good ZIP with call and record files', async () => {
    const callData = `${HEADER}d,a,1,100,c1\nd,a,1,100,c2\n`;
    const path = await makeZip([
      { name: CALL, data: callData },
      { name: RECORD, data: 'd,a,1,100,c1\n', compress: false },
    ]);
    const summary = await verifyZip(path);
    expect(summary.entries[0]!.compressedBytes).toBeGreaterThan(0);
    expect(summary.entries).toEqual([
      {
        name: CALL,
        kind: 'call',
        rows: 2,
        header: true,
        uncompressedBytes: callData.length,
        compressedBytes: summary.entries[0]!.compressedBytes,
      },
      { name: RECORD, kind: 'record', rows: 1, header: false, uncompressedBytes: 13, compressedBytes: 13 },
    ]);
  });

  it('counts rows with and without a header row', async () => {
    const body = 'd,a,1,100,c1\nd,a,1,100,c2\nd,a,1,100,c3';
    const path = await makeZip([
      { name: '1_call_1.csv', data: HEADER + body },
      { name: '1_call_2.csv', data: body },
      { name: '1_call_3.csv', data: `\ufeff"developer",x\r\n${body}\r\n` },
    ]);
    const { entries } = await verifyZip(path);
    expect(entries.map((e) => [e.rows, e.header])).toEqual([
      [3, true],
      [3, false],
      [3, true],
    ]);
  });

  it('counts a quoted field with embedded newlines as one row', async () => {
    const path = await makeZip([
      { name: '1_record.csv', data: 'd,"line one\nline two\r\nline three",x\nd,"say ""hi""",y\n\n' },
    ]);
    expect((await verifyZip(path)).entries[0]).toMatchObject({ kind: 'record', rows: 2 });
  });

  it('accepts several files of each kind and classifies other entries', async () => {
    const path = await makeZip([
      { name: '1_call_1.csv', data: 'a\n' },
      { name: '1_call_2.csv', data: 'a\nb\n' },
      { name: '1_record_1.csv', data: 'a\n' },
      { name: '1_record_2.csv', data: 'a\nb\nc\n' },
      { name: 'readme.txt', data: 'not, "csv\n' },
    ]);
    const { entries } = await verifyZip(path);
    expect(entries.map((e) => [e.kind, e.rows])).toEqual([
      ['call', 1],
      ['call', 2],
      ['record', 1],
      ['record', 3],
      ['other', 0],
    ]);
  });

  it('rejects an entry whose stored bytes were altered, by its CRC-32', async () => {
    const path = await makeZip([{ name: CALL, data: 'd,a,1,100,call-one\n', compress: false }]);
    await patchZip(path, (buf) => replaceAll(buf, 'call-one', 'call-two'));
    const err = await rejection(verifyZip(path));
    expect(err.type).toBe('ZipCorrupt');
    expect(err.entry).toBe(CALL);
    expect(err.message).toMatch(/fails its CRC-32 check/);
  });

  it('rejects a deflated entry with a corrupted byte', async () => {
    const data = Array.from({ length: 2000 }, (_, i) => `d,a,1,100,c${i}\n`).join('');
    const path = await makeZip([{ name: CALL, data }]);
    await patchZip(path, (buf) => {
      buf[200] = buf[200]! ^ 0xff;
    });
    expect((await rejection(verifyZip(path))).type).toBe('ZipCorrupt');
  });

  it('rejects an entry holding more bytes than its header declares', async () => {
    const path = await makeZip([{ name: CALL, data: 'x'.repeat(5000) }]);
    await patchZip(path, (buf) => {
      const cd = buf.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      buf.writeUInt32LE(100, cd + 24);
    });
    const err = await rejection(verifyZip(path));
    expect(err.type).toBe('ZipCorrupt');
    expect(err.message).toMatch(/more than its declared 100 bytes|too many bytes/);
  });

  it('rejects more entries than the limit', async () => {
    const path = await makeZip(
      Array.from({ length: 6 }, (_, i) => ({ name: `1_call_${i}.csv`, data: 'a\n' })),
    );
    const err = await rejection(verifyZip(path, { maxEntries: 5 }));
    expect(err.type).toBe('ZipLimitExceeded');
    expect(err.message).toMatch(/6 entries, more than the limit of 5/);
    await expect(verifyZip(path, { maxEntries: 6 })).resolves.toBeDefined();
  });

  it('rejects a highly compressed entry as a possible ZIP bomb', async () => {
    const path = await makeZip([{ name: CALL, data: Buffer.alloc(20 * 1024 * 1024) }]);
    const err = await rejection(verifyZip(path));
    expect(err.type).toBe('ZipLimitExceeded');
    expect(err.message).toMatch(/compression ratio \d+:1, above the limit of 200:1/);
    await expect(verifyZip(path, { maxCompressionRatio: 5000 })).resolves.toBeDefined();
  });

  it('does not apply the ratio cap to small entries', async () => {
    const path = await makeZip([{ name: CALL, data: Buffer.alloc(512 * 1024, 0x41) }]);
    await expect(verifyZip(path)).resolves.toBeDefined();
  });

  it('rejects more uncompressed bytes than the limit', async () => {
    const path = await makeZip([
      { name: '1_call_1.csv', data: 'a\n'.repeat(400) },
      { name: '1_call_2.csv', data: 'a\n'.repeat(400) },
    ]);
    const err = await rejection(verifyZip(path, { maxUncompressedBytes: 1000 }));
    expect(err.type).toBe('ZipLimitExceeded');
    expect(err.entry).toBe('1_call_2.csv');
  });

  it('rejects an entry named ../evil.csv (zip-slip)', async () => {
    const path = await makeZip([{ name: 'xx/evil.csv', data: 'a\n' }]);
    await patchZip(path, (buf) => replaceAll(buf, 'xx/evil.csv', '../evil.csv'));
    const err = await rejection(verifyZip(path));
    expect(err.type).toBe('ZipCorrupt');
    expect(err.message).toBe(
      'ZIP entry "../evil.csv" is rejected: entry name escapes the extraction directory with ".."',
    );
    await expect(rejection(collect(path))).resolves.toMatchObject({ type: 'ZipCorrupt' });
  });

  it('rejects an absolute entry name', async () => {
    const path = await makeZip([{ name: 'xetc/evil.csv', data: 'a\n' }]);
    await patchZip(path, (buf) => replaceAll(buf, 'xetc/evil.csv', '/etc/evil.csv'));
    expect((await rejection(verifyZip(path))).message).toMatch(/absolute entry name/);
  });

  it('rejects a file that is not a ZIP', async () => {
    const path = join(dir, 'not.zip');
    await writeFile(path, '{"resultCode":"0300011","resultDesc":"file not exist"}');
    expect((await rejection(verifyZip(path))).type).toBe('ZipCorrupt');
  });

  it('rejects a truncated ZIP', async () => {
    const path = await makeZip([{ name: CALL, data: 'd,a\n'.repeat(1000) }]);
    const buf = await readFile(path);
    await writeFile(path, buf.subarray(0, buf.length - 30));
    expect((await rejection(verifyZip(path))).type).toBe('ZipCorrupt');
  });

  it('verifies a CSV entry ending inside a quoted field, with a warning naming the line', async () => {
    const path = await makeZip([{ name: CALL, data: 'd,a\nd,"never closed\nd,b\n' }]);
    const summary = await verifyZip(path);
    expect(summary.entries[0]).toMatchObject({
      rows: 3,
      warnings: ['line 2: quote opened here never closes; rows counted by line'],
    });
    expect(summary.warnings).toEqual([
      `${CALL}: line 2: quote opened here never closes; rows counted by line`,
    ]);
  });

  it('passes a missing file through as a file system error', async () => {
    await expect(verifyZip(join(dir, 'missing.zip'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('exports the default caps', () => {
    expect(DEFAULT_MAX_ENTRIES).toBe(10_000);
    expect(DEFAULT_MAX_UNCOMPRESSED_BYTES).toBe(20 * 1024 ** 3);
    expect(DEFAULT_MAX_COMPRESSION_RATIO).toBe(200);
  });
});

describe('readZipRows', () => {
  it('yields the data rows of call and record entries, skipping headers and other entries', async () => {
    const path = await makeZip([
      { name: CALL, data: `${HEADER}d,a,1,100,"c1, with comma"\r\nd,a,1,100,"multi\nline"\r\n` },
      { name: 'notes.txt', data: 'ignored\n' },
      { name: RECORD, data: 'd,a,1,100,c1,rec/path.wav\n' },
    ]);
    expect(await collect(path)).toEqual([
      { entry: CALL, kind: 'call', cells: ['d', 'a', '1', '100', 'c1, with comma'] },
      { entry: CALL, kind: 'call', cells: ['d', 'a', '1', '100', 'multi\nline'] },
      { entry: RECORD, kind: 'record', cells: ['d', 'a', '1', '100', 'c1', 'rec/path.wav'] },
    ]);
  });

  it('yields exactly as many rows as verifyZip counts, across many chunks', async () => {
    const rows = Array.from({ length: 30_000 }, (_, i) =>
      i % 7 === 0 ? `d,"q ""${i}""\nx",${i}\n` : `d,a,${i},中文\n`,
    ).join('');
    const path = await makeZip([{ name: CALL, data: HEADER + rows }]);
    const summary = await verifyZip(path);
    const read = await collect(path);
    expect(summary.entries[0]!.rows).toBe(30_000);
    expect(read).toHaveLength(30_000);
    expect(read[1]!.cells).toEqual(['d', 'a', '1', '中文']);
    expect(read[7]!.cells).toEqual(['d', 'q "7"\nx', '7']);
  });

  it('throws after the rows of an entry whose CRC-32 fails', async () => {
    const path = await makeZip([{ name: CALL, data: 'd,a,1,100,call-one\n', compress: false }]);
    await patchZip(path, (buf) => replaceAll(buf, 'call-one', 'call-two'));
    expect((await rejection(collect(path))).message).toMatch(/CRC-32/);
  });
});

describe('entry names', () => {
  it.each([
    ['20180702101010123456_call_1.csv', 'call'],
    ['20180702101010123456_call.csv', 'call'],
    ['dir/20180702101010123456_CALL_12.csv', 'call'],
    ['20180702101010123456_record_3.csv', 'record'],
    ['20180702101010123456_record.csv', 'record'],
    ['x_call_record_1.csv', 'record'],
    ['x_call_data.txt', 'call'],
    ['readme.txt', 'other'],
    ['callrecord.csv', 'other'],
  ])('classifies %s as %s', (name, kind) => {
    expect(classifyEntryName(name)).toBe(kind);
  });

  it.each(['../evil.csv', 'a/../../evil.csv', '/etc/passwd', 'C:/windows/evil.csv', ''])(
    'finds %j unsafe',
    (name) => {
      expect(unsafeEntryName(name)).toBeDefined();
    },
  );

  it.each(['a.csv', 'dir/a.csv', 'a..b.csv', '...csv'])('finds %j safe', (name) => {
    expect(unsafeEntryName(name)).toBeUndefined();
  });
});

describe('CsvRowScanner', () => {
  function scan(
    input: Buffer,
    chunkSizes: number[],
    collect: boolean,
  ): { rows: string[][]; count: number; header: boolean } {
    const rows: string[][] = [];
    const scanner = new CsvRowScanner(collect, (cells) => rows.push(cells));
    let at = 0;
    let k = 0;
    while (at < input.length) {
      const size = chunkSizes.length > 0 ? chunkSizes[k++ % chunkSizes.length]! : input.length;
      scanner.push(input.subarray(at, at + size));
      at += size;
    }
    scanner.end();
    return { rows, count: scanner.rows, header: scanner.header };
  }

  function quote(cell: string): string {
    return /[",\r\n]/.test(cell) || cell === '' ? `"${cell.replace(/"/g, '""')}"` : cell;
  }

  const cell = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r', ' ', 'é', '中', '-') });
  const table = fc
    .array(fc.array(cell, { minLength: 1, maxLength: 5 }), { maxLength: 20 })
    .filter((rows) => rows[0]?.[0]?.trim().toLowerCase() !== 'developer');

  it('reads back any table written with RFC 4180 quoting, however the bytes are chunked', () => {
    fc.assert(
      fc.property(
        table,
        fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 5 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        (rows, chunks, eol, finalEol) => {
          const text =
            rows.map((r) => r.map(quote).join(',')).join(eol) + (finalEol && rows.length > 0 ? eol : '');
          const input = Buffer.from(text, 'utf8');
          const collected = scan(input, chunks, true);
          expect(collected.rows).toEqual(rows);
          expect(collected.count).toBe(rows.length);
          expect(scan(input, chunks, false).count).toBe(rows.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('counts the same rows as it collects for arbitrary bytes, however chunked', () => {
    const bytes = fc.array(fc.constantFrom(...'ab,"\n\r '.split('').map((c) => c.charCodeAt(0))), {
      maxLength: 60,
    });
    fc.assert(
      fc.property(bytes, fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 4 }), (arr, chunks) => {
        const input = Buffer.from(arr);
        const expected = scan(input, [], true).count;
        expect(scan(input, chunks, false).count).toBe(expected);
        expect(scan(input, chunks, true).count).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('skips empty lines and keeps text after a closing quote', () => {
    expect(scan(Buffer.from('\n\r\na,"b"c\n""\n,\n'), [], true).rows).toEqual([['a', 'bc'], [''], ['', '']]);
  });
});

/** Feeds `input` to a scanner in pieces of the given sizes (cycled; none = one piece). */
function scanAll(
  input: Buffer,
  chunkSizes: number[] = [],
  collect = false,
): CsvRowScanner & { collected: string[][] } {
  const collected: string[][] = [];
  const scanner = new CsvRowScanner(collect, (cells) => collected.push(cells));
  let at = 0;
  let k = 0;
  while (at < input.length) {
    const size = chunkSizes.length > 0 ? chunkSizes[k++ % chunkSizes.length]! : input.length;
    scanner.push(input.subarray(at, at + size));
    at += size;
  }
  scanner.end();
  return Object.assign(scanner, { collected });
}

const CDR_HEADER = 'developer,account_id,cc_id,agent_id,call_id,caller_no,callee_no,display_name\n';
function cdr(i: number, displayName: string): string {
  return `dev0001,acc0001,1,1001,c${i},1380000${String(i).padStart(4, '0')},4008001000,${displayName}\n`;
}

describe('CSV content is data, not transfer', () => {
  it('counts an unclosed quote in a display name by line, warns with its line, and reads the same rows (input 6)', async () => {
    // 950 calls; line 18 (header is line 1) opens a quote that never closes; later lines hold
    // well-quoted fields whose quotes would pair with it and swallow lines.
    const lines = Array.from({ length: 950 }, (_, i) =>
      cdr(i, i === 16 ? '"Anonymous,caller' : i % 9 === 0 ? `"rec ${i}, leg 1.wav"` : `name ${i}`),
    );
    const data = CDR_HEADER + lines.join('');
    const path = await makeZip([{ name: CALL, data }]);
    const summary = await verifyZip(path, { dataType: 'call' });
    expect(summary.empty).toBe(false);
    expect(summary.entries[0]).toMatchObject({
      rows: 950,
      header: true,
      warnings: ['line 18: quote opened here never closes; rows counted by line'],
    });
    expect(summary.warnings).toEqual([
      `${CALL}: line 18: quote opened here never closes; rows counted by line`,
    ]);
    const read = await collect(path);
    expect(read).toHaveLength(950);
    expect(read.map((r) => r.cells[4])).toEqual(lines.map((_, i) => `c${i}`));
    expect(read[18]!.cells[7]).toBe('rec 18, leg 1.wav');
  });

  it('counts every line after a quote that reaches the end of the file', () => {
    const text = `${CDR_HEADER}${cdr(0, 'a')}${cdr(1, '"Anonymous')}${cdr(2, 'b')}${cdr(3, 'c')}`;
    for (const sizes of [[], [1], [7, 3], [64]]) {
      const counted = scanAll(Buffer.from(text), sizes);
      expect(counted.rows).toBe(4);
      expect(counted.warnings).toEqual(['line 3: quote opened here never closes; rows counted by line']);
      const collected = scanAll(Buffer.from(text), sizes, true);
      expect(collected.collected.map((c) => c[4])).toEqual(['c0', 'c1', 'c2', 'c3']);
    }
  });

  it('keeps counting exactly after a broken quote: later multi-line fields are one record again', () => {
    const text = 'a,"open\nb,"x",y\nc,"two\nlines",z\nd\n';
    for (const sizes of [[], [1], [2, 5]]) {
      expect(scanAll(Buffer.from(text), sizes).rows).toBe(4);
      expect(scanAll(Buffer.from(text), sizes, true).collected).toEqual([
        ['a', 'open'],
        ['b', 'x', 'y'],
        ['c', 'two\nlines', 'z'],
        ['d'],
      ]);
    }
  });

  it('counts by line when the first record itself never closes its quote, header or not', () => {
    for (const sizes of [[], [1], [4]]) {
      for (const collect of [false, true]) {
        const withHeader = scanAll(Buffer.from('developer,a,"x\nd,1\nd,"2"\n'), sizes, collect);
        expect([withHeader.header, withHeader.rows, withHeader.warnings]).toEqual([
          true,
          2,
          ['line 1: quote opened here never closes; rows counted by line'],
        ]);
        const without = scanAll(Buffer.from('d,"x\nd,1\nd,2\n'), sizes, collect);
        expect([without.header, without.rows]).toEqual([false, 3]);
      }
    }
  });

  it('holds no more than the first cell while counting, however long an unclosed first field runs', () => {
    const scanner = new CsvRowScanner(false);
    scanner.push(Buffer.from('"open\n'));
    const line = Buffer.from('d,a,1,100,c\n'.repeat(10_000));
    for (let k = 0; k < 200; k++) scanner.push(line);
    scanner.end();
    expect(scanner.rows).toBe(1 + 200 * 10_000);
    // The scanner's own buffers stay small: a few kilobytes, not the 24 MB pushed.
    const held = JSON.stringify(scanner).length;
    expect(held).toBeLessThan(20_000);
  });

  it('names each broken line, up to a cap, and counts the rest', () => {
    const text = Array.from({ length: 30 }, (_, i) => `r${i},"open ${i}\nr${i}b,"ok",x\n`).join('');
    const scanner = scanAll(Buffer.from(text));
    expect(scanner.rows).toBe(60);
    expect(scanner.warningCount).toBe(30);
    expect(scanner.warnings).toHaveLength(MAX_WARNINGS_PER_ENTRY);
    expect(scanner.warnings[1]).toBe('line 3: quote opened here never closes; rows counted by line');
  });

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('counts %s line endings, with and without a final one', (_, eol) => {
    const body = ['d,a,1', 'd,"multi' + eol + 'line",2', 'd,"x ""y""",3', '', 'd,,4'].join(eol);
    for (const text of [body, body + eol]) {
      for (const sizes of [[], [1], [3, 2]]) {
        const scanner = scanAll(Buffer.from(HEADER.replace('\n', eol) + text), sizes, true);
        expect(scanner.rows).toBe(4);
        expect(scanner.header).toBe(true);
        expect(scanner.collected[1]).toEqual(['d', `multi${eol}line`, '2']);
        expect(scanner.warnings).toEqual([]);
      }
    }
  });

  it('recognises a header after a BOM, quoted or not, in any case', () => {
    for (const head of [
      '\ufeffdeveloper,a\n',
      '\ufeff"developer",a\r\n',
      '"Developer" ,a\n',
      ' DEVELOPER,a\r',
    ]) {
      const scanner = scanAll(Buffer.from(`${head}d,1\nd,2\n`), [2]);
      expect([scanner.header, scanner.rows]).toEqual([true, 2]);
    }
    expect(scanAll(Buffer.from('\ufeffd,1\nd,2\n')).header).toBe(false);
    expect(scanAll(Buffer.from('\ufeffd,1\nd,2\n')).rows).toBe(2);
  });

  it('counts rows with extra or missing columns', () => {
    const text = `${HEADER}d,a,1,100,c1,extra,more\nd,a\nd\nd,a,1,100,c4,,,,,,,,,\n`;
    expect(scanAll(Buffer.from(text), [5]).rows).toBe(4);
  });

  it('counts GBK text exactly, whatever cuts its characters, and says it is not UTF-8', () => {
    // 录音 and 匿名 in GBK: trail bytes never take the values of quote, comma, CR or LF.
    const gbk = (s: string): Buffer =>
      Buffer.concat(
        s
          .split(/(录音|匿名)/)
          .map((part) =>
            part === '录音'
              ? Buffer.from('c2bcd2f4', 'hex')
              : part === '匿名'
                ? Buffer.from('c4e4c3fb', 'hex')
                : Buffer.from(part, 'latin1'),
          ),
      );
    const input = gbk(`${HEADER}d,匿名,"录音, 1.wav"\nd,"匿名 ""x""",录音\nd,a\n`);
    for (const sizes of [[], [1], [3]]) {
      const scanner = scanAll(input, sizes);
      expect(scanner.rows).toBe(3);
      expect(scanner.utf8).toBe(false);
      expect(scanner.warnings).toEqual([expect.stringMatching(/not valid UTF-8/)]);
      expect(scanAll(input, sizes, true).collected).toEqual([
        ['d', '匿名', '录音, 1.wav'],
        ['d', '匿名 "x"', '录音'],
        ['d', 'a'],
      ]);
    }
    // Valid UTF-8 cut anywhere is still UTF-8.
    for (const sizes of [[1], [2], [5]])
      expect(scanAll(Buffer.from('d,中文,"录音"\n'), sizes).utf8).toBe(true);
  });

  it('reads a semicolon-, tab- or pipe-separated file by its first line', () => {
    for (const sep of [';', '\t', '|']) {
      const text = `developer${sep}a${sep}b\nd${sep}"x${sep}\ny"${sep}1\nd${sep}2${sep},\n`;
      const scanner = scanAll(Buffer.from(text), [], true);
      expect(scanner.rows).toBe(2);
      expect(scanner.collected[0]).toEqual(['d', `x${sep}\ny`, '1']);
    }
  });

  it('calls a ZIP with no entries, or with header-only CSVs, empty', async () => {
    const none = await makeZip([]);
    expect(await verifyZip(none, { dataType: 'call_record' })).toEqual({
      entries: [],
      warnings: [],
      empty: true,
    });
    const headerOnly = await makeZip([
      { name: CALL, data: HEADER },
      { name: RECORD, data: '\ufeffdeveloper,account_id\r\n\r\n' },
      { name: 'dir/', data: '' },
    ]);
    const summary = await verifyZip(headerOnly, { dataType: 'call_record' });
    expect(summary.empty).toBe(true);
    expect(summary.warnings).toEqual([]);
    expect(summary.entries.map((e) => [e.rows, e.header])).toEqual([
      [0, true],
      [0, true],
      [0, false],
    ]);
  });

  it('warns, and does not fail, about a missing kind, a kind not requested and unknown names', async () => {
    const path = await makeZip([
      { name: CALL, data: 'd,1\n' },
      { name: 'cdr_export.csv', data: 'd,2\n' },
    ]);
    const summary = await verifyZip(path, { dataType: 'call_record' });
    expect(summary.empty).toBe(false);
    expect(summary.warnings).toEqual([
      'no _record file although dataType call_record asks for the recording index',
      'cdr_export.csv: name has neither _call nor _record; kept in the ZIP, rows not counted',
    ]);
    expect((await verifyZip(path, { dataType: 'record' })).warnings.slice(0, 2)).toEqual([
      'no _record file although dataType record asks for the recording index',
      '_call files although dataType record asks only for the recording index',
    ]);
    expect((await verifyZip(path)).warnings).toHaveLength(1);
  });

  it('never calls a ZIP empty when an entry has a name it does not know', async () => {
    const path = await makeZip([
      { name: CALL, data: HEADER },
      { name: 'CDR.csv', data: 'd,1\n' },
    ]);
    expect((await verifyZip(path, { dataType: 'call' })).empty).toBe(false);
  });
});

describe('CsvRowScanner against a library serializer', () => {
  const cell = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r', ' ', 'é', '中') });
  const table = fc
    .array(fc.array(cell, { minLength: 1, maxLength: 6 }), { maxLength: 25 })
    .filter((rows) => !/^\s*developer\s*$/i.test(rows[0]?.[0] ?? ''))
    // A record that is one empty unquoted cell is an empty line, which CSV readers skip.
    .map((rows) => rows.filter((r) => !(r.length === 1 && r[0] === '')));

  it('counts exactly the records csv-stringify writes, any line ending, BOM, header, quoting, chunking', () => {
    fc.assert(
      fc.property(
        table,
        fc.constantFrom('\n', '\r\n', '\r'),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 5 }),
        (rows, eol, bom, header, quoted, chunks) => {
          const text = stringify(header ? [['developer', 'x'], ...rows] : rows, {
            record_delimiter: eol,
            bom,
            quoted,
            quoted_empty: true,
            quoted_match: /[\r\n]/,
          });
          const input = Buffer.from(text, 'utf8');
          const counted = scanAll(input, chunks);
          expect(counted.rows).toBe(rows.length);
          expect(counted.header).toBe(header);
          expect(counted.warnings).toEqual([]);
          const collected = scanAll(input, chunks, true);
          expect(collected.collected).toEqual(rows);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('counts one record per line when a field of one line opens a quote that never closes', () => {
    // Not starting with a comma: a quote followed by a separator reads as a closing one (a known limit).
    const plain = fc
      .string({ unit: fc.constantFrom('a', 'b', ',', ' ', '中'), minLength: 1 })
      .filter((c) => !c.startsWith(','));
    fc.assert(
      fc.property(
        fc.array(fc.array(plain, { minLength: 2, maxLength: 5 }), { minLength: 2, maxLength: 25 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom('\n', '\r\n', '\r'),
        fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 5 }),
        (rows, r, f, eol, chunks) => {
          // Every cell quoted, so the quotes of the lines after the broken one are there to pair with it.
          const lines = rows.map((row) => row.map((c) => `"${c}"`).join(','));
          const target = r % rows.length;
          const field = f % rows[target]!.length;
          lines[target] = rows[target]!.map((c, k) => (k === field ? `"${c}` : `"${c}"`)).join(',');
          const input = Buffer.from(lines.join(eol) + eol, 'utf8');
          expect(scanAll(input, chunks).rows).toBe(rows.length);
          expect(scanAll(input, chunks, true).collected).toHaveLength(rows.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
