import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamingZipVerifier, verifyZip, ZipVerificationError } from '../../ccfs/zip';

/**
 * The streaming verifier (issue 14, target 1) must give exactly verifyZip's answer for every ZIP —
 * from the bytes it saw when the central directory confirms them, by reading the file again otherwise.
 */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ccfs-zip-stream-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Entry {
  name: string;
  data: string | Buffer;
  /** `stream`: stored with a data descriptor (sizes unknown up front, as CC-FS-sized files are written). */
  how: 'stream' | 'buffer' | 'deflate' | 'directory';
}

let counter = 0;
async function zipOf(
  entries: Entry[],
  options: { forceZip64Format?: boolean } = {},
): Promise<{ path: string; bytes: Buffer }> {
  const zip = new yazl.ZipFile();
  const mtime = new Date(2024, 0, 1);
  for (const e of entries) {
    const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    if (e.how === 'directory') zip.addEmptyDirectory(e.name, { mtime });
    else if (e.how === 'stream')
      zip.addReadStream(Readable.from([data]), e.name, { compress: false, mtime, ...options });
    else zip.addBuffer(data, e.name, { compress: e.how === 'deflate', mtime, ...options });
  }
  zip.end();
  const bytes = await buffer(zip.outputStream);
  const path = join(dir, `z${counter++}.zip`);
  await writeFile(path, bytes);
  return { path, bytes };
}

/** Feeds the bytes in pieces of 1..`max` bytes (deterministic), as a network would. */
function feed(v: StreamingZipVerifier, bytes: Buffer, max: number): void {
  let seed = 7;
  for (let i = 0; i < bytes.length;) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (seed % max);
    v.push(bytes.subarray(i, i + n));
    i += n;
  }
}

const CALLS = 'developer,callId,callerNo\nd1,1,"138,00"\nd1,2,"multi\nline"\n';
const RECORDS = '\ufeffdeveloper;recordId\nd1;9\n';

describe('StreamingZipVerifier', () => {
  const cases: Array<[string, Entry[], boolean]> = [
    [
      'stored entries with data descriptors',
      [
        { name: '20240101000000123_call_1.csv', data: CALLS, how: 'stream' },
        { name: '20240101000000123_record_1.csv', data: RECORDS, how: 'stream' },
      ],
      true,
    ],
    [
      'stored entries of known size, a directory and an unknown name',
      [
        { name: 'x/', data: '', how: 'directory' },
        { name: 'x/a_call.csv', data: CALLS, how: 'buffer' },
        { name: 'readme.txt', data: 'hello', how: 'buffer' },
      ],
      true,
    ],
    [
      'data holding a data descriptor signature that is not one',
      [
        {
          name: 'a_call.csv',
          data: Buffer.concat([
            Buffer.from('developer,x\nd,'),
            Buffer.from([0x50, 0x4b, 0x07, 0x08]),
            Buffer.alloc(30, 0x41),
            Buffer.from('\n'),
          ]),
          how: 'stream',
        },
      ],
      true,
    ],
    [
      'header-only and empty entries',
      [
        { name: 'a_call.csv', data: 'developer,a\n', how: 'stream' },
        { name: 'a_record.csv', data: '', how: 'stream' },
      ],
      true,
    ],
    ['no entries at all', [], true],
    [
      'a deflated entry first (it and the entries after it read from the file)',
      [
        { name: 'a_call.csv', data: CALLS.repeat(50), how: 'deflate' },
        { name: 'a_record.csv', data: RECORDS, how: 'stream' },
      ],
      true,
    ],
    [
      'a stored entry, then a deflated one (only that one read from the file)',
      [
        { name: 'a_call.csv', data: CALLS, how: 'stream' },
        { name: 'a_record.csv', data: RECORDS.repeat(50), how: 'deflate' },
      ],
      true,
    ],
  ];

  for (const [title, entries, streamed] of cases) {
    it(`answers as verifyZip for ${title}, ${streamed ? 'from the streamed bytes' : 'by reading the file again'}`, async () => {
      const { path, bytes } = await zipOf(entries);
      const expected = await verifyZip(path, { dataType: 'call_record' });
      for (const max of [1, 3, 17, 100, bytes.length]) {
        const v = new StreamingZipVerifier();
        feed(v, bytes, max);
        expect(await v.finish(path, { dataType: 'call_record' })).toEqual(expected);
        expect(v.streamed, `pieces of up to ${max} bytes: ${v.gaveUp ?? ''}`).toBe(streamed);
        // From the first compressed entry on, entries are read from the file.
        const firstDeflated = entries.findIndex((e) => e.how === 'deflate');
        expect(v.readAgain).toBe(firstDeflated === -1 ? 0 : entries.length - firstDeflated);
      }
    });
  }

  it('answers as verifyZip for ZIP64 local headers and descriptors', async () => {
    for (const how of ['stream', 'buffer'] as const) {
      const { path, bytes } = await zipOf([{ name: 'a_call.csv', data: CALLS, how }], {
        forceZip64Format: true,
      });
      const v = new StreamingZipVerifier();
      feed(v, bytes, 13);
      expect(await v.finish(path)).toEqual(await verifyZip(path));
    }
  });

  it('fails a damaged entry exactly as verifyZip does, whatever it streamed', async () => {
    const { path, bytes } = await zipOf([{ name: 'a_call.csv', data: CALLS, how: 'buffer' }]);
    // Flip a byte of the entry's data (after the 30-byte header and the name) on disk and in the stream.
    const at = 30 + 'a_call.csv'.length + 5;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    await writeFile(path, bytes);
    const expected = await verifyZip(path).catch((e: unknown) => e);
    expect(expected).toBeInstanceOf(ZipVerificationError);
    const v = new StreamingZipVerifier();
    feed(v, bytes, 7);
    const got = await v.finish(path).catch((e: unknown) => e);
    expect(got).toEqual(expected);
    expect(v.streamed).toBe(false);
  });

  it('reads the file again when the bytes it saw are not the file on disk', async () => {
    const a = await zipOf([{ name: 'a_call.csv', data: CALLS, how: 'stream' }]);
    const b = await zipOf([{ name: 'a_call.csv', data: `${CALLS}d2,3,x\n`, how: 'stream' }]);
    const v = new StreamingZipVerifier();
    feed(v, a.bytes, 50);
    const summary = await v.finish(b.path);
    expect(summary).toEqual(await verifyZip(b.path));
    expect(summary.entries[0]!.rows).toBe(3);
    expect(v.streamed).toBe(false);
  });

  it('reads the file again when the stream stopped inside an entry', async () => {
    const { path, bytes } = await zipOf([{ name: 'a_call.csv', data: CALLS, how: 'stream' }]);
    const v = new StreamingZipVerifier();
    v.push(bytes.subarray(0, 40));
    expect(await v.finish(path)).toEqual(await verifyZip(path));
    expect(v.streamed).toBe(false);
  });
});
