import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import yazl from 'yazl';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CcfsClient, type CcfsClientOptions } from '../../ccfs/client';
import { CcfsError, type CcfsErrorType } from '../../ccfs/errors';
import {
  DOWNLOAD_BILL_FILE_PATH,
  QUERY_BILL_DATA_PATH,
  envelope,
  type QueryBillDataBody,
} from '../../ccfs/protocol';
import { parseAuthorization, verify, type VerifyResult } from '../../ccfs/signer';
import { verifyZip } from '../../ccfs/zip';

const AK = 'test-ak';
const SK = 'sk-very-secret-value-0123456789';
const BILL_FILE = '20240102_9239cb50a8384bb0ab503441bf089446.zip';
const RESPONSE_ID = '9239cb50a8384bb0ab503441bf089446';
const OCTET = 'Application/Octet-stream;charset=UTF-8';

const query: QueryBillDataBody = {
  beginTime: '2024-01-01 00:00:00',
  endTime: '2024-01-02 00:00:00',
  dataType: 'call_record',
  callBackURL: 'https://exporter.example:8443/callbacks/ccfs',
};

interface Received {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body: Buffer;
  verified: VerifyResult;
}

type Handler = (req: IncomingMessage, res: ServerResponse, received: Received) => void | Promise<void>;

function json(
  res: ServerResponse,
  body: unknown,
  status = 200,
  contentType = 'application/json;charset=UTF-8',
): void {
  res.writeHead(status, { 'content-type': contentType });
  res.end(JSON.stringify(body));
}

function answer(resultCode: string, resultDesc: string, resultData: unknown = ''): Record<string, unknown> {
  return {
    resultCode,
    resultDesc,
    resultData,
    response: { version: '2.0', resultCode, resultMsg: resultDesc },
  };
}

function springError(res: ServerResponse, status: number, error: string, path: string): void {
  json(
    res,
    { timestamp: new Date().toISOString(), status, error, message: 'No message available', path },
    status,
  );
}

/**
 * A small stand-in for CC-FS: checks every request's auth-v2 signature like CC-FS does (401 on
 * failure) and answers as docs/ccfs-protocol.md documents. Tests replace `handler` per case and
 * read what it received.
 */
class FakeCcfs {
  private readonly happy: Handler = (_req, res, r) => {
    if (!r.verified.ok) return springError(res, 401, 'Unauthorized', r.path);
    if (r.path === QUERY_BILL_DATA_PATH)
      return json(res, answer('0', 'success', { responseId: RESPONSE_ID }));
    if (r.path === DOWNLOAD_BILL_FILE_PATH) {
      res.writeHead(200, { 'content-type': OCTET });
      res.end(this.zip);
      return;
    }
    springError(res, 404, 'Not Found', r.path);
  };

  received: Received[] = [];
  handler: Handler = this.happy;
  zip: Buffer = Buffer.alloc(0);
  private server?: http.Server;

  /** Back to the documented happy behaviour, with nothing received. */
  reset(zip: Buffer): void {
    this.received = [];
    this.handler = this.happy;
    this.zip = zip;
  }

  async start(tls?: { key: string; cert: string }): Promise<string> {
    const listener = (req: IncomingMessage, res: ServerResponse): void => void this.onRequest(req, res);
    this.server = tls ? https.createServer(tls, listener) : http.createServer(listener);
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(',') : v;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const verified = verify({
      method: req.method ?? '',
      path,
      headers,
      body,
      authorization: headers.authorization,
      secretFor: (ak) => (ak === AK ? SK : undefined),
      now: new Date(),
      maxSkewSeconds: 900,
    });
    const received = { method: req.method ?? '', path, headers, body, verified };
    this.received.push(received);
    try {
      await this.handler(req, res, received);
    } catch (err) {
      res.destroy(err as Error);
    }
  }
}

async function buildZip(): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from('developer,account_id,cc_id\nd,a,1\nd,a,2\n'), '20240102101010123456_call_1.csv');
  zip.addBuffer(Buffer.from('d,a,1,100,c1\n'), '20240102101010123456_record_1.csv');
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function failure(p: Promise<unknown>): Promise<CcfsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CcfsError);
  return err as CcfsError;
}

function expectFailure(err: CcfsError, type: CcfsErrorType, category: CcfsError['category']): void {
  expect({ type: err.type, category: err.category }).toEqual({ type, category });
}

