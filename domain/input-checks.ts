import { MAX_CHUNK_SECONDS } from './chunking';
import { isValidTimeZone, parseWallTime, WallTimeError } from './wall-time';

/**
 * Checks of a workflow's input that the API and the CLI make before starting it (lib/export-input.ts),
 * made again by the workflows themselves, because a workflow can be started directly (the Temporal CLI
 * or UI, another client, a schedule edited by hand). Pure and deterministic, so workflows may use it:
 * a workflow turns a problem into a non-retryable ApplicationFailure of type INVALID_WORKFLOW_INPUT
 * naming the field, instead of throwing a plain error that retries the workflow task forever.
 */

/** ApplicationFailure type of a workflow that refused its input; its details hold `{ field, problem }`. */
export const INVALID_WORKFLOW_INPUT = 'InvalidWorkflowInput';

/** One bad field of a workflow input: its path in the input (`request.timeZone`) and what is wrong. */
export interface InputProblem {
  field: string;
  problem: string;
}

const DATA_TYPES: readonly string[] = ['call', 'record', 'call_record'];
/** Export IDs become workflow IDs and directory names (the same rule as EXPORT_ID_PATTERN in definitions). */
const EXPORT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A field that must be an object (a workflow started with `null`, `"x"` or `{}` lacks it). */
function objectProblem(value: unknown, field: string): InputProblem | undefined {
  return isObject(value)
    ? undefined
    : { field, problem: `${JSON.stringify(value) ?? 'nothing'} is not an object` };
}

function exportIdProblem(value: unknown, field: string): InputProblem | undefined {
  if (typeof value !== 'string' || !EXPORT_ID.test(value))
    return {
      field,
      problem: `${JSON.stringify(value) ?? 'nothing'} is not an export ID (letters, digits, ".", "_", "-"; at most 100)`,
    };
  return undefined;
}

function countProblem(value: unknown, field: string, min: number): InputProblem | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min)
    return { field, problem: `${JSON.stringify(value) ?? 'nothing'} is not a number of at least ${min}` };
  return undefined;
}
const DAY = /^\d{4}-\d{2}-\d{2}$/;

function zoneProblem(zone: unknown, field: string): InputProblem | undefined {
  if (typeof zone !== 'string' || !isValidTimeZone(zone))
    return { field, problem: `${JSON.stringify(zone)} is not an IANA time zone such as Asia/Shanghai` };
  return undefined;
}

function dataTypeProblem(dataType: unknown, field: string): InputProblem | undefined {
  if (typeof dataType !== 'string' || !DATA_TYPES.includes(dataType))
    return { field, problem: `${JSON.stringify(dataType)} is not one of ${DATA_TYPES.join(', ')}` };
  return undefined;
}

function wallProblem(value: unknown, field: string): { seconds?: number; problem?: InputProblem } {
  if (typeof value !== 'string')
    return { problem: { field, problem: `${JSON.stringify(value)} is not a wall time` } };
  try {
    return { seconds: parseWallTime(value, field) };
  } catch (err) {
    if (err instanceof WallTimeError) return { problem: { field, problem: err.message } };
    throw err;
  }
}

/**
 * The first problem of an export workflow's input: `request` must be an object with a safe `exportId`,
 * then `exportRequestProblem`.
 */
export function exportInputProblem(input: unknown): InputProblem | undefined {
  const shape =
    objectProblem(input, 'input') ?? objectProblem((input as { request?: unknown }).request, 'request');
  if (shape) return shape;
  const request = (input as { request: Record<string, unknown> }).request;
  return (
    exportIdProblem(request.exportId, 'request.exportId') ??
    objectProblem(request.options, 'request.options') ??
    exportRequestProblem(request)
  );
}

/**
 * The first problem of a chunk workflow's input: exportId, `chunk` (index, begin, end), timeZone,
 * dataType and the `options` the chunk reads (callbackTimeoutMs, maxRequestsPerChunk, retry).
 */
