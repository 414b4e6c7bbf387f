import { type DataType, PROTOCOL_VERSION, ResultCode } from '../ccfs/protocol';
import type { Filters } from './data';
import { isValidDay, parseWall } from './wall-time';

/**
 * Request validation with the documented result codes (protocol §6). Which code a case gets where the
 * table is silent is a guess, marked as such.
 */

export type Failure = { ok: false; code: ResultCode; desc: string };
export type Checked<T> = { ok: true; value: T } | Failure;

const fail = (code: ResultCode, desc: string): Failure => ({ ok: false, code, desc });

/** Parses `{"request":{"version":"2.0"},"msgBody":{...}}` and returns the msgBody. */
export function parseEnvelope(raw: Buffer): Checked<Record<string, unknown>> {
  const text = raw.toString('utf8');
  if (text.trim() === '') return fail(ResultCode.bodyNull, 'request body is null');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Guess: the table has no code for unparseable JSON; "wrong format" is the closest.
    return fail(ResultCode.parameterFormat, 'request body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return fail(ResultCode.bodyNull, 'request body is null');
  const { request, msgBody } = body as { request?: unknown; msgBody?: unknown };
  const version =
    request !== null && typeof request === 'object' ? (request as { version?: unknown }).version : undefined;
  if (version !== PROTOCOL_VERSION) return fail(ResultCode.wrongVersion, 'version must be 2.0');
  if (msgBody === undefined || msgBody === null) return fail(ResultCode.bodyNull, 'msgBody is null');
  if (typeof msgBody !== 'object' || Array.isArray(msgBody))
    return fail(ResultCode.parameterFormat, 'msgBody is not an object');
  return { ok: true, value: msgBody as Record<string, unknown> };
}

interface FieldRule {
  min: number;
  max: number;
}

/**
 * Checks type and length of an optional field. Absent, null and `""` all mean "not given": the seed's
 * own request example sends `"accountId": ""`, `"agentId": ""`, `"callId": ""` for unused filters.
 */
function optional(
  msgBody: Record<string, unknown>,
  name: string,
  rule: FieldRule,
): Checked<string | undefined> {
  const value = msgBody[name];
  if (value === undefined || value === null || value === '') return { ok: true, value: undefined };
  return required(msgBody, name, rule);
}

/** Checks presence, type, emptiness and length of a required field. */
function required(msgBody: Record<string, unknown>, name: string, rule: FieldRule): Checked<string> {
  const value = msgBody[name];
  if (value === undefined || value === null) return fail(ResultCode.parameterNull, `${name} is null`);
  if (typeof value !== 'string') return fail(ResultCode.parameterFormat, `${name} must be a string`);
  if (value.trim() === '') return fail(ResultCode.parameterEmpty, `${name} is empty`);
  if (value.length > rule.max) return fail(ResultCode.parameterTooLong, `${name} is longer than ${rule.max}`);
  if (value.length < rule.min)
    return fail(ResultCode.parameterTooShort, `${name} is shorter than ${rule.min}`);
  return { ok: true, value };
}

export interface ValidQuery {
  beginTime: string;
  endTime: string;
  /** Naive wall seconds. */
  begin: number;
  end: number;
  dataType: DataType;
  callBackURL: string;
  filters: Filters;
}

const TIME: FieldRule = { min: 19, max: 19 };
const FILTER_RULES: Array<[keyof Filters, number]> = [
  ['accountId', 20],
  ['agentId', 20],
  ['callId', 25],
  ['callerNo', 25],
  ['calleeNo', 25],
  ['calleeNo2', 25],
];
const DATA_TYPES: readonly string[] = ['call', 'record', 'call_record'];
/** Guess: CC-FS documents no length for callBackURL. */
const MAX_URL = 1024;

export function validateQuery(
  msgBody: Record<string, unknown>,
  limits: { maxSpanSeconds: number; accountId: string; spanRefusal?: { code: string; desc: string } },
): Checked<ValidQuery> {
  const beginTime = required(msgBody, 'beginTime', TIME);
  if (!beginTime.ok) return beginTime;
  const endTime = required(msgBody, 'endTime', TIME);
  if (!endTime.ok) return endTime;
  const filters: Filters = {};
  for (const [name, max] of FILTER_RULES) {
    const f = optional(msgBody, name, { min: 1, max });
    if (!f.ok) return f;
    if (f.value !== undefined) filters[name] = f.value;
  }
  const dataType = required(msgBody, 'dataType', { min: 1, max: 32 });
  if (!dataType.ok) return dataType;
  const callBackURL = required(msgBody, 'callBackURL', { min: 1, max: MAX_URL });
  if (!callBackURL.ok) return callBackURL;

  const begin = parseWall(beginTime.value);
  if (begin === undefined)
    return fail(ResultCode.parameterFormat, 'beginTime must be a valid yyyy-MM-dd HH:mm:ss');
  const end = parseWall(endTime.value);
  if (end === undefined)
    return fail(ResultCode.parameterFormat, 'endTime must be a valid yyyy-MM-dd HH:mm:ss');
  if (!DATA_TYPES.includes(dataType.value))
    return fail(ResultCode.parameterFormat, 'dataType must be call, record or call_record');
  if (!isHttpUrl(callBackURL.value))
    return fail(ResultCode.parameterFormat, 'callBackURL must be an http(s) URL');
  // Guess: an accountId the AK does not belong to is reported as a wrong parameter.
  if (filters.accountId !== undefined && filters.accountId !== limits.accountId) {
    return fail(ResultCode.parameterFormat, 'accountId does not belong to this AK');
  }
  if (begin > end) return fail(ResultCode.beginAfterEnd, 'beginTime is later than endTime');
  // Guess: the code for a range over the limit is undocumented; "wrong format" is used.
  if (end - begin > limits.maxSpanSeconds) {
    // The code and wording are settings (spanRefusalCode/-Desc): implementations word this differently.
    const refusal = limits.spanRefusal ?? {
      code: ResultCode.parameterFormat,
      desc: 'endTime - beginTime exceeds {max} seconds',
    };
    return fail(refusal.code as ResultCode, refusal.desc.split('{max}').join(String(limits.maxSpanSeconds)));
  }
  return {
    ok: true,
    value: {
      beginTime: beginTime.value,
      endTime: endTime.value,
      begin,
      end,
      dataType: dataType.value as DataType,
      callBackURL: callBackURL.value,
      filters,
    },
  };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

const BILL_FILE = /^(\d{8})_[0-9a-fA-F]{32}\.zip$/;

/** Returns the billFileName, lower-cased hex; 0300010 for a bad date part, 0300011 for any other shape. */
export function validateDownload(msgBody: Record<string, unknown>): Checked<string> {
  const name = required(msgBody, 'billFileName', { min: 1, max: 49 });
  if (!name.ok) return name;
  const value = name.value;
  if (!isValidDay(value.slice(0, 8)))
    return fail(ResultCode.fileNameDate, 'the date part of billFileName is malformed');
  if (!BILL_FILE.test(value)) return fail(ResultCode.fileNotFound, 'file does not exist');
  return { ok: true, value };
}
