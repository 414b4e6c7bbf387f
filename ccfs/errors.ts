import { ResultCode } from './protocol';

/**
 * How a CC-FS failure should be handled (docs/ccfs-protocol.md §6). `retryable` failures go back to
 * the retry policy; `permanent` ones need a person (credentials, request, configuration);
 * `file-not-found` means the bill file must be requested again with queryBillData (or, while it is
 * being generated, is not there yet); `no-data` means the range holds nothing (0300012 on a download).
 */
export type CcfsErrorCategory = 'retryable' | 'permanent' | 'file-not-found' | 'no-data';

export type CcfsOperation = 'queryBillData' | 'downloadBillFile';

/** Stable error type names, used as Temporal `ApplicationFailure` types. */
export const CcfsErrorType = {
  flowControl: 'CcfsFlowControl',
  unavailable: 'CcfsUnavailable',
  truncated: 'CcfsTruncated',
  authRejected: 'CcfsAuthRejected',
  ipLocked: 'CcfsIpLocked',
  badRequest: 'CcfsBadRequest',
  fileNotFound: 'CcfsFileNotFound',
  protocolError: 'CcfsProtocolError',
  tlsError: 'CcfsTlsError',
  /** CC-FS refused the chunk's time range as too long (its reading of "at most three days"). */
  spanRefused: 'CcfsSpanRefused',
  /** 0300012 on downloadBillFile: CC-FS accepted the query but the range holds no data. */
  noData: 'CcfsNoData',
} as const;
export type CcfsErrorType = (typeof CcfsErrorType)[keyof typeof CcfsErrorType];

/** The category each type always has, so that a type name alone tells a retry policy what to do. */
export const CCFS_ERROR_CATEGORY: Readonly<Record<CcfsErrorType, CcfsErrorCategory>> = {
  CcfsFlowControl: 'retryable',
  CcfsUnavailable: 'retryable',
  CcfsTruncated: 'retryable',
  CcfsAuthRejected: 'permanent',
  CcfsIpLocked: 'permanent',
  CcfsBadRequest: 'permanent',
  CcfsFileNotFound: 'file-not-found',
  CcfsProtocolError: 'permanent',
  CcfsTlsError: 'permanent',
  // Permanent for this range: the same request is refused again; a shorter range is accepted.
  CcfsSpanRefused: 'permanent',
  CcfsNoData: 'no-data',
};

/** Types a Temporal retry policy should list in `nonRetryableErrorTypes`. */
export const NON_RETRYABLE_CCFS_ERROR_TYPES: readonly CcfsErrorType[] = (
  Object.keys(CCFS_ERROR_CATEGORY) as CcfsErrorType[]
).filter((t) => CCFS_ERROR_CATEGORY[t] !== 'retryable');

/** JSON-safe facts about a failure, fit for `ApplicationFailure` details and logs. Never holds secrets. */
export interface CcfsErrorDetails {
  operation: CcfsOperation;
  type: CcfsErrorType;
  category: CcfsErrorCategory;
  resultCode?: string;
  resultDesc?: string;
  httpStatus?: number;
  /** From a `Retry-After` header, when CC-FS or its gateway sent one. */
  retryAfterMs?: number;
}

export interface CcfsErrorInit {
  operation: CcfsOperation;
  type: CcfsErrorType;
  message: string;
  resultCode?: string;
  resultDesc?: string;
  httpStatus?: number;
  retryAfterMs?: number;
  cause?: unknown;
}

export class CcfsError extends Error {
  override readonly name = 'CcfsError';
  readonly category: CcfsErrorCategory;
  readonly type: CcfsErrorType;
  readonly operation: CcfsOperation;
  readonly resultCode?: string;
  readonly resultDesc?: string;
  readonly httpStatus?: number;
  readonly retryAfterMs?: number;

  constructor(init: CcfsErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.type = init.type;
    this.category = CCFS_ERROR_CATEGORY[init.type];
    this.operation = init.operation;
    if (init.resultCode !== undefined) this.resultCode = init.resultCode;
    if (init.resultDesc !== undefined) this.resultDesc = init.resultDesc;
    if (init.httpStatus !== undefined) this.httpStatus = init.httpStatus;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
  }