export function chunkInputProblem(input: unknown): InputProblem | undefined {
  const shape = objectProblem(input, 'input');
  if (shape) return shape;
  const i = input as Record<string, unknown>;
  const id = exportIdProblem(i.exportId, 'exportId');
  if (id) return id;
  const chunk = objectProblem(i.chunk, 'chunk');
  if (chunk) return chunk;
  const c = i.chunk as Record<string, unknown>;
  if (typeof c.index !== 'number' || !Number.isInteger(c.index) || c.index < 0)
    return { field: 'chunk.index', problem: `${JSON.stringify(c.index) ?? 'nothing'} is not a chunk index` };
  const begin = wallProblem(c.begin, 'chunk.begin').problem ?? wallProblem(c.end, 'chunk.end').problem;
  if (begin) return begin;
  const options = objectProblem(i.options, 'options');
  if (options) return options;
  const o = i.options as Record<string, unknown>;
  return (
    zoneProblem(i.timeZone, 'timeZone') ??
    dataTypeProblem(i.dataType, 'dataType') ??
    countProblem(o.callbackTimeoutMs, 'options.callbackTimeoutMs', 1) ??
    countProblem(o.maxRequestsPerChunk, 'options.maxRequestsPerChunk', 1) ??
    objectProblem(o.retry, 'options.retry')
  );
}

/** The first problem of a load workflow's input: a safe `exportId`. */
export function loadInputProblem(input: unknown): InputProblem | undefined {
  return (
    objectProblem(input, 'input') ?? exportIdProblem((input as { exportId?: unknown }).exportId, 'exportId')
  );
}

/**
 * The first problem of an export request (`request.*` fields): dataType, timeZone, begin and end
 * (`yyyy-MM-dd HH:mm:ss`, real calendar dates, end after begin) and the chunk length; undefined when
 * the request can be planned.
 */
export function exportRequestProblem(request: {
  dataType?: unknown;
  timeZone?: unknown;
  begin?: unknown;
  end?: unknown;
  options?: { chunkSeconds?: unknown };
}): InputProblem | undefined {
  const type = dataTypeProblem(request.dataType, 'request.dataType');
  if (type) return type;
  const zone = zoneProblem(request.timeZone, 'request.timeZone');
  if (zone) return zone;
  const begin = wallProblem(request.begin, 'request.begin');
  if (begin.problem) return begin.problem;
  const end = wallProblem(request.end, 'request.end');
  if (end.problem) return end.problem;
  if (end.seconds! <= begin.seconds!)
    return {
      field: 'request.end',
      problem: `${String(request.end)} is not later than request.begin ${String(request.begin)}`,
    };
  const chunk = request.options?.chunkSeconds;
  if (typeof chunk !== 'number' || !Number.isInteger(chunk) || chunk < 60 || chunk > MAX_CHUNK_SECONDS)
    return {
      field: 'request.options.chunkSeconds',
      problem: `${JSON.stringify(chunk)} is not a whole number of seconds from 60 to ${MAX_CHUNK_SECONDS}`,
    };
  return undefined;
}

/** The first problem of a daily action's input (`timeZone`, `dataType`); undefined when it can run. */
export function dailyInputProblem(input: {
  timeZone?: unknown;
  dataType?: unknown;
}): InputProblem | undefined {
  return (
    objectProblem(input, 'input') ??
    dataTypeProblem(input.dataType, 'dataType') ??
    zoneProblem(input.timeZone, 'timeZone')
  );
}

/** The first problem of a day's input: the daily fields and `day` (`yyyy-MM-dd`, a real date from 1970). */
export function dayInputProblem(input: {
  timeZone?: unknown;
  dataType?: unknown;
  day?: unknown;
}): InputProblem | undefined {
  const daily = dailyInputProblem(input);
  if (daily) return daily;
  if (typeof input.day !== 'string' || !DAY.test(input.day))
    return { field: 'day', problem: `${JSON.stringify(input.day)} is not a day in the form yyyy-MM-dd` };
  const { problem } = wallProblem(`${input.day} 00:00:00`, 'day');
  return problem ? { field: 'day', problem: `${input.day} is not a valid calendar date` } : undefined;
}
