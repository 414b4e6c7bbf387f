import { createHash } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import {
  type DataType,
  DOWNLOAD_BILL_FILE_PATH,
  PROTOCOL_VERSION,
  QUERY_BILL_DATA_PATH,
  ResultCode,
} from '../ccfs/protocol';
import { parseAuthorization } from '../ccfs/signer';
import { silentLogger } from '../lib/logger';
import { IpLock, springError, verifyRequest } from './auth';
import { CallbackDispatcher } from './callbacks';
import {
  type CdrRow,
  type Filters,
  type RecordRow,
  DataSet,
  FILTER_NAMES,
  includesCalls,
  includesRecords,
} from './data';
import { type ZipDigest, digestZip, sendZip } from './download';
import { FaultInjector } from './faults';
import {
  type EmptyRange,
  type Faults,
  type ResolvedOptions,
  type SimulatorOptions,
  CsvQuirksPatch,
  FaultsPatch,
  resolveOptions,
} from './options';
import { type DownloadRecord, type QueryRecord, type SimulatorState, emptyState } from './state';
import { parseEnvelope, validateDownload, validateQuery } from './validation';
import { compactWallMs, parseWall } from './wall-time';
import type { BillFileContent } from './zip';

export type { Faults, SimulatorOptions } from './options';
export type { SimulatorState } from './state';
export type { CdrRow, RecordRow } from './data';

/** A range query over the simulator's data, with the same filters queryBillData accepts. */
export interface RowsQuery extends Filters {
  beginTime: string;
  endTime: string;
  /** Default call_record. */
  dataType?: DataType;
  /** Whose data; default the first account. */
  ak?: string;
}

export interface RowKeys {
  call: Array<{ call_id: string; call_id_num: string }>;
  record: Array<{ call_id: string; file_name: string }>;
}

/** Options that may change at runtime (accounts, clock and logger are fixed at construction). */
export type RuntimeOptions = Partial<Omit<SimulatorOptions, 'accounts' | 'clock' | 'logger' | 'faults'>>;

export interface Simulator {
  /** The Express app; it never listens by itself. */
  app: express.Express;
  inspect(): SimulatorState;
  faults(): Faults;
  setFaults(faults: Partial<Faults>): void;
  setOptions(options: RuntimeOptions): void;
  /** Every row of a range as the simulator holds it (what a complete export must contain). */
  rowsInRange(query: RowsQuery): { call: CdrRow[]; record: RecordRow[] };
  rowKeys(query: RowsQuery): RowKeys;
  /** Back to the state right after construction: no queries, files, callbacks, locks or runtime faults. */
  reset(): Promise<void>;
  /** Stops timers, pending callbacks and downloads in progress. */
  close(): Promise<void>;
}

interface BillFile {
  responseId: string;
  billFileName: string;
  ak: string;
  callBackURL: string;
  accountId: string | undefined;
  requestedAt: Date;
  generatedAt: Date | undefined;
  content: Omit<BillFileContent, 'generatedWallMs'>;
  expiryDecided: boolean;
  expired: boolean;
  digest: ZipDigest | undefined;
  entries: string[] | undefined;
  downloads: number;
  /** How this file of an empty range answers (options.emptyRange when it was requested). */
  emptyForm?: Exclude<EmptyRange, 'query-0300012'>;
}

/** The msgBody of a request for the record, whatever is wrong with the rest of it. */
function peekMsgBody(body: Buffer): unknown {
  try {
    return (JSON.parse(body.toString('utf8')) as { msgBody?: unknown } | null)?.msgBody;
  } catch {
    return undefined;
  }
}

const RawBody = express.raw({ type: () => true, limit: '1mb' });

