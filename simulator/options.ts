import { z } from 'zod';
import type { Logger } from '../lib/logger';
import { isValidTimeZone } from './wall-time';

/**
 * Settings of the simulator. Everything the protocol page tags [unknown] is a setting here, never a
 * hard-coded guess; the defaults are the guesses the product is expected to survive.
 */

const probability = z.number().min(0).max(1);
const nonNegativeInt = z.number().int().min(0);

/** Fault injection. Probabilities are 0..1 and decided by a seeded generator, so a run is reproducible. */
export const Faults = z
  .object({
    /** Never send the callback (the file is still generated and downloadable). */
    dropCallback: probability,
    /** Deliver the callback a second time after the first delivery. */
    duplicateCallback: probability,
    /** Fraction of callbacks delayed by `lateCallbackMs` more. */
    lateCallback: probability,
    lateCallbackMs: nonNegativeInt,
    /** Fraction of callbacks held back and released in shuffled order. */
    reorderCallbacks: probability,
    /** Held callbacks are released when this many are held … */
    reorderWindow: z.number().int().min(2),
    /** … or when the oldest has been held this long. */
    reorderMaxHoldMs: nonNegativeInt,
    /** queryBillData answers 0300009. */
    queryFlowControl: probability,
    /** downloadBillFile answers 0300008. */
    downloadFlowControl: probability,
    queryHttp500: probability,
    downloadHttp500: probability,
    /** The socket is cut after a random fraction (5–95 %) of the ZIP. */
    truncateDownload: probability,
    /** Throttles every download to this many bytes per second; 0 = off. */
    slowDownloadBytesPerSecond: z.number().min(0),
    /** Decided at a file's first download: the file counts as expired (0300011) from then on. */
    expireFiles: probability,
  })
  .strict();
export type Faults = z.infer<typeof Faults>;
export const FaultsPatch = Faults.partial().strict();

export const NO_FAULTS: Faults = {
  dropCallback: 0,
  duplicateCallback: 0,
  lateCallback: 0,
  lateCallbackMs: 2_000,
  reorderCallbacks: 0,
  reorderWindow: 3,
  reorderMaxHoldMs: 2_000,
  queryFlowControl: 0,
  downloadFlowControl: 0,
  queryHttp500: 0,
  downloadHttp500: 0,
  truncateDownload: 0,
  slowDownloadBytesPerSecond: 0,
  expireFiles: 0,
};

/**
 * How CSV entries are written (protocol §5 leaves separator, quoting, encoding and header [unknown]):
 * every reading a real CC-FS may take, for readers that must count rows exactly whatever it is.
 */
export const CsvQuirks = z
  .object({
    /** Start every CSV with a UTF-8 byte order mark. */
    bom: z.boolean(),
    lineEnding: z.enum(['lf', 'crlf', 'cr']),
    /** `gbk`: Chinese text as GBK bytes, as a Windows-made export may hold. */
    encoding: z.enum(['utf8', 'gbk']),
    /**
     * Data rows (0-based within each CSV) whose `unbalancedQuoteField` opens a quote that never
     * closes (`"Anonymous,<value>`); each stays one line, so the file's records by line are its rows.
     */
    unbalancedQuoteRows: z.array(nonNegativeInt),
    /** Fraction of data rows given such a quote, decided per row by the seed. */
    unbalancedQuote: probability,
    /** Column that gets the unclosed quote; present in both kinds. Default `caller_no`. */
    unbalancedQuoteField: z.string().min(1),
    /** Data rows lack this many trailing columns (the header keeps them all). */
    missingColumns: nonNegativeInt,
    /** Fraction of data rows whose `caller_no` holds a quoted line break (one record over two lines). */
    embeddedNewline: probability,
  })
  .strict();
export type CsvQuirks = z.infer<typeof CsvQuirks>;
export const CsvQuirksPatch = CsvQuirks.partial().strict();

export const PLAIN_CSV: CsvQuirks = {
  bom: false,
  lineEnding: 'lf',
  encoding: 'utf8',
  unbalancedQuoteRows: [],
  unbalancedQuote: 0,
  unbalancedQuoteField: 'caller_no',
  missingColumns: 0,
  embeddedNewline: 0,
};

export type EmptyRange = 'query-0300012' | 'download-0300012' | 'header-only' | 'no-entries';
export const EMPTY_RANGES: readonly EmptyRange[] = [
  'query-0300012',
  'download-0300012',
  'header-only',
  'no-entries',
];

export interface SimulatorAccount {
  ak: string;
  sk: string;
  /** Tenant space id written in `account_id` and accepted as the `accountId` filter. Default `acc0001`, … */
  accountId?: string;
  /** Value of the `developer` column. Default `dev0001`, … */
  developer?: string;
}

