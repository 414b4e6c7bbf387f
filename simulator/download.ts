import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { ZipFile } from 'yazl';
import { type BillFileContent, type BillZip, billZip } from './zip';

/** The documented success content type of downloadBillFile, casing included (protocol §4). */
export const ZIP_CONTENT_TYPE = 'Application/Octet-stream;charset=UTF-8';

export interface ZipDigest {
  sha256: string;
  bytes: number;
}

/** A ZIP with no entries at all: how some CC-FS answer a range without data (options.emptyRange). */
function noEntriesZip(): BillZip {
  const zip = new ZipFile();
  zip.end();
  return { stream: zip.outputStream as Readable, entries: [], rows: {} };
}

/** The bill file's ZIP, or one with no entries when the file stands for an empty range in that form. */
function zipOf(content: BillFileContent, noEntries: boolean): BillZip {
  return noEntries ? noEntriesZip() : billZip(content);
}

/** Generates a bill file's ZIP into a hash only: its size and sha256, without keeping the bytes. */
export async function digestZip(
  content: BillFileContent,
  signal?: AbortSignal,
  noEntries = false,
): Promise<ZipDigest> {
  const { stream } = zipOf(content, noEntries);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    if (signal?.aborted) {
      stream.destroy();
      throw signal.reason;
    }
    const buf = chunk as Buffer;
    hash.update(buf);
    bytes += buf.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

class ClientGone extends Error {
  constructor() {
    super('client went away');
  }
}

async function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) throw new ClientGone();
  if (res.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new ClientGone());
    };
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

export interface SendOptions {
  /** Cut the connection once this many bytes have been written. */
  cutAt?: number;
  /** Throttle to this rate; 0 = as fast as the client reads. */
  bytesPerSecond: number;
  signal: AbortSignal;
  /** Send a ZIP with no entries instead of the content's CSVs. */
  noEntries?: boolean;
}

export interface SendResult {
  /** Set when the whole ZIP went through the hash (it was sent completely). */
  digest?: ZipDigest;
  bytesSent: number;
  complete: boolean;
  rows: Record<string, number>;
}

/**
 * Streams a bill file's ZIP into a response, pulling from the generator only as fast as the socket
 * drains, so memory stays flat however big the file is.
 */
export async function sendZip(
  res: ServerResponse,
  content: BillFileContent,
  options: SendOptions,
): Promise<SendResult> {
  const zip = zipOf(content, options.noEntries ?? false);
  const hash = createHash('sha256');
  let sent = 0;
  const started = Date.now();
  const slice =
    options.bytesPerSecond > 0
      ? Math.max(1, Math.floor(options.bytesPerSecond / 20))
      : Number.POSITIVE_INFINITY;
  res.statusCode = 200;
  res.setHeader('Content-Type', ZIP_CONTENT_TYPE);
  try {
    for await (const chunk of zip.stream) {
      const buf = chunk as Buffer;
      hash.update(buf);
      for (let offset = 0; offset < buf.length;) {
        if (options.signal.aborted) throw new ClientGone();
        let end = Math.min(buf.length, offset + slice);
        if (options.cutAt !== undefined && sent + (end - offset) >= options.cutAt) {
          end = offset + (options.cutAt - sent);
          await new Promise<void>((resolve) => res.write(buf.subarray(offset, end), () => resolve()));
          sent += end - offset;
          // Cut the TCP connection mid-body: the client sees an incomplete chunked response.
          res.socket?.destroy();
          zip.stream.destroy();
          return { bytesSent: sent, complete: false, rows: zip.rows };
        }
        await write(res, buf.subarray(offset, end));
        sent += end - offset;
        offset = end;
        if (options.bytesPerSecond > 0) {
          const due = started + (sent / options.bytesPerSecond) * 1000 - Date.now();
          if (due > 0) await sleep(due, undefined, { signal: options.signal });
        }
      }
    }
  } catch (err) {
    const gone = err instanceof ClientGone || options.signal.aborted || res.destroyed;
    zip.stream.destroy();
    if (!res.destroyed) res.destroy();
    if (gone) return { bytesSent: sent, complete: false, rows: zip.rows };
    throw err;
  }
  res.end();
  const complete = await finished(res).then(
    () => true,
    () => false,
  );
  const digest = { sha256: hash.digest('hex'), bytes: sent };
  return complete
    ? { digest, bytesSent: sent, complete, rows: zip.rows }
    : { bytesSent: sent, complete, rows: zip.rows };
}