  get retryable(): boolean {
    return this.category === 'retryable';
  }

  get details(): CcfsErrorDetails {
    const d: CcfsErrorDetails = { operation: this.operation, type: this.type, category: this.category };
    if (this.resultCode !== undefined) d.resultCode = this.resultCode;
    if (this.resultDesc !== undefined) d.resultDesc = this.resultDesc;
    if (this.httpStatus !== undefined) d.httpStatus = this.httpStatus;
    if (this.retryAfterMs !== undefined) d.retryAfterMs = this.retryAfterMs;
    return d;
  }
}

export function isCcfsError(err: unknown): err is CcfsError {
  return err instanceof CcfsError;
}

export type ResultClassification =
  | { outcome: 'success' }
  /** 0300012 on queryBillData: the range holds no data; the chunk is done and empty. */
  | { outcome: 'empty' }
  | { outcome: 'failure'; type: CcfsErrorType; category: CcfsErrorCategory; meaning: string; hint: string };

interface CodeInfo {
  type: CcfsErrorType;
  meaning: string;
  hint: string;
}

const FIX_REQUEST = 'the request is wrong and retrying will not help; fix the request that the client builds';

/** Every documented non-success result code (§6) with what it means and what to do about it. */
export const RESULT_CODES: Readonly<Record<string, CodeInfo>> = {
  [ResultCode.parameterNull]: { type: 'CcfsBadRequest', meaning: 'a parameter is null', hint: FIX_REQUEST },
  [ResultCode.parameterEmpty]: { type: 'CcfsBadRequest', meaning: 'a parameter is empty', hint: FIX_REQUEST },
  [ResultCode.parameterTooLong]: {
    type: 'CcfsBadRequest',
    meaning: 'a parameter is too long',
    hint: FIX_REQUEST,
  },
  [ResultCode.parameterFormat]: {
    type: 'CcfsBadRequest',
    meaning: 'a parameter has a wrong format',
    hint: FIX_REQUEST,
  },
  [ResultCode.parameterTooShort]: {
    type: 'CcfsBadRequest',
    meaning: 'a parameter is too short',
    hint: FIX_REQUEST,
  },
  [ResultCode.wrongVersion]: {
    type: 'CcfsBadRequest',
    meaning: 'wrong interface version (must be 2.0)',
    hint: FIX_REQUEST,
  },
  [ResultCode.bodyNull]: {
    type: 'CcfsBadRequest',
    meaning: 'the request body parameters are null',
    hint: FIX_REQUEST,
  },
  [ResultCode.downloadFlowControl]: {
    type: 'CcfsFlowControl',
    meaning: 'download flow-control threshold reached',
    hint: 'CC-FS is throttling downloads; retry later with backoff',
  },
  [ResultCode.queryFlowControl]: {
    type: 'CcfsFlowControl',
    meaning: 'query flow-control threshold reached',
    hint: 'CC-FS is throttling queries; retry later with backoff',
  },
  [ResultCode.fileNameDate]: {
    type: 'CcfsBadRequest',
    meaning: 'the date part of the bill file name is malformed',
    hint: 'the billFileName does not come from a CC-FS callback unchanged; check the callback handling',
  },
  [ResultCode.fileNotFound]: {
    type: 'CcfsFileNotFound',
    meaning: 'the bill file does not exist (not generated yet, expired, or requested by another developer)',
    hint: 'request the range again with queryBillData',
  },
  [ResultCode.beginAfterEnd]: {
    type: 'CcfsBadRequest',
    meaning: 'beginTime is later than endTime',
    hint: FIX_REQUEST,
  },
};

function failure(type: CcfsErrorType, meaning: string, hint: string): ResultClassification {
  return { outcome: 'failure', type, category: CCFS_ERROR_CATEGORY[type], meaning, hint };
}

/**
 * Classifies one CC-FS answer. The HTTP status wins over the body: CC-FS puts every business
 * outcome in HTTP 200, so any other status comes from the signature check, a lock, or a gateway.
 * Pure, so that a unit test can cover every documented code.
 */
