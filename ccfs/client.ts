import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import type { Logger } from '../lib/logger';
import { silentLogger } from '../lib/logger';
import {
  DOWNLOAD_BILL_FILE_PATH,
  DownloadBillFileBody,
  QUERY_BILL_DATA_PATH,
  QueryBillDataAnswer,
  QueryBillDataBody,
  ResultEnvelope,
  envelope,
} from './protocol';
import { DEFAULT_SIGNED_HEADERS, sign, type Credentials } from './signer';
import {
  CcfsError,
  classifyResult,
  classifyTransportError,
  errorFromClassification,
  type CcfsErrorType,
  type CcfsOperation,
} from './errors';

/**
 * HTTP client for the two CC-FS bill-export interfaces (docs/ccfs-protocol.md §2–§4): signs each
 * request over the exact bytes it sends, validates what goes out and what comes back, streams
 * bill files to disk, and turns every failure into a classified CcfsError.
 */

export interface CcfsClientOptions {
  /** `https://ip:port` of CC-FS or its load balancer; a path prefix is kept. */
  baseUrl: string;
  credentials: Credentials;
  /** PEM file of a private CA to trust in addition to the system roots. Read once. */
  caFile?: string;
  /** Disables certificate verification. For development only: logs a warning on every request. */
  insecureTls?: boolean;
  /** Header names to sign; a subset of content-length, content-type, host. */
  signedHeaders?: readonly string[];
  /** Connect and response-header timeout, and the longest silence allowed inside a body. */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** Clock for the signature timestamp. */
  now?: () => Date;
}

export type QueryOutcome =
  { kind: 'accepted'; responseId: string } | { kind: 'empty'; resultCode: string; resultDesc: string };

export interface DownloadResult {
  bytes: number;
  sha256: string;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Called with the running total of bytes written, once per received chunk. */
  onProgress?: (bytes: number) => void;
  /**
   * Called with every chunk of a ZIP body, in order, as it arrives (before it is written), so a
   * caller can verify the file in the same pass (StreamingZipVerifier). The chunk is not the
   * caller's to keep or modify. Not called for JSON answers.
   */
  onData?: (chunk: Buffer) => void;
}

export const REQUEST_CONTENT_TYPE = 'application/json;charset=UTF-8';
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Largest JSON answer read into memory; CC-FS answers are a few hundred bytes. */
export const MAX_JSON_ANSWER_BYTES = 1024 * 1024;
const SIGNABLE_HEADERS = new Set(['content-length', 'content-type', 'host']);
const ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
/** An archive with no entries starts with its end-of-central-directory record: how a CC-FS may send an empty range. */
const EMPTY_ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const MAX_DESC_CHARS = 500;

/** A failure reading the response body (as opposed to writing the destination file). */
class BodyReadError extends Error {
  constructor(readonly original: unknown) {
    super('response body read failed');
  }
}