export function createSimulator(input: SimulatorOptions): Simulator {
  let raw: SimulatorOptions = { ...input };
  let options: ResolvedOptions = resolveOptions(raw);
  const logger = (input.logger ?? silentLogger).child({ component: 'ccfs-simulator' });
  let data = new DataSet(options.seed, options.timeZone, options.callsPerHour);
  let state = emptyState();
  let files = new Map<string, BillFile>();
  let responseCounter = 0;
  /** Files whose generation timer has not fired yet (the maxOutstandingQueries count). */
  let outstanding = 0;
  let closing = new AbortController();
  const generationTimers = new Set<NodeJS.Timeout>();
  const now = (): Date => options.clock();
  const lock = new IpLock(
    () => options.lockAfterFailures,
    () => options.lockDurationMs,
  );
  const faults = new FaultInjector(
    options.seed,
    () => options.faults,
    (r) => state.faults.push(r),
    now,
  );
  const callbacks = new CallbackDispatcher({
    options: () => options,
    faults,
    records: () => state.callbacks,
    logger,
  });

  const accountByAk = (ak: string): ResolvedOptions['accounts'][number] | undefined =>
    options.accounts.find((a) => a.ak === ak);
  const wallMs = (d: Date): number => data.clock.wallMs(d.getTime());

  function nextResponseId(): string {
    const h = createHash('sha256')
      .update(`${String(options.seed)}\u0001response\u0001${++responseCounter}`)
      .digest();
    h[6] = ((h[6] ?? 0) & 0x0f) | 0x40;
    h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
    const hex = h.subarray(0, 16).toString('hex');
    if (!options.responseIdHyphens) return hex;
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function answer(res: Response, code: string, desc: string, resultData: unknown = ''): void {
    res.status(200).json({
      resultCode: code,
      resultDesc: desc,
      resultData,
      response: { version: PROTOCOL_VERSION, resultCode: code, resultMsg: desc },
    });
  }

  function clientIp(req: Request): string {
    return req.socket.remoteAddress ?? 'unknown';
  }

  /** auth-v2 and the IP lock; answers 401/403 itself and returns undefined when the request is refused. */
  function authenticate(
    req: Request,
    res: Response,
    body: Buffer,
    onRefused: (outcome: string, ak: string | undefined) => void,
  ): string | undefined {
    const ip = clientIp(req);
    const at = now();
    const claimedAk = parseAuthorization(req.headers.authorization ?? '')?.ak;
    if (lock.isLocked(ip, at.getTime())) {
      onRefused('http403', claimedAk);
      res.status(403).json(springError(403, req.path, at));
      return undefined;
    }
    const result = verifyRequest(req, body, (ak) => accountByAk(ak)?.sk, at, options.skewSeconds);
    if (!result.ok) {
      lock.fail(ip, at.getTime());
      logger.warn({ ip, ak: claimedAk, reason: result.reason, path: req.path }, 'rejected signature');
      onRefused('http401', claimedAk);
      res.status(401).json(springError(401, req.path, at));
      return undefined;
    }
    lock.succeed(ip);
    return result.ak;
  }

  function generate(file: BillFile): void {
    file.generatedAt = now();
    outstanding--;
    const account = accountByAk(file.ak);
    logger.info({ responseId: file.responseId, billFileName: file.billFileName }, 'bill file generated');
    if (!account) return;
    const msgBody: Record<string, string> = { responseId: file.responseId, billFileName: file.billFileName };
    if (file.accountId !== undefined) msgBody.accountId = file.accountId;
    callbacks.dispatch({
      responseId: file.responseId,
      billFileName: file.billFileName,
      url: file.callBackURL,
      credentials: { ak: account.ak, sk: account.sk },
      body: JSON.stringify({ request: { version: PROTOCOL_VERSION }, msgBody }),
    });
  }

  function queryBillData(req: Request, res: Response): void {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const record: QueryRecord = {
      at: now().toISOString(),
      ak: undefined,
      ip: clientIp(req),
      msgBody: undefined,
      outcome: '',
      resultDesc: '',
    };
    state.queries.push(record);
    const done = (code: string, desc: string, resultData: unknown = ''): void => {
      record.outcome = code;
      record.resultDesc = desc;
      if (!code.startsWith('http')) answer(res, code, desc, resultData);
    };
    const ak = authenticate(req, res, body, (outcome, claimed) => {
      record.ak = claimed;
      done(outcome, outcome === 'http403' ? 'IP locked' : 'bad signature');
    });
    if (ak === undefined) return;
    record.ak = ak;
    const envelope = parseEnvelope(body);
    record.msgBody = peekMsgBody(body);
    if (faults.fires('queryHttp500', {})) {
      done('http500', 'internal error (fault)');
      res.status(500).json(springError(500, req.path, now()));
      return;
    }
    if (faults.fires('queryFlowControl', {}))
      return done(ResultCode.queryFlowControl, 'flow control (fault)');
    if (!envelope.ok) return done(envelope.code, envelope.desc);
    const account = accountByAk(ak);
    if (!account) return done(ResultCode.fileNotFound, 'unknown account');
    const checked = validateQuery(envelope.value, {
      maxSpanSeconds: options.maxSpanSeconds,
      accountId: account.accountId,
      spanRefusal: { code: options.spanRefusalCode, desc: options.spanRefusalDesc },
    });
    if (!checked.ok) return done(checked.code, checked.desc);
    const q = checked.value;
    if (outstanding >= options.maxOutstandingQueries) {
      return done(ResultCode.queryFlowControl, `flow control: ${outstanding} queries outstanding`);
    }
    const range = { begin: q.begin, end: q.end, endInclusive: options.endInclusive };
    const counted = data.count({ ...range, account, filters: q.filters });
    const counts = {
      call: includesCalls(q.dataType) ? counted.call : 0,
      record: includesRecords(q.dataType) ? counted.record : 0,
    };
    // An empty range answers 0300012 here, or (emptyRange) is accepted and answers at download.
    const emptyForm = counts.call + counts.record === 0 ? options.emptyRange : undefined;
    if (emptyForm === 'query-0300012') return done(ResultCode.noData, 'no data found');
    const omitted = options.omitEntryKinds;
    const servedType: DataType =
      q.dataType === 'call_record' && omitted.includes('record')
        ? 'call'
        : q.dataType === 'call_record' && omitted.includes('call')
          ? 'record'
          : q.dataType;

    const requestedAt = now();
    const responseId = nextResponseId();
    const billFileName = `${compactWallMs(wallMs(requestedAt)).slice(0, 8)}_${responseId.replace(/-/g, '')}.zip`;
    const file: BillFile = {
      responseId,
      billFileName,
      ak,
      callBackURL: q.callBackURL,
      accountId: q.filters.accountId,
      requestedAt,
      generatedAt: undefined,
      ...(emptyForm !== undefined && { emptyForm }),
      content: {
        seed: options.seed,
        responseId,
        data,
        account,
        range,
        filters: q.filters,
        dataType: servedType,
        counts,
        headerRow: options.headerRow,
        filesPerKind: options.filesPerKind,
        extraCdrColumns: options.extraCdrColumns,
        csv: options.csv,
        padCallFileToBytes: includesCalls(q.dataType) ? options.padCallFileToBytes : undefined,
      },
      expiryDecided: false,
      expired: false,
      digest: undefined,
      entries: undefined,
      downloads: 0,
    };
    files.set(billFileName, file);
    outstanding++;
    const timer = setTimeout(() => {
      generationTimers.delete(timer);
      generate(file);
    }, options.callbackDelayMs);
    generationTimers.add(timer);
    record.responseId = responseId;
    record.billFileName = billFileName;
    record.rows = counts;
    logger.info(
      { ak, responseId, beginTime: q.beginTime, endTime: q.endTime, dataType: q.dataType, rows: counts },
      'query accepted',
    );
    done(ResultCode.success, 'success', { responseId });
  }

  async function downloadBillFile(req: Request, res: Response): Promise<void> {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const record: DownloadRecord = {
      at: now().toISOString(),
      ak: undefined,
      billFileName: undefined,
      outcome: '',
    };
    state.downloads.push(record);
    const done = (code: string, desc: string): void => {
      record.outcome = code;
      if (!code.startsWith('http')) answer(res, code, desc);
    };
    const ak = authenticate(req, res, body, (outcome, claimed) => {
      record.ak = claimed;
      record.outcome = outcome;
    });
    if (ak === undefined) return;
    record.ak = ak;
    const envelope = parseEnvelope(body);
    if (envelope.ok && typeof envelope.value.billFileName === 'string')
      record.billFileName = envelope.value.billFileName;
    const target = { billFileName: record.billFileName };
    if (faults.fires('downloadHttp500', target)) {
      record.outcome = 'http500';
      res.status(500).json(springError(500, req.path, now()));
      return;
    }
    if (faults.fires('downloadFlowControl', target))
      return done(ResultCode.downloadFlowControl, 'flow control (fault)');
    if (!envelope.ok) return done(envelope.code, envelope.desc);
    const checked = validateDownload(envelope.value);
    if (!checked.ok) return done(checked.code, checked.desc);
    const file = files.get(checked.value.toLowerCase());
    if (!file || file.ak !== ak || file.generatedAt === undefined)
      return done(ResultCode.fileNotFound, 'file does not exist');
    if (now().getTime() - file.generatedAt.getTime() > options.fileTtlMs)
      return done(ResultCode.fileNotFound, 'file does not exist');
    if (!file.expiryDecided) {
      file.expiryDecided = true;
      file.expired =
        faults.fires('expireFiles', { billFileName: file.billFileName, responseId: file.responseId }) !==
        undefined;
    }
    if (file.expired) return done(ResultCode.fileNotFound, 'file does not exist');
    if (file.emptyForm === 'download-0300012') return done(ResultCode.noData, 'no data found');

    file.downloads++;
    const content: BillFileContent = {
      ...file.content,
      // The zone the file was requested in, even if the options changed since.
      generatedWallMs: file.content.data.clock.wallMs(file.generatedAt.getTime()),
    };
    let cutAt: number | undefined;
    const truncation = faults.fires('truncateDownload', {
      billFileName: file.billFileName,
      responseId: file.responseId,
    });
    if (truncation) {
      // The cut point is a fraction of the whole ZIP, so its size is needed first.
      file.digest ??= await digestZip(content, closing.signal, file.emptyForm === 'no-entries');
      cutAt = Math.max(1, Math.floor(file.digest.bytes * (0.05 + 0.9 * faults.rng('truncateDownload')())));
      truncation.detail = `cut after ${cutAt} of ${file.digest.bytes} bytes`;
    }
    const bytesPerSecond = options.faults.slowDownloadBytesPerSecond;
    if (bytesPerSecond > 0)
      faults.note('slowDownloadBytesPerSecond', {
        billFileName: file.billFileName,
        detail: `${bytesPerSecond} B/s`,
      });
    record.outcome = ResultCode.success;
    const abort = new AbortController();
    const onClosing = (): void => abort.abort();
    closing.signal.addEventListener('abort', onClosing, { once: true });
    try {
      const sent = await sendZip(res, content, {
        cutAt,
        bytesPerSecond,
        signal: abort.signal,
        noEntries: file.emptyForm === 'no-entries',
      });
      if (sent.digest) file.digest = sent.digest;
      file.entries = Object.keys(sent.rows);
      Object.assign(record, {
        sha256: file.digest?.sha256,
        bytes: file.digest?.bytes,
        bytesSent: sent.bytesSent,
        complete: sent.complete,
        rows: sent.rows,
      });
      logger.info(
        { billFileName: file.billFileName, bytes: sent.bytesSent, complete: sent.complete },
        'bill file served',
      );
    } finally {
      closing.signal.removeEventListener('abort', onClosing);
    }
  }

  function rowsInRange(query: RowsQuery): { call: CdrRow[]; record: RecordRow[] } {
    const account = query.ak === undefined ? options.accounts[0] : accountByAk(query.ak);
    if (!account) throw new Error(`unknown AK ${query.ak}`);
    const begin = parseWall(query.beginTime);
    const end = parseWall(query.endTime);
    if (begin === undefined || end === undefined)
      throw new Error('beginTime and endTime must be yyyy-MM-dd HH:mm:ss');
    const dataType = query.dataType ?? 'call_record';
    const filters: Filters = {};
    for (const name of FILTER_NAMES) if (query[name] !== undefined) filters[name] = query[name];
    const out = { call: [] as CdrRow[], record: [] as RecordRow[] };
    for (const call of data.calls({ begin, end, endInclusive: options.endInclusive, account, filters })) {
      if (includesCalls(dataType)) out.call.push(...call.cdr);
      if (includesRecords(dataType)) out.record.push(...call.records);
    }
    return out;
  }

  function rowKeys(query: RowsQuery): RowKeys {
    const rows = rowsInRange(query);
    return {
      call: rows.call.map((r) => ({ call_id: r.call_id, call_id_num: r.call_id_num })),
      record: rows.record.map((r) => ({ call_id: r.call_id, file_name: r.file_name })),
    };
  }

  function inspect(): SimulatorState {
    const at = now().getTime();
    return structuredClone({
      ...state,
      files: [...files.values()].map((f) => ({
        responseId: f.responseId,
        billFileName: f.billFileName,
        ak: f.ak,
        requestedAt: f.requestedAt.toISOString(),
        ...(f.generatedAt ? { generatedAt: f.generatedAt.toISOString() } : {}),
        expired:
          f.expired || (f.generatedAt !== undefined && at - f.generatedAt.getTime() > options.fileTtlMs),
        ...(f.entries ? { entries: f.entries } : {}),
        downloads: f.downloads,
        ...(f.emptyForm ? { emptyForm: f.emptyForm } : {}),
      })),
      auth: { failures: lock.totalFailures, lockedIps: lock.locked(at) },
    });
  }

  function setFaults(patch: Partial<Faults>): void {
    const parsed = FaultsPatch.parse(patch);
    options = { ...options, faults: { ...options.faults, ...parsed } };
    logger.info({ faults: parsed }, 'faults set');
  }

  function setOptions(patch: RuntimeOptions): void {
    const next = resolveOptions({ ...raw, ...patch, faults: options.faults });
    raw = { ...raw, ...patch };
    const dataChanged =
      next.seed !== options.seed ||
      next.timeZone !== options.timeZone ||
      next.callsPerHour !== options.callsPerHour;
    options = next;
    if (dataChanged) data = new DataSet(options.seed, options.timeZone, options.callsPerHour);
  }

  function stopWork(): void {
    for (const t of generationTimers) clearTimeout(t);
    generationTimers.clear();
    closing.abort();
  }

  async function reset(): Promise<void> {
    stopWork();
    await callbacks.reset();
    closing = new AbortController();
    raw = { ...input };
    options = resolveOptions(raw);
    data = new DataSet(options.seed, options.timeZone, options.callsPerHour);
    state = emptyState();
    files = new Map();
    responseCounter = 0;
    outstanding = 0;
    lock.reset();
    faults.reset();
  }

  async function close(): Promise<void> {
    stopWork();
    await callbacks.close();
  }

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post(QUERY_BILL_DATA_PATH, RawBody, queryBillData);
  app.post(DOWNLOAD_BILL_FILE_PATH, RawBody, downloadBillFile);
  app.use(
    '/__sim',
    inspectionRouter({ inspect, faults: () => options.faults, setFaults, setOptions, rowKeys, reset }),
  );
  app.use((req: Request, res: Response) => {
    res.status(404).json(springError(404, req.path, now()));
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err, path: req.path }, 'simulator error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status =
      typeof err === 'object' &&
      err !== null &&
      'status' in err &&
      typeof err.status === 'number' &&
      err.status < 500
        ? err.status
        : 500;
    res.status(status).json(springError(status, req.path, now()));
  });

  return {
    app,
    inspect,
    faults: () => ({ ...options.faults }),
    setFaults,
    setOptions,
    rowsInRange,
    rowKeys,
    reset,
    close,
  };
}