export function classifyResult(input: {
  httpStatus: number;
  resultCode?: string;
  /** The answer's resultDesc: tells a refused range from other parameter errors. */
  resultDesc?: string;
  operation?: CcfsOperation;
}): ResultClassification {
  const { httpStatus, resultCode } = input;
  if (httpStatus === 401) {
    return failure(
      'CcfsAuthRejected',
      'HTTP 401, the request signature was rejected',
      'check the AK/SK pair, that the AK belongs to the tenant, the signed headers and the clock of this host',
    );
  }
  if (httpStatus === 403) {
    return failure(
      'CcfsIpLocked',
      'HTTP 403, this IP address is locked after repeated signature failures',
      'fix the credentials, then ask the CC-FS operator to unlock the IP address',
    );
  }
  if (httpStatus === 429)
    return failure(
      'CcfsFlowControl',
      'HTTP 429, too many requests',
      'a gateway is throttling; retry later with backoff',
    );
  if (httpStatus === 408) return failure('CcfsUnavailable', 'HTTP 408, request timeout', 'retry later');
  if (httpStatus >= 500 && httpStatus <= 599) {
    return failure(
      'CcfsUnavailable',
      `HTTP ${httpStatus}, CC-FS or its gateway is unavailable`,
      'retry later',
    );
  }
  if (httpStatus >= 400 && httpStatus <= 499) {
    return failure(
      'CcfsBadRequest',
      `HTTP ${httpStatus}, unexpected client error status`,
      'check the configured CC-FS base URL (it must be https://ip:port of CC-FS or its load balancer)',
    );
  }
  if (httpStatus !== 200) {
    return failure(
      'CcfsProtocolError',
      `HTTP ${httpStatus}, unexpected status (CC-FS answers everything with 200)`,
      'check the configured CC-FS base URL and any proxy in between',
    );
  }
  if (resultCode === undefined) {
    return failure(
      'CcfsProtocolError',
      'the answer carries no resultCode',
      'check that the base URL points at CC-FS',
    );
  }
  if (resultCode === ResultCode.success) return { outcome: 'success' };
  if (resultCode === ResultCode.noData) {
    if (input.operation === 'downloadBillFile') {
      // Undocumented for downloads, but a CC-FS that accepts a query of an empty range may answer so
      // for its file: the range is empty, not the request wrong.
      return failure('CcfsNoData', 'no data found for the bill file', 'the chunk is recorded as empty');
    }
    return { outcome: 'empty' };
  }
  if (isSpanRefusal(resultCode, input.resultDesc)) {
    return failure(
      'CcfsSpanRefused',
      'the time range is longer than CC-FS accepts',
      'the export splits the chunk into shorter ranges',
    );
  }
  const info = RESULT_CODES[resultCode];
  if (info) return failure(info.type, info.meaning, info.hint);
  return failure(
    'CcfsBadRequest',
    'undocumented result code',
    'look the code up in the CC-FS error code table (cec_07_4240)',
  );
}

const NAMES_TIME_FIELD = /\b(begin|end)_?time\b/i;
/** Words of a format, presence or order problem: splitting the range would not cure these. */
const NOT_A_LENGTH = /\b(format|null|empty|invalid|valid|pattern|later than|earlier than|before|after)\b/i;
/**
 * "The interval is too long" in the wordings a CC-FS may use, English or Chinese: time/range/span/
 * interval/period with too long/large/exceeds/more than/over/limit, "3 days"/"three days"/"72 hours".
 */
const SAYS_TOO_LONG = new RegExp(
  [
    '(time|range|span|interval|period|duration|window|days?)\\b[^.;]{0,60}\\b(too (long|large|big|wide)|exceed(s|ed|ing)?|more than|greater than|longer than|over|beyond|limit)',
    '(too (long|large|big|wide)|exceed(s|ed|ing)?|more than|greater than|longer than|beyond)[^.;]{0,60}\\b(span|interval|range|period|duration|days?|hours?|72|259200)',
    '\\b(3|three) ?days?\\b',
    '\\b72 ?(h|hours?)\\b',
    '(时间|间隔|跨度|范围|区间)[^。；]{0,20}(超过|超出|大于|不能超|过长|太长)',
    '(三|3) ?天',
  ].join('|'),
  'i',
);