export interface SimulatorOptions {
  accounts: SimulatorAccount[];
  seed?: number | string;
  /** IANA zone of the tenant: wall times of rows, of billFileName dates and of "now". Default UTC. */
  timeZone?: string;
  /** Time from query to generated file and first callback attempt. Default 200. */
  callbackDelayMs?: number;
  /** CC-FS retries every 10 minutes. Default 600000. */
  callbackRetryIntervalMs?: number;
  /** Total delivery attempts of one callback. Default 10. */
  callbackMaxAttempts?: number;
  /** Timeout of one callback attempt. Default 10000. */
  callbackTimeoutMs?: number;
  /** Sign callbacks with auth-v2 using the account's AK/SK. Default true. */
  signCallbacks?: boolean;
  /** PEM CA to trust for https callback URLs (private CA). */
  callbackCa?: string;
  /** First line of every CSV is the column names. Default true. */
  headerRow?: boolean;
  /** Rows of each kind split across `_call_1.csv` … `_call_N.csv`. Default 1. */
  filesPerKind?: number;
  /** Data density: calls generated per wall-clock hour (fractions allowed). Default 6. */
  callsPerHour?: number;
  /** A call beginning exactly at endTime is in range. Default true. */
  endInclusive?: boolean;
  /** Largest accepted endTime − beginTime in wall seconds. Default 259200 (3 days, accepted). */
  maxSpanSeconds?: number;
  /**
   * How a range over `maxSpanSeconds` is refused: the result code (default `0300004`) and the
   * description, where `{max}` stands for maxSpanSeconds (default names endTime and beginTime).
   */
  spanRefusalCode?: string;
  spanRefusalDesc?: string;
  /**
   * How a range without data answers: `query-0300012` (default) on queryBillData; or the query is
   * accepted and called back, and then downloadBillFile answers 0300012 (`download-0300012`), or the
   * ZIP holds header-only CSVs (`header-only`) or no entries at all (`no-entries`).
   */
  emptyRange?: EmptyRange;
  /** Kinds left out of every generated ZIP although requested (a ZIP that lacks a requested kind). Default none. */
  omitEntryKinds?: Array<'call' | 'record'>;
  /** Queries whose file is not generated yet; one more answers 0300009. Default unlimited. */
  maxOutstandingQueries?: number;
  /** A generated file answers 0300011 this long after generation. Default unlimited. */
  fileTtlMs?: number;
  /** Pad the (last) call CSV with filler rows until it is at least this many bytes; stored, not deflated. */
  padCallFileToBytes?: number;
  /** Two unknown trailing CDR columns (`callee_no2`, `media_type`) for tolerant parsers. Default false. */
  extraCdrColumns?: boolean;
  /** Whether responseId is a hyphenated UUID (billFileName never has hyphens). Default false. */
  responseIdHyphens?: boolean;
  /**
   * The Host of callbacks, sent and signed: `url` the callBackURL's host as is, `no-port` without any
   * port (the seed's example: URL `https://10.57.118.171:8000`, `Host: 10.57.118.171`), `default-port`
   * with the scheme's port spelled out (`:443` / `:80`). Default `url`.
   */
  callbackHost?: 'url' | 'no-port' | 'default-port';
  /** `accountId: ""` in callbacks of queries that named no account, as the seed's example shows. Default false. */
  callbackEmptyAccountId?: boolean;
  /** responseId in callbacks: as issued, or hyphenated upper-case (billFileName stays as generated). Default `as-issued`. */
  callbackResponseId?: 'as-issued' | 'upper-hyphenated';
  /** Name of the file field in callbacks: `billFileName` (table 7) or `billName` (the seed's prose). Default `billFileName`. */
  callbackFileField?: 'billFileName' | 'billName';
  /** Accepted distance between a request's signed timestamp and now. Default 900. */
  skewSeconds?: number;
  /** Consecutive bad signatures from one IP before it is locked (403). Default 20. */
  lockAfterFailures?: number;
  /** How long an IP lock lasts. Default 600000. */
  lockDurationMs?: number;
  faults?: Partial<Faults>;
  /** How CSV entries are written (BOM, line ending, encoding, broken quotes, missing columns). Default plain. */
  csv?: Partial<CsvQuirks>;
  /** Source of "now"; fix it to make file names and ZIP bytes identical across instances. */
  clock?: () => Date;
  logger?: Logger;
}

export type ResolvedOptions = Required<
  Omit<SimulatorOptions, 'callbackCa' | 'padCallFileToBytes' | 'logger' | 'faults' | 'accounts' | 'csv'>
> & {
  csv: CsvQuirks;
  accounts: Array<Required<SimulatorAccount>>;
  callbackCa: string | undefined;
  padCallFileToBytes: number | undefined;
  faults: Faults;
};