interface Sent {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

function header(headers: Sent['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

function retryAfterMs(headers: Sent['headers'], now: Date): number | undefined {
  const v = header(headers, 'retry-after');
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

function zodIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

export class CcfsClient {
  private readonly origin: string;
  private readonly basePath: string;
  private readonly host: string;
  private readonly credentials: Credentials;
  private readonly signedHeaders: readonly string[];
  private readonly insecureTls: boolean;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly agent: Agent;

  constructor(options: CcfsClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new TypeError(`CC-FS baseUrl must be http(s), got ${url.protocol}`);
    if (url.search || url.hash) throw new TypeError('CC-FS baseUrl must not carry a query or fragment');
    if (!options.credentials.ak || !options.credentials.sk)
      throw new TypeError('CC-FS credentials need both an AK and an SK');
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    // The Host header sent is the one signed: undici would send exactly this value too.
    this.host = url.host;
    this.credentials = { ak: options.credentials.ak, sk: options.credentials.sk };
    const signed = [...(options.signedHeaders ?? DEFAULT_SIGNED_HEADERS)].map((h) => h.trim().toLowerCase());
    const unknown = signed.filter((h) => !SIGNABLE_HEADERS.has(h));
    if (signed.length === 0 || unknown.length > 0) {
      throw new TypeError(
        `signedHeaders must be a non-empty subset of ${[...SIGNABLE_HEADERS].join(', ')}; got ${signed.join(', ')}`,
      );
    }
    this.signedHeaders = [...new Set(signed)].sort();
    this.insecureTls = options.insecureTls ?? false;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
    // `ca` replaces Node's trust store, so the private CA is appended to the system roots.
    const ca = options.caFile ? [...rootCertificates, readFileSync(options.caFile, 'utf8')] : undefined;
    this.agent = new Agent({
      connect: { ...(ca && { ca }), rejectUnauthorized: !this.insecureTls, timeout: this.timeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  /** Asks CC-FS to produce the bill file for a time range; the file name arrives by callback. */
  async queryBillData(body: QueryBillDataBody, opts: { signal?: AbortSignal } = {}): Promise<QueryOutcome> {
    const operation = 'queryBillData';
    const parsed = QueryBillDataBody.safeParse(body);
    if (!parsed.success) throw this.invalidRequest(operation, parsed.error);
    const res = await this.send(operation, QUERY_BILL_DATA_PATH, parsed.data, opts.signal);
    try {
      if (res.statusCode !== 200) throw await this.httpFailure(operation, res);
      const json = await this.readJson(operation, res.body, []);
      const answer = this.parseEnvelope(operation, json);
      const c = classifyResult({
        httpStatus: 200,
        resultCode: answer.resultCode,
        resultDesc: answer.resultDesc,
        operation,
      });
      if (c.outcome === 'empty')
        return { kind: 'empty', resultCode: answer.resultCode, resultDesc: answer.resultDesc };
      if (c.outcome === 'failure')
        throw errorFromClassification(operation, c, { httpStatus: 200, ...answer });
      const ok = QueryBillDataAnswer.safeParse(json);
      if (!ok.success) throw this.protocolError(operation, `invalid success answer: ${zodIssues(ok.error)}`);
      if (!ok.data.resultData)
        throw this.protocolError(operation, 'success answer carries no resultData.responseId');
      return { kind: 'accepted', responseId: ok.data.resultData.responseId };
    } catch (err) {
      res.body.destroy();
      throw this.rethrow(operation, err, opts.signal);
    }
  }

  /**
   * Streams a bill file to `destination` (through a temporary sibling file renamed on success, so
   * a partial file never sits under the final name). Success needs BOTH the octet-stream content
   * type and the `PK\x03\x04` magic; anything else is read as a JSON error answer, and a body that
   * is neither is a CcfsProtocolError. A body cut short is a retryable CcfsTruncated.
   */
  async downloadBillFile(
    billFileName: string,
    destination: string,
    opts: DownloadOptions = {},
  ): Promise<DownloadResult> {
    const operation = 'downloadBillFile';
    const parsed = DownloadBillFileBody.safeParse({ billFileName });
    if (!parsed.success) throw this.invalidRequest(operation, parsed.error);
    const res = await this.send(operation, DOWNLOAD_BILL_FILE_PATH, parsed.data, opts.signal);
    const partial = `${destination}.${randomBytes(6).toString('hex')}.part`;
    try {
      if (res.statusCode !== 200) throw await this.httpFailure(operation, res);
      const encoding = header(res.headers, 'content-encoding');
      if (encoding && encoding.trim().toLowerCase() !== 'identity') {
        throw this.protocolError(operation, `unexpected Content-Encoding "${encoding}"`);
      }
      const contentType = header(res.headers, 'content-type');
      const source = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const head = await readHead(source, ZIP_MAGIC.length);
      const start = Buffer.concat(head).subarray(0, ZIP_MAGIC.length);
      const magic = start.equals(ZIP_MAGIC) || start.equals(EMPTY_ZIP_MAGIC);
      if (mediaType(contentType) === 'application/octet-stream' && magic) {
        return await this.saveZip(res, head, source, partial, destination, opts);
      }
      const json = await this.readJson(operation, source, head, magic ? 'zip' : 'unknown');
      const answer = this.parseEnvelope(operation, json);
      const c = classifyResult({
        httpStatus: 200,
        resultCode: answer.resultCode,
        resultDesc: answer.resultDesc,
        operation,
      });
      if (c.outcome === 'failure')
        throw errorFromClassification(operation, c, { httpStatus: 200, ...answer });
      throw this.protocolError(
        operation,
        `answered resultCode ${answer.resultCode} with Content-Type "${contentType ?? ''}" and no ZIP body`,
      );
    } catch (err) {
      res.body.destroy();
      await rm(partial, { force: true });
      if (err instanceof BodyReadError) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw this.scrubbed(
          new CcfsError({
            operation,
            type: 'CcfsTruncated',
            message: `${operation} was cut off before the end of the answer (${describe(err.original)}); the partial file was deleted; retry`,
            cause: err.original,
          }),
        );
      }
      throw this.rethrow(operation, err, opts.signal);
    }
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private async saveZip(
    res: Sent,
    head: Buffer[],
    source: AsyncIterator<Buffer>,
    partial: string,
    destination: string,
    opts: DownloadOptions,
  ): Promise<DownloadResult> {
    const started = Date.now();
    const hash = createHash('sha256');
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        try {
          opts.onData?.(chunk);
          opts.onProgress?.(bytes);
        } catch (err) {
          done(err as Error);
          return;
        }
        done(null, chunk);
      },
    });
    await pipeline(
      bodyChunks(head, source),
      counter,
      // flush: fsync before close, so a file renamed into place survives a crash of the host.
      createWriteStream(partial, { flags: 'wx', flush: true }),
      ...(opts.signal ? [{ signal: opts.signal }] : []),
    );
    const declared = header(res.headers, 'content-length');
    if (declared !== undefined && Number(declared) !== bytes) {
      throw new BodyReadError(
        new Error(`received ${bytes} bytes of a declared Content-Length of ${declared}`),
      );
    }
    await rename(partial, destination);
    const sha256 = hash.digest('hex');
    this.logger.debug(
      { operation: 'downloadBillFile', bytes, durationMs: Date.now() - started },
      'CC-FS bill file downloaded',
    );
    return { bytes, sha256 };
  }

  private async send(
    operation: CcfsOperation,
    endpoint: string,
    msgBody: unknown,
    signal: AbortSignal | undefined,
  ): Promise<Sent> {
    const path = `${this.basePath}${endpoint}`;
    // Serialised once: these exact bytes are signed and sent.
    const body = Buffer.from(JSON.stringify(envelope(msgBody)), 'utf8');
    const headers: Record<string, string> = {
      host: this.host,
      'content-type': REQUEST_CONTENT_TYPE,
      'content-length': String(body.length),
    };
    const authorization = sign({
      method: 'POST',
      path,
      headers,
      signedHeaders: this.signedHeaders,
      body,
      credentials: this.credentials,
      timestamp: this.now(),
    });
    if (this.insecureTls) {
      this.logger.warn(
        { operation, host: this.host },
        'CC-FS TLS certificate verification is DISABLED (insecureTls); never use this in production',
      );
    }
    const started = Date.now();
    try {
      const res = await request(`${this.origin}${path}`, {
        method: 'POST',
        headers: { ...headers, authorization },
        body,
        dispatcher: this.agent,
        ...(signal && { signal }),
      });
      this.logger.debug(
        { operation, status: res.statusCode, durationMs: Date.now() - started },
        'CC-FS answered',
      );
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const failure = classifyTransportError(err, operation, this.origin);
      throw this.scrubbed(failure);
    }
  }

  private async httpFailure(operation: CcfsOperation, res: Sent): Promise<CcfsError> {
    // The body (HTML from a gateway, Spring's JSON for 401/403) says nothing the status does not.
    await res.body.dump().catch(() => undefined);
    const c = classifyResult({ httpStatus: res.statusCode, operation });
    if (c.outcome !== 'failure') return this.protocolError(operation, `unexpected HTTP ${res.statusCode}`);
    const retryAfter = retryAfterMs(res.headers, this.now());
    return errorFromClassification(operation, c, {
      httpStatus: res.statusCode,
      ...(retryAfter !== undefined && { retryAfterMs: retryAfter }),
    });
  }

  /** Reads a whole (small) JSON answer; `head` holds chunks already taken from the body. */
  private async readJson(
    operation: CcfsOperation,
    body: AsyncIterable<Buffer> | AsyncIterator<Buffer>,
    head: Buffer[],
    looksLike: 'zip' | 'unknown' = 'unknown',
  ): Promise<unknown> {
    const chunks = [...head];
    let size = chunks.reduce((n, c) => n + c.length, 0);
    const iterator = Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body;
    for (;;) {
      if (size > MAX_JSON_ANSWER_BYTES) {
        if (looksLike === 'zip') throw this.zipWithWrongType(operation);
        throw this.protocolError(
          operation,
          `answer is neither a ZIP nor a JSON object of at most ${MAX_JSON_ANSWER_BYTES} bytes`,
        );
      }
      let next: IteratorResult<Buffer>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw classifyTransportError(err, operation, this.origin);
      }
      if (next.done) break;
      chunks.push(next.value);
      size += next.value.length;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      if (looksLike === 'zip') throw this.zipWithWrongType(operation);
      throw this.protocolError(operation, `answer is not JSON (${size} bytes)`);
    }
  }

  private parseEnvelope(operation: CcfsOperation, json: unknown): { resultCode: string; resultDesc: string } {
    const parsed = ResultEnvelope.safeParse(json);
    if (!parsed.success)
      throw this.protocolError(
        operation,
        `answer does not match the result envelope: ${zodIssues(parsed.error)}`,
      );
    return {
      resultCode: parsed.data.resultCode,
      resultDesc: this.scrub(parsed.data.resultDesc).slice(0, MAX_DESC_CHARS),
    };
  }

  private zipWithWrongType(operation: CcfsOperation): CcfsError {
    return this.protocolError(
      operation,
      'answer starts like a ZIP but its Content-Type is not application/octet-stream; refusing it (success needs both)',
    );
  }

  private protocolError(operation: CcfsOperation, detail: string): CcfsError {
    return this.error(
      operation,
      'CcfsProtocolError',
      `${operation} got an answer CC-FS does not give: ${detail}; check that the base URL points at CC-FS and no proxy rewrites answers`,
    );
  }

  private invalidRequest(operation: CcfsOperation, error: z.ZodError): CcfsError {
    return this.error(
      operation,
      'CcfsBadRequest',
      `${operation} request is invalid and was not sent: ${zodIssues(error)}`,
    );
  }

  private error(operation: CcfsOperation, type: CcfsErrorType, message: string): CcfsError {
    return new CcfsError({ operation, type, message: this.scrub(message) });
  }

  /** Any error leaving the client: aborts rethrow the caller's reason; messages are scrubbed. */
  private rethrow(operation: CcfsOperation, err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return signal.reason;
    if (err instanceof CcfsError) return this.scrubbed(err);
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string') return err; // local file system
    return this.scrubbed(classifyTransportError(err, operation, this.origin));
  }

  private scrubbed(err: CcfsError): CcfsError {
    const message = this.scrub(err.message);
    if (message === err.message) return err;
    return new CcfsError({
      operation: err.operation,
      type: err.type,
      message,
      ...(err.resultCode !== undefined && { resultCode: err.resultCode }),
      ...(err.resultDesc !== undefined && { resultDesc: this.scrub(err.resultDesc) }),
      ...(err.httpStatus !== undefined && { httpStatus: err.httpStatus }),
      ...(err.retryAfterMs !== undefined && { retryAfterMs: err.retryAfterMs }),
    });
  }

  /** Defence in depth: the SK and Authorization values never leave in text, even if echoed back. */
  private scrub(text: string): string {
    let out = text.replace(/auth-v2\/[^\s"',;]+(?:;[^\s"',;]+)*/g, '[redacted authorization]');
    if (this.credentials.sk.length > 0) out = out.split(this.credentials.sk).join('[redacted]');
    return out;
  }
}

export function createCcfsClient(options: CcfsClientOptions): CcfsClient {
  return new CcfsClient(options);
}

/** Takes chunks from the body until at least `min` bytes (or the end) to look at the magic. */
async function readHead(source: AsyncIterator<Buffer>, min: number): Promise<Buffer[]> {
  const head: Buffer[] = [];
  let size = 0;
  while (size < min) {
    let next: IteratorResult<Buffer>;
    try {
      next = await source.next();
    } catch (err) {
      throw new BodyReadError(err);
    }
    if (next.done) break;
    head.push(next.value);
    size += next.value.length;
  }
  return head;
}

async function* bodyChunks(head: Buffer[], source: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await source.next();
    } catch (err) {
      throw new BodyReadError(err);
    }
    if (next.done) return;
    yield next.value;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