let dir: string;
let zipBytes: Buffer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ccfs-client-'));
  zipBytes = await buildZip();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CcfsClient over HTTP', () => {
  const fake = new FakeCcfs();
  let baseUrl: string;
  let client: CcfsClient;
  let logs: string[];
  let testDir: string;
  let n = 0;

  function makeClient(extra: Partial<CcfsClientOptions> = {}): CcfsClient {
    const logger = pino({ level: 'trace' }, { write: (line: string) => void logs.push(line) });
    return new CcfsClient({
      baseUrl,
      credentials: { ak: AK, sk: SK },
      logger,
      requestTimeoutMs: 5_000,
      ...extra,
    });
  }

  beforeAll(async () => {
    baseUrl = await fake.start();
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(async () => {
    fake.reset(zipBytes);
    logs = [];
    testDir = join(dir, `case-${n++}`);
    await mkdir(testDir);
    client = makeClient();
  });
  afterEach(async () => {
    await client.close();
    const text = logs.join('');
    expect(text).not.toContain(SK);
    expect(text).not.toMatch(/auth-v2\//);
  });

  describe('queryBillData', () => {
    it('returns the responseId of an accepted query', async () => {
      await expect(client.queryBillData(query)).resolves.toEqual({
        kind: 'accepted',
        responseId: RESPONSE_ID,
      });
    });

    it('sends a signature that verifies, over the Host it sends and the exact body bytes it sends', async () => {
      await client.queryBillData(query);
      const [r] = fake.received;
      expect(r!.verified).toEqual({ ok: true, ak: AK });
      const auth = parseAuthorization(r!.headers.authorization!)!;
      expect(auth.signedHeaders).toEqual(['content-length', 'content-type', 'host']);
      expect(r!.headers.host).toBe(new URL(baseUrl).host);
      expect(r!.headers['content-type']).toBe('application/json;charset=UTF-8');
      expect(r!.headers['content-length']).toBe(String(r!.body.length));
      expect(r!.method).toBe('POST');
      expect(r!.path).toBe(QUERY_BILL_DATA_PATH);
      expect(r!.body.toString('utf8')).toBe(JSON.stringify(envelope(query)));
    });

    it('signs only the configured headers', async () => {
      const hostOnly = makeClient({ signedHeaders: ['Host'] });
      await hostOnly.queryBillData(query);
      await hostOnly.close();
      const [r] = fake.received;
      expect(r!.verified.ok).toBe(true);
      expect(parseAuthorization(r!.headers.authorization!)!.signedHeaders).toEqual(['host']);
    });

    it('keeps a path prefix of the base URL in the path it signs and sends', async () => {
      fake.handler = (_req, res, r) =>
        json(res, r.verified.ok ? answer('0', 'success', { responseId: RESPONSE_ID }) : { status: 401 });
      const prefixed = makeClient({ baseUrl: `${baseUrl}/gateway/` });
      await expect(prefixed.queryBillData(query)).resolves.toMatchObject({ kind: 'accepted' });
      await prefixed.close();
      expect(fake.received[0]!.path).toBe(`/gateway${QUERY_BILL_DATA_PATH}`);
    });

    it('treats 0300012 as an empty range, not a failure', async () => {
      fake.handler = (_req, res) => json(res, answer('0300012', 'no data found'));
      await expect(client.queryBillData(query)).resolves.toEqual({
        kind: 'empty',
        resultCode: '0300012',
        resultDesc: 'no data found',
      });
    });

    it('does not send a body that fails validation', async () => {
      const err = await failure(client.queryBillData({ ...query, beginTime: '2024-01-01T00:00:00' }));
      expectFailure(err, 'CcfsBadRequest', 'permanent');
      expect(err.message).toMatch(/^queryBillData request is invalid and was not sent: beginTime: /);
      expect(fake.received).toHaveLength(0);
    });

    it.each([
      ['0300009', 'CcfsFlowControl', 'retryable'],
      ['0300008', 'CcfsFlowControl', 'retryable'],
      ['0300004', 'CcfsBadRequest', 'permanent'],
      ['0300006', 'CcfsBadRequest', 'permanent'],
      ['0300013', 'CcfsBadRequest', 'permanent'],
      ['0399999', 'CcfsBadRequest', 'permanent'],
    ] as const)('fails on resultCode %s with %s (%s)', async (code, type, category) => {
      fake.handler = (_req, res) => json(res, answer(code, 'described by CC-FS'));
      const err = await failure(client.queryBillData(query));
      expectFailure(err, type, category);
      expect(err).toMatchObject({
        resultCode: code,
        resultDesc: 'described by CC-FS',
        httpStatus: 200,
        operation: 'queryBillData',
      });
      expect(err.message).toContain(
        `queryBillData ${category === 'retryable' ? 'failed at' : 'rejected by'} CC-FS: ${code} `,
      );
      expect(err.message).toContain('(described by CC-FS)');
    });

    it.each([
      [500, 'CcfsUnavailable', 'retryable'],
      [502, 'CcfsUnavailable', 'retryable'],
      [503, 'CcfsUnavailable', 'retryable'],
      [429, 'CcfsFlowControl', 'retryable'],
      [403, 'CcfsIpLocked', 'permanent'],
      [404, 'CcfsBadRequest', 'permanent'],
    ] as const)('fails on HTTP %i with %s (%s)', async (status, type, category) => {
      fake.handler = (_req, res) => {
        res.writeHead(status, { 'content-type': 'text/html', 'retry-after': '7' });
        res.end('<html>gateway says no</html>');
      };
      const err = await failure(client.queryBillData(query));
      expectFailure(err, type, category);
      expect(err.httpStatus).toBe(status);
      expect(err.retryAfterMs).toBe(7000);
      expect(err.message).toContain(`HTTP ${status}`);
    });

    it('fails with CcfsAuthRejected on a 401 with the Spring-style body', async () => {
      const wrong = makeClient({ credentials: { ak: AK, sk: 'not-the-secret' } });
      const err = await failure(wrong.queryBillData(query));
      await wrong.close();
      expectFailure(err, 'CcfsAuthRejected', 'permanent');
      expect(err.httpStatus).toBe(401);
      expect(fake.received[0]!.verified).toMatchObject({ ok: false, reason: 'mismatch' });
      expect(err.message).toMatch(/check the AK\/SK pair/);
    });

    it.each([
      ['not JSON', (res: ServerResponse) => res.end('<html>maintenance</html>')],
      ['JSON without resultCode', (res: ServerResponse) => json(res, { code: 0 })],
      ['success without responseId', (res: ServerResponse) => json(res, answer('0', 'success', ''))],
      ['a numeric resultCode', (res: ServerResponse) => json(res, { resultCode: 0, resultDesc: 'success' })],
    ])('fails with CcfsProtocolError on an answer that is %s', async (_what, reply) => {
      fake.handler = (_req, res) => reply(res);
      const err = await failure(client.queryBillData(query));
      expectFailure(err, 'CcfsProtocolError', 'permanent');
      expect(err.message).toMatch(/^queryBillData got an answer CC-FS does not give: /);
    });

    it('fails with a retryable CcfsUnavailable when the connection is refused', async () => {
      const closed = http.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const { port } = closed.address() as AddressInfo;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const refused = makeClient({ baseUrl: `http://127.0.0.1:${port}` });
      const err = await failure(refused.queryBillData(query));
      await refused.close();
      expectFailure(err, 'CcfsUnavailable', 'retryable');
      expect(err.message).toContain('ECONNREFUSED');
    });

    it('fails with a retryable CcfsUnavailable when CC-FS does not answer in time', async () => {
      fake.handler = () => undefined;
      const slow = makeClient({ requestTimeoutMs: 300 });
      const err = await failure(slow.queryBillData(query));
      await slow.close();
      expectFailure(err, 'CcfsUnavailable', 'retryable');
      expect(err.message).toMatch(/UND_ERR_HEADERS_TIMEOUT/);
    });

    it('rejects with the caller’s abort reason when cancelled', async () => {
      fake.handler = () => undefined;
      const controller = new AbortController();
      const reason = new Error('activity cancelled');
      setTimeout(() => controller.abort(reason), 50);
      await expect(client.queryBillData(query, { signal: controller.signal })).rejects.toBe(reason);
    });

    it('never puts the SK or the Authorization value in errors, details or logs, even when echoed back', async () => {
      fake.handler = (req, res) =>
        json(res, answer('0300004', `bad header ${req.headers.authorization} for key ${SK}`));
      const err = await failure(client.queryBillData(query));
      const authorization = fake.received[0]!.headers.authorization!;
      for (const text of [
        err.message,
        err.resultDesc ?? '',
        JSON.stringify(err.details),
        String(err.stack),
      ]) {
        expect(text).not.toContain(SK);
        expect(text).not.toContain(authorization);
        expect(text).not.toContain(authorization.split('/').pop());
      }
      expect(err.resultDesc).toContain('[redacted');
    });
  });

  describe('downloadBillFile', () => {
    it('streams the ZIP to the destination and returns its size and SHA-256', async () => {
      const dest = join(testDir, 'bill.zip');
      const progress: number[] = [];
      const result = await client.downloadBillFile(BILL_FILE, dest, { onProgress: (b) => progress.push(b) });
      expect(result).toEqual({
        bytes: zipBytes.length,
        sha256: createHash('sha256').update(zipBytes).digest('hex'),
      });
      expect(await readFile(dest)).toEqual(zipBytes);
      expect(progress.at(-1)).toBe(zipBytes.length);
      expect(await readdir(testDir)).toEqual(['bill.zip']);
      const summary = await verifyZip(dest);
      expect(summary.entries.map((e) => [e.kind, e.rows])).toEqual([
        ['call', 2],
        ['record', 1],
      ]);
      const [r] = fake.received;
      expect(r!.verified.ok).toBe(true);
      expect(r!.body.toString()).toBe(JSON.stringify(envelope({ billFileName: BILL_FILE })));
    });

    it('replaces a file left at the destination by an earlier attempt', async () => {
      const dest = join(testDir, 'bill.zip');
      await writeFile(dest, 'stale');
      await client.downloadBillFile(BILL_FILE, dest);
      expect(await readFile(dest)).toEqual(zipBytes);
    });

    it('does not send a bill file name longer than 49 characters', async () => {
      const err = await failure(client.downloadBillFile(`${'x'.repeat(50)}.zip`, join(testDir, 'x.zip')));
      expectFailure(err, 'CcfsBadRequest', 'permanent');
      expect(fake.received).toHaveLength(0);
    });

    async function expectNoFile(): Promise<void> {
      expect(await readdir(testDir)).toEqual([]);
    }

    it.each([
      ['0300011', 'CcfsFileNotFound', 'file-not-found'],
      ['0300008', 'CcfsFlowControl', 'retryable'],
      ['0300010', 'CcfsBadRequest', 'permanent'],
      ['0300004', 'CcfsBadRequest', 'permanent'],
    ] as const)(
      'fails on the HTTP 200 JSON answer %s with %s and writes no file',
      async (code, type, category) => {
        fake.handler = (_req, res) => json(res, answer(code, 'from CC-FS'));
        const err = await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip')));
        expectFailure(err, type, category);
        expect(err).toMatchObject({ resultCode: code, operation: 'downloadBillFile', httpStatus: 200 });
        await expectNoFile();
      },
    );

    it('reads a JSON error sent with the octet-stream content type as the error it is', async () => {
      fake.handler = (_req, res) => json(res, answer('0300011', 'file not exist'), 200, OCTET);
      const err = await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip')));
      expectFailure(err, 'CcfsFileNotFound', 'file-not-found');
      await expectNoFile();
    });

    it('refuses ZIP bytes sent with a JSON content type (success needs both the type and the magic)', async () => {
      fake.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json;charset=UTF-8' });
        res.end(zipBytes);
      };
      const err = await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip')));
      expectFailure(err, 'CcfsProtocolError', 'permanent');
      expect(err.message).toMatch(/starts like a ZIP but its Content-Type is not application\/octet-stream/);
      await expectNoFile();
    });

    it('fails with CcfsProtocolError on an octet-stream body that is neither ZIP nor JSON', async () => {
      fake.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': OCTET });
        res.end('garbage');
      };
      expectFailure(
        await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip'))),
        'CcfsProtocolError',
        'permanent',
      );
      await expectNoFile();
    });

    it('fails with CcfsProtocolError on a success resultCode without a file', async () => {
      fake.handler = (_req, res) => json(res, answer('0', 'success'));
      expectFailure(
        await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip'))),
        'CcfsProtocolError',
        'permanent',
      );
    });

    it.each([
      [503, 'CcfsUnavailable', 'retryable'],
      [429, 'CcfsFlowControl', 'retryable'],
      [403, 'CcfsIpLocked', 'permanent'],
    ] as const)('fails on HTTP %i with %s and writes no file', async (status, type, category) => {
      fake.handler = (_req, res, r) => springError(res, status, 'x', r.path);
      expectFailure(
        await failure(client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip'))),
        type,
        category,
      );
      await expectNoFile();
    });

    function cutOff(withLength: boolean): Handler {
      return (_req, res) => {
        const total = 4 * 1024 * 1024;
        res.writeHead(200, { 'content-type': OCTET, ...(withLength && { 'content-length': String(total) }) });
        res.write(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(256 * 1024, 7)]));
        setTimeout(() => res.socket?.destroy(), 50);
      };
    }

    it.each([
      ['with a Content-Length', true],
      ['with chunked encoding', false],
    ])(
      'fails with a retryable CcfsTruncated when the body is cut off (%s) and deletes the partial file',
      async (_how, withLength) => {
        fake.handler = cutOff(withLength);
        const progress: number[] = [];
        const err = await failure(
          client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip'), {
            onProgress: (b) => progress.push(b),
          }),
        );
        expectFailure(err, 'CcfsTruncated', 'retryable');
        expect(err.message).toMatch(/cut off before the end of the answer/);
        expect(progress.at(-1)).toBeGreaterThan(4);
        await expectNoFile();
      },
    );

    it('fails with a retryable CcfsTruncated when the body goes silent', async () => {
      fake.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': OCTET });
        res.write(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(1024)]));
      };
      const slow = makeClient({ requestTimeoutMs: 300 });
      const err = await failure(slow.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip')));
      await slow.close();
      expectFailure(err, 'CcfsTruncated', 'retryable');
      await expectNoFile();
    });

    it('rejects with the abort reason mid-body and deletes the partial file', async () => {
      fake.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': OCTET });
        res.write(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(64 * 1024)]));
      };
      const controller = new AbortController();
      const reason = new Error('activity cancelled');
      const p = client.downloadBillFile(BILL_FILE, join(testDir, 'bill.zip'), {
        signal: controller.signal,
        onProgress: () => controller.abort(reason),
      });
      await expect(p).rejects.toBe(reason);
      await expectNoFile();
    });
  });
});