/**
 * Whether an answer refuses the request's time range as too long (protocol §3: end − begin ≤ 3 days,
 * read strictly or loosely by an implementation): `0300003`/`0300004` whose description names
 * `beginTime` or `endTime` (and is not about format, presence or order), or any non-success answer
 * whose description says the interval is too long. Matching is loose and case-insensitive, since the
 * descriptions are undocumented.
 */
export function isSpanRefusal(resultCode: string | undefined, resultDesc: string | undefined): boolean {
  if (resultCode === undefined || resultCode === ResultCode.success || !resultDesc) return false;
  if (resultCode === ResultCode.noData || resultCode === ResultCode.fileNotFound) return false;
  if (resultCode === ResultCode.queryFlowControl || resultCode === ResultCode.downloadFlowControl)
    return false;
  const lengthCode = resultCode === ResultCode.parameterTooLong || resultCode === ResultCode.parameterFormat;
  if (
    lengthCode &&
    NAMES_TIME_FIELD.test(resultDesc) &&
    (!NOT_A_LENGTH.test(resultDesc) || SAYS_TOO_LONG.test(resultDesc))
  ) {
    return true;
  }
  return (
    SAYS_TOO_LONG.test(resultDesc) &&
    !/\b(callback|url|account|agent|caller|callee|billfilename)\w*\b/i.test(resultDesc)
  );
}

/** Builds the error for a failed classification, with a message an operator can act on. */
export function errorFromClassification(
  operation: CcfsOperation,
  c: Extract<ResultClassification, { outcome: 'failure' }>,
  answer: { httpStatus?: number; resultCode?: string; resultDesc?: string; retryAfterMs?: number },
): CcfsError {
  const verb = c.category === 'retryable' ? 'failed at' : 'rejected by';
  const what =
    answer.resultCode !== undefined && answer.resultCode !== ''
      ? `${answer.resultCode} ${c.meaning}`
      : c.meaning;
  const desc = answer.resultDesc ? ` (${answer.resultDesc})` : '';
  return new CcfsError({
    operation,
    type: c.type,
    message: `${operation} ${verb} CC-FS: ${what}${desc}; ${c.hint}`,
    ...(answer.httpStatus !== undefined && { httpStatus: answer.httpStatus }),
    ...(answer.resultCode !== undefined && { resultCode: answer.resultCode }),
    ...(answer.resultDesc !== undefined && { resultDesc: answer.resultDesc }),
    ...(answer.retryAfterMs !== undefined && { retryAfterMs: answer.retryAfterMs }),
  });
}

/** TLS certificate verification failures (Node / OpenSSL codes): configuration, not transient. */
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Walks `cause` chains (undici wraps socket errors) looking for the first error code. */
function findCodes(err: unknown): string[] {
  const codes: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== undefined && cur !== null; depth++) {
    const code = errorCode(cur);
    if (code) codes.push(code);
    cur = typeof cur === 'object' ? (cur as { cause?: unknown }).cause : undefined;
  }
  return codes;
}

/**
 * Classifies a failure below HTTP: refused or reset connections, DNS, timeouts → retryable
 * CcfsUnavailable; certificate verification → permanent CcfsTlsError (retrying cannot make an
 * untrusted certificate trusted; the operator must configure the CA file).
 */
export function classifyTransportError(err: unknown, operation: CcfsOperation, target: string): CcfsError {
  const codes = findCodes(err);
  const tls = codes.find((c) => TLS_VERIFY_CODES.has(c));
  if (tls) {
    return new CcfsError({
      operation,
      type: 'CcfsTlsError',
      message: `${operation} could not verify the TLS certificate of ${target}: ${tls}; configure the CA file that issued the CC-FS certificate (do not disable verification in production)`,
      cause: err,
    });
  }
  const code = codes[0] ?? 'network error';
  return new CcfsError({
    operation,
    type: 'CcfsUnavailable',
    message: `${operation} could not reach CC-FS at ${target}: ${code}${describe(err)}; retry later`,
    cause: err,
  });
}

function describe(err: unknown): string {
  return err instanceof Error && err.message ? ` (${err.message})` : '';
}
