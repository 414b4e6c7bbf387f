import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { request } from 'undici';
import * as yauzl from 'yauzl';
import { DOWNLOAD_BILL_FILE_PATH, PROTOCOL_VERSION, QUERY_BILL_DATA_PATH } from '../ccfs/protocol';
import { type Credentials, sign } from '../ccfs/signer';

/**
 * Helpers for tests that drive the simulator over real HTTP: a signed POST, a callback receiver and a
 * ZIP reader. Deliberately independent of the product's CC-FS client.
 */

export interface SignedPostOptions {
  credentials: Credentials;
  /** Signed timestamp; default now. */
  timestamp?: Date;
  signedHeaders?: readonly string[];
  /** Replace the Authorization value (or drop it with null). */
  authorization?: string | null;
  /** Send these bytes instead of the signed ones (to break a signature). */
  sendBody?: Buffer;
}

export interface PostResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** POSTs `body` (an object is serialised once) signed with auth-v2 as CC-FS expects. */
export async function signedPost(
  baseUrl: string,
  path: string,
  body: unknown,
  options: SignedPostOptions,
): Promise<PostResult> {
  const url = new URL(path, baseUrl);
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const headers: Record<string, string> = {
    host: url.host,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': String((options.sendBody ?? bytes).length),
  };
  const authorization =
    options.authorization === undefined
      ? sign({
          credentials: options.credentials,
          method: 'POST',
          path: url.pathname,
          query: url.searchParams,
          headers: { ...headers, 'content-length': String(bytes.length) },
          body: bytes,
          signedHeaders: options.signedHeaders,
          timestamp: options.timestamp ?? new Date(),
        })
      : options.authorization;
  if (authorization !== null) headers.authorization = authorization;
  const res = await request(url, { method: 'POST', headers, body: options.sendBody ?? bytes });
  const buf = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    headers: res.headers,
    body: buf,
    json: <T>() => JSON.parse(buf.toString('utf8')) as T,
  };
}

export function envelope(msgBody: unknown): { request: { version: string }; msgBody: unknown } {
  return { request: { version: PROTOCOL_VERSION }, msgBody };
}

/** A signed queryBillData request. */
export function queryBillData(
  baseUrl: string,
  credentials: Credentials,
  msgBody: Record<string, unknown>,
  options: Omit<SignedPostOptions, 'credentials'> = {},
): Promise<PostResult> {
  return signedPost(baseUrl, QUERY_BILL_DATA_PATH, envelope(msgBody), { ...options, credentials });
}

/** A signed downloadBillFile request. */
export function downloadBillFile(
  baseUrl: string,
  credentials: Credentials,
  billFileName: string,
  options: Omit<SignedPostOptions, 'credentials'> = {},
): Promise<PostResult> {
  return signedPost(baseUrl, DOWNLOAD_BILL_FILE_PATH, envelope({ billFileName }), {
    ...options,
    credentials,
  });
}

export interface ReceivedCallback {
  at: number;
  headers: Record<string, string | undefined>;
  raw: Buffer;
  body: {
    request?: { version?: string };
    msgBody: { responseId: string; billFileName: string; accountId?: string };
  };
}

export type CallbackResponder = (cb: ReceivedCallback, index: number) => { status: number; body: string };

export interface CallbackReceiver {
  url: string;
  received: ReceivedCallback[];
  /** Default: HTTP 200 with `{"resultCode":"0","resultDesc":"success"}`. */
  respond(responder: CallbackResponder): void;
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedCallback[]>;
  close(): Promise<void>;
}

const OK = JSON.stringify({ resultCode: '0', resultDesc: 'success' });

/** A tiny express app on a free port that records the callbacks it receives. */
export async function startCallbackReceiver(): Promise<CallbackReceiver> {
  const received: ReceivedCallback[] = [];
  let responder: CallbackResponder = () => ({ status: 200, body: OK });
  const waiters: Array<() => void> = [];
  const app = express();
  app.post('/callback', express.raw({ type: () => true }), (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const cb: ReceivedCallback = {
      at: Date.now(),
      headers,
      raw,
      body: JSON.parse(raw.toString('utf8')) as ReceivedCallback['body'],
    };
    received.push(cb);
    const { status, body } = responder(cb, received.length - 1);
    res.status(status).type('application/json').send(body);
    for (const w of waiters.splice(0)) w();
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/callback`,
    received,
    respond: (r) => {
      responder = r;
    },
    waitFor: async (count, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} callbacks, got ${received.length}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 100));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return received.slice(0, count);
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

export interface ZipEntryContent {
  name: string;
  compressionMethod: number;
  uncompressedSize: number;
  text: string;
  lastModified: Date;
}

/** Every entry of an in-memory ZIP, decoded as UTF-8. */
export async function readZip(buffer: Buffer): Promise<ZipEntryContent[]> {
  const zip = await yauzl.fromBufferPromise(buffer, { lazyEntries: true });
  const out: ZipEntryContent[] = [];
  try {
    for await (const entry of zip.eachEntry()) {
      const stream = await zip.openReadStreamPromise(entry);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      out.push({
        name: entry.fileName,
        compressionMethod: entry.compressionMethod,
        uncompressedSize: entry.uncompressedSize,
        text: Buffer.concat(chunks).toString('utf8'),
        lastModified: entry.getLastModDate({ forceDosFormat: true }),
      });
    }
  } finally {
    zip.close();
  }
  return out;
}

/** RFC 4180 CSV (comma, `"` quoting, `\n` or `\r\n` lines) into rows of cells. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}