describe('CcfsClient over HTTPS', () => {
  const fake = new FakeCcfs();
  let tlsDir: string;
  let baseUrl: string;

  beforeAll(async () => {
    tlsDir = await mkdtemp(join(tmpdir(), 'ccfs-tls-'));
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: tlsDir, stdio: 'pipe' });
    // A throwaway private CA and a server certificate for 127.0.0.1 it signed.
    run(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=ccfs-test-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=localhost',
    );
    await writeFile(
      join(tlsDir, 'ext.cnf'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
    );
    run(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    );
    const [key, cert] = await Promise.all([
      readFile(join(tlsDir, 'server.key'), 'utf8'),
      readFile(join(tlsDir, 'server.pem'), 'utf8'),
    ]);
    baseUrl = await fake.start({ key, cert });
  });
  afterAll(async () => {
    await fake.stop();
    await rm(tlsDir, { recursive: true, force: true });
  });

  function client(extra: Partial<CcfsClientOptions>, logs: string[] = []): CcfsClient {
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    return new CcfsClient({ baseUrl, credentials: { ak: AK, sk: SK }, logger, ...extra });
  }

  it('trusts a server certificate issued by the CA in caFile', async () => {
    const c = client({ caFile: join(tlsDir, 'ca.pem') });
    await expect(c.queryBillData(query)).resolves.toEqual({ kind: 'accepted', responseId: RESPONSE_ID });
    await c.close();
  });

  it('fails with a permanent CcfsTlsError when the CA is not trusted', async () => {
    const c = client({});
    const err = await failure(c.queryBillData(query));
    await c.close();
    expectFailure(err, 'CcfsTlsError', 'permanent');
    expect(err.message).toMatch(
      /could not verify the TLS certificate of https:\/\/127\.0\.0\.1:\d+: UNABLE_TO_VERIFY_LEAF_SIGNATURE; configure the CA file/,
    );
  });

  it('connects without verification when insecureTls is set, warning on every request', async () => {
    const logs: string[] = [];
    const c = client({ insecureTls: true }, logs);
    await c.queryBillData(query);
    await c.queryBillData(query);
    await c.close();
    const warnings = logs
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 40);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]!.msg).toMatch(/TLS certificate verification is DISABLED/);
  });
});