const RuntimeOptionsBody = z
  .object({
    seed: z.union([z.number(), z.string()]),
    timeZone: z.string(),
    callbackDelayMs: z.number(),
    callbackRetryIntervalMs: z.number(),
    callbackMaxAttempts: z.number(),
    callbackTimeoutMs: z.number(),
    signCallbacks: z.boolean(),
    headerRow: z.boolean(),
    filesPerKind: z.number(),
    callsPerHour: z.number(),
    endInclusive: z.boolean(),
    maxSpanSeconds: z.number(),
    spanRefusalCode: z.string(),
    spanRefusalDesc: z.string(),
    emptyRange: z.enum(['query-0300012', 'download-0300012', 'header-only', 'no-entries']),
    omitEntryKinds: z.array(z.enum(['call', 'record'])),
    maxOutstandingQueries: z.number(),
    fileTtlMs: z.number(),
    padCallFileToBytes: z.number(),
    extraCdrColumns: z.boolean(),
    csv: CsvQuirksPatch,
    responseIdHyphens: z.boolean(),
    skewSeconds: z.number(),
    lockAfterFailures: z.number(),
    lockDurationMs: z.number(),
  })
  .partial()
  .strict();

const RowsQueryParams = z.object({
  beginTime: z.string(),
  endTime: z.string(),
  dataType: z.enum(['call', 'record', 'call_record']).optional(),
  ak: z.string().optional(),
  accountId: z.string().optional(),
  agentId: z.string().optional(),
  callId: z.string().optional(),
  callerNo: z.string().optional(),
  calleeNo: z.string().optional(),
  calleeNo2: z.string().optional(),
});