export const DEFAULTS = {
  seed: 1,
  timeZone: 'UTC',
  callbackDelayMs: 200,
  callbackRetryIntervalMs: 600_000,
  callbackMaxAttempts: 10,
  callbackTimeoutMs: 10_000,
  signCallbacks: true,
  headerRow: true,
  filesPerKind: 1,
  callsPerHour: 6,
  endInclusive: true,
  maxSpanSeconds: 259_200,
  spanRefusalCode: '0300004',
  spanRefusalDesc: 'endTime - beginTime exceeds {max} seconds',
  emptyRange: 'query-0300012' as EmptyRange,
  omitEntryKinds: [] as Array<'call' | 'record'>,
  maxOutstandingQueries: Number.POSITIVE_INFINITY,
  fileTtlMs: Number.POSITIVE_INFINITY,
  extraCdrColumns: false,
  responseIdHyphens: false,
  callbackHost: 'url',
  callbackEmptyAccountId: false,
  callbackResponseId: 'as-issued',
  callbackFileField: 'billFileName',
  skewSeconds: 900,
  lockAfterFailures: 20,
  lockDurationMs: 600_000,
} as const;

const Account = z.object({
  ak: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[^/\s]+$/, 'an AK cannot contain "/" or spaces'),
  sk: z.string().min(1),
  accountId: z.string().min(1).max(20).optional(),
  developer: z.string().min(1).optional(),
});

const positiveInt = z.number().int().positive();
const nonNegative = z.number().min(0);

/** Checks the settings a person or a test can get wrong; functions and the logger pass through. */
const OptionsSchema = z.object({
  accounts: z.array(Account).min(1, 'at least one account is needed'),
  seed: z.union([z.number(), z.string()]).optional(),
  timeZone: z.string().optional(),
  callbackDelayMs: nonNegative.optional(),
  callbackRetryIntervalMs: nonNegative.optional(),
  callbackMaxAttempts: positiveInt.optional(),
  callbackTimeoutMs: positiveInt.optional(),
  signCallbacks: z.boolean().optional(),
  callbackCa: z.string().optional(),
  headerRow: z.boolean().optional(),
  filesPerKind: positiveInt.max(1000).optional(),
  callsPerHour: nonNegative.max(100_000).optional(),
  endInclusive: z.boolean().optional(),
  maxSpanSeconds: nonNegative.optional(),
  spanRefusalCode: z.string().min(1).optional(),
  spanRefusalDesc: z.string().optional(),
  emptyRange: z.enum(['query-0300012', 'download-0300012', 'header-only', 'no-entries']).optional(),
  omitEntryKinds: z.array(z.enum(['call', 'record'])).optional(),
  maxOutstandingQueries: nonNegative.optional(),
  fileTtlMs: nonNegative.optional(),
  padCallFileToBytes: nonNegative.max(0xffff0000).optional(),
  extraCdrColumns: z.boolean().optional(),
  responseIdHyphens: z.boolean().optional(),
  callbackHost: z.enum(['url', 'no-port', 'default-port']).optional(),
  callbackEmptyAccountId: z.boolean().optional(),
  callbackResponseId: z.enum(['as-issued', 'upper-hyphenated']).optional(),
  callbackFileField: z.enum(['billFileName', 'billName']).optional(),
  skewSeconds: nonNegative.optional(),
  lockAfterFailures: positiveInt.optional(),
  lockDurationMs: nonNegative.optional(),
  faults: FaultsPatch.optional(),
  csv: CsvQuirksPatch.optional(),
});

/**
 * Settings a person may give the simulator's CLI as JSON (`--options`): everything but the accounts,
 * the clock and the logger, which have flags or are code. Unknown names are refused, so a typo is not
 * silently a default.
 */
export const CliOptionsPatch = OptionsSchema.omit({ accounts: true, callbackCa: true }).strict();

export function resolveOptions(options: SimulatorOptions): ResolvedOptions {
  const parsed = OptionsSchema.safeParse({ ...options, clock: undefined, logger: undefined });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `invalid simulator option ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const defined = Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as SimulatorOptions;
  const resolved: ResolvedOptions = {
    ...DEFAULTS,
    ...defined,
    accounts: options.accounts.map((a, i) => ({
      ak: a.ak,
      sk: a.sk,
      accountId: a.accountId ?? `acc${String(i + 1).padStart(4, '0')}`,
      developer: a.developer ?? `dev${String(i + 1).padStart(4, '0')}`,
    })),
    callbackCa: options.callbackCa,
    padCallFileToBytes: options.padCallFileToBytes || undefined,
    faults: { ...NO_FAULTS, ...options.faults },
    csv: { ...PLAIN_CSV, ...options.csv },
    clock: options.clock ?? (() => new Date()),
  };
  if (!isValidTimeZone(resolved.timeZone))
    throw new Error(`invalid simulator option timeZone: unknown zone "${resolved.timeZone}"`);
  if (new Set(resolved.accounts.map((a) => a.ak)).size !== resolved.accounts.length) {
    throw new Error('invalid simulator option accounts: duplicate AK');
  }
  return resolved;
}