interface InspectionDeps {
  inspect: () => SimulatorState;
  faults: () => Faults;
  setFaults: (f: Partial<Faults>) => void;
  setOptions: (o: RuntimeOptions) => void;
  rowKeys: (q: RowsQuery) => RowKeys;
  reset: () => Promise<void>;
}

/** `/__sim`: test-only inspection and control. Plain JSON, no auth. */
function inspectionRouter(deps: InspectionDeps): express.Router {
  const router = express.Router();
  router.use(express.json());
  const badRequest = (res: Response, error: z.ZodError | Error): void => {
    const detail =
      error instanceof z.ZodError
        ? error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
        : [error.message];
    res.status(400).json({ error: 'bad request', detail });
  };
  router.get('/state', (_req, res) => {
    res.json(deps.inspect());
  });
  router.get('/faults', (_req, res) => {
    res.json(deps.faults());
  });
  router.post('/faults', (req, res) => {
    const parsed = FaultsPatch.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    deps.setFaults(parsed.data);
    res.json(deps.faults());
  });
  router.post('/options', (req, res) => {
    const parsed = RuntimeOptionsBody.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    try {
      deps.setOptions(parsed.data);
    } catch (err) {
      return badRequest(res, err as Error);
    }
    res.json({ ok: true });
  });
  router.get('/rows', (req, res) => {
    const parsed = RowsQueryParams.safeParse(req.query);
    if (!parsed.success) return badRequest(res, parsed.error);
    try {
      res.json(deps.rowKeys(parsed.data));
    } catch (err) {
      badRequest(res, err as Error);
    }
  });
  router.post('/reset', async (_req, res) => {
    await deps.reset();
    res.json({ ok: true });
  });
  return router;
}

export interface RunningSimulator {
  /** `http://host:port`, no trailing slash. */
  url: string;
  port: number;
  simulator: Simulator;
  server: Server;
  close(): Promise<void>;
}

/** Creates a simulator and listens (port 0 = a free port). */
export async function startSimulator(
  options: SimulatorOptions & { port: number; host?: string },
): Promise<RunningSimulator> {
  const { port, host = '127.0.0.1', ...rest } = options;
  const simulator = createSimulator(rest);
  const server = createServer(simulator.app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${hostPart}:${address.port}`,
    port: address.port,
    simulator,
    server,
    close: () =>
      (closed ??= (async () => {
        await simulator.close();
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await serverClosed;
      })()),
  };
}
