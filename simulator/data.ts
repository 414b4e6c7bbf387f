import { CDR_COLUMNS, RECORD_COLUMNS, type DataType } from '../ccfs/protocol';
import { type Rng, digits, pick, randomInt, rngFor } from './prng';
import { WallClock, formatWall } from './wall-time';

// The documented columns (docs/ccfs-protocol.md §5), as the product reads them: the simulator writes the same.
export { CDR_COLUMNS, RECORD_COLUMNS };

/**
 * Deterministic synthetic CC-FS data. Calls are generated per wall-clock hour of the tenant zone from
 * a generator seeded by (seed, account, hour), so any range can be regenerated on demand — nothing is
 * stored, and the rows of a range are the same however the range is cut into queries.
 */

/** Two trailing columns the documentation does not describe, to exercise tolerant parsers. */
export const EXTRA_CDR_COLUMNS = ['callee_no2', 'media_type'] as const;

export type CdrRow = Record<(typeof CDR_COLUMNS)[number] | (typeof EXTRA_CDR_COLUMNS)[number], string>;
export type RecordRow = Record<(typeof RECORD_COLUMNS)[number], string>;

export interface Account {
  ak: string;
  accountId: string;
  developer: string;
}

export interface Call {
  callId: string;
  /** Naive seconds of the call's begin: the time that decides whether the call is in a range. */
  beginNaive: number;
  callerNo: string;
  calleeNo: string;
  /** Second called number of a transferred call ('' if none); the `calleeNo2` filter matches it. */
  calleeNo2: string;
  cdr: CdrRow[];
  records: RecordRow[];
}

export const FILTER_NAMES = ['accountId', 'agentId', 'callId', 'callerNo', 'calleeNo', 'calleeNo2'] as const;
export type Filters = Partial<Record<(typeof FILTER_NAMES)[number], string>>;

/** A range in naive wall seconds; a call is in it by its begin time. */
export interface WallRange {
  begin: number;
  end: number;
  endInclusive: boolean;
}

export interface RangeQuery extends WallRange {
  account: Account;
  filters: Filters;
}

export function matchesFilters(call: Call, account: Account, filters: Filters): boolean {
  if (filters.accountId !== undefined && filters.accountId !== account.accountId) return false;
  if (filters.callId !== undefined && filters.callId !== call.callId) return false;
  if (filters.callerNo !== undefined && filters.callerNo !== call.callerNo) return false;
  if (filters.calleeNo !== undefined && filters.calleeNo !== call.calleeNo) return false;
  if (filters.calleeNo2 !== undefined && filters.calleeNo2 !== call.calleeNo2) return false;
  // A call matches an agent if any of its legs was handled by that agent; the whole call is returned.
  if (filters.agentId !== undefined && !call.cdr.some((r) => r.agent_id === filters.agentId)) return false;
  return true;
}

const SERVICE_NUMBERS = ['4008001000', '95555', '10086', '4001234567'] as const;
const RELEASE_CAUSES = ['0', '0', '0', '16', '31', '102'] as const;
const CALL_TYPES = ['0', '0', '0', '1'] as const;
const SKILLS = ['3', '5', '8'] as const;
/** Calls are shorter than this; within it an unchanged UTC offset means naive arithmetic is exact. */
const MAX_CALL_SECONDS = 3 * 3600;

type LegKind = 'ivr' | 'queue' | 'agent';
const DEVICE_TYPE: Record<LegKind, string> = { queue: '1', agent: '2', ivr: '3' };

function legPattern(rng: Rng): LegKind[] {
  const r = rng();
  if (r < 0.15) return ['ivr'];
  if (r < 0.45) return ['agent'];
  if (r < 0.75) return ['ivr', 'agent'];
  if (r < 0.92) return ['ivr', 'queue', 'agent'];
  return ['ivr', 'queue', 'agent', 'agent'];
}

function originalFileName(rng: Rng, callId: string, leg: number, agentId: string): string {
  const r = rng();
  // A few names that need RFC 4180 quoting or are not ASCII, so CSV readers are exercised.
  if (r < 0.08) return `rec ${callId}, leg ${leg}.wav`;
  if (r < 0.12) return `录音_${callId}_${leg}.wav`;
  if (r < 0.15) return `agent "${agentId}" ${callId}.wav`;
  return `${callId}_${leg}.wav`;
}

export class DataSet {
  readonly clock: WallClock;

  constructor(
    readonly seed: number | string,
    timeZone: string,
    readonly callsPerHour: number,
  ) {
    this.clock = new WallClock(timeZone);
  }

  /** The calls beginning in one wall hour (naive seconds, multiple of 3600), sorted by begin time. */
  callsInHour(account: Account, hourNaive: number): Call[] {
    const hourStart = this.clock.hourStart(hourNaive);
    if (hourStart === undefined) return [];
    const rng = rngFor(this.seed, 'calls', account.accountId, hourNaive);
    const whole = Math.floor(this.callsPerHour);
    const count = whole + (rng() < this.callsPerHour - whole ? 1 : 0);
    if (count === 0) return [];
    const offsets = Array.from({ length: count }, () => Math.floor(rng() * 3600)).sort((a, b) => a - b);
    const steadyOffset = this.clock.offsetMinutes(hourStart);
    const steady = this.clock.offsetMinutes(hourStart + MAX_CALL_SECONDS * 1000) === steadyOffset;
    const wallOf = (instantMs: number): string =>
      formatWall((steady ? instantMs + steadyOffset * 60_000 : this.clock.wallMs(instantMs)) / 1000);
    return offsets.map((offset, seq) =>
      this.call(rng, account, hourNaive + offset, hourStart + offset * 1000, seq, wallOf),
    );
  }

  private call(
    rng: Rng,
    account: Account,
    beginNaive: number,
    beginInstant: number,
    seq: number,
    wallOf: (instantMs: number) => string,
  ): Call {
    const callId = `${beginNaive - (beginNaive % 3600)}-${String(seq).padStart(5, '0')}`;
    const callerNo = `13${digits(rng, 9)}`;
    const calleeNo = pick(rng, SERVICE_NUMBERS);
    const callType = pick(rng, CALL_TYPES);
    const legs = legPattern(rng);
    const skill = pick(rng, SKILLS);
    const agents = legs.map((kind) => (kind === 'agent' ? String(randomInt(rng, 1001, 1050)) : ''));
    const transferTo = legs.length === 4 ? (agents[3] ?? '') : '';
    const calleeNo2 = transferTo ? `8${transferTo}` : '';
    const cdr: CdrRow[] = [];
    const records: RecordRow[] = [];
    let t = beginInstant;
    legs.forEach((kind, i) => {
      const agentId = agents[i] ?? '';
      const legBegin = t;
      let waitBegin = '';
      let waitEnd = '';
      let ackBegin = '';
      let ackEnd = '';
      let legEnd: number;
      if (kind === 'ivr') {
        legEnd = legBegin + randomInt(rng, 10, 120) * 1000;
      } else if (kind === 'queue') {
        legEnd = legBegin + randomInt(rng, 5, 90) * 1000;
        waitBegin = wallOf(legBegin);
        waitEnd = wallOf(legEnd);
      } else {
        const answered = legBegin + randomInt(rng, 3, 20) * 1000;
        legEnd = answered + randomInt(rng, 30, 900) * 1000;
        ackBegin = wallOf(legBegin);
        ackEnd = wallOf(answered);
      }
      t = legEnd;
      const deviceNo = kind === 'agent' ? agentId : kind === 'queue' ? skill : '21';
      const prev = cdr[i - 1];
      const callBegin = wallOf(legBegin);
      const callEnd = wallOf(legEnd);
      cdr.push({
        developer: account.developer,
        account_id: account.accountId,
        cc_id: '1',
        agent_id: agentId,
        call_id: callId,
        caller_no: callerNo,
        callee_no: calleeNo,
        wait_begin: waitBegin,
        wait_end: waitEnd,
        ack_begin: ackBegin,
        ack_end: ackEnd,
        call_begin: callBegin,
        call_end: callEnd,
        device_type: DEVICE_TYPE[kind],
        device_no: deviceNo,
        call_type: callType,
        release_cause: pick(rng, RELEASE_CAUSES),
        call_id_num: i === legs.length - 1 ? '-1' : String(i + 1),
        vdn_id: '1',
        pre_device_type: prev ? prev.device_type : '',
        pre_device_no: prev ? prev.device_no : '',
        callee_no2: calleeNo2,
        media_type: '5',
      });
      if (kind === 'agent' && rng() < 0.8) {
        const ok = rng() < 0.9;
        const day = callBegin.slice(0, 10).replace(/-/g, '');
        records.push({
          developer: account.developer,
          account_id: account.accountId,
          cc_id: '1',
          agent_id: agentId,
          call_id: callId,
          caller_no: callerNo,
          callee_no: calleeNo,
          call_begin: callBegin,
          call_end: callEnd,
          file_name: `Y:/1/0/${day}/${agentId}/${callId}_${i + 1}.V3`,
          task_status: ok ? '1' : '0',
          task_result: ok ? 'success' : 'failed',
          original_file_name: originalFileName(rng, callId, i + 1, agentId),
          vdn_id: '1',
          call_type: callType,
          media_type: '5',
          user_wanted_skill_id: legs.includes('queue') ? skill : '',
          current_skill_id: legs.includes('queue') ? skill : '',
        });
      }
    });
    return { callId, beginNaive, callerNo, calleeNo, calleeNo2, cdr, records };
  }

  /** Every call of a range that passes the filters, in begin-time order; generated lazily. */
  *calls(query: RangeQuery): Generator<Call> {
    const { begin, end, endInclusive } = query;
    for (let hour = begin - (((begin % 3600) + 3600) % 3600); hour <= end; hour += 3600) {
      for (const call of this.callsInHour(query.account, hour)) {
        if (call.beginNaive < begin) continue;
        if (endInclusive ? call.beginNaive > end : call.beginNaive >= end) break;
        if (matchesFilters(call, query.account, query.filters)) yield call;
      }
    }
  }

  count(query: RangeQuery): { call: number; record: number } {
    let call = 0;
    let record = 0;
    for (const c of this.calls(query)) {
      call += c.cdr.length;
      record += c.records.length;
    }
    return { call, record };
  }
}

export function includesCalls(dataType: DataType): boolean {
  return dataType !== 'record';
}

export function includesRecords(dataType: DataType): boolean {
  return dataType !== 'call';
}

const NEEDS_QUOTES = /[",\r\n]/;

/** One RFC 4180 cell: quoted (quotes doubled) when it holds a quote, comma or line break. */
export function csvCell(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One RFC 4180 line ending in `eol` (default `\n`). */
export function csvLine(values: readonly string[], eol = '\n'): string {
  return `${values.map(csvCell).join(',')}${eol}`;
}

/** The cells of a CDR row in column order (with the two extra columns when `extra`). */
export function cdrValues(row: CdrRow, extra: boolean): string[] {
  return cdrColumns(extra).map((c) => row[c as keyof CdrRow]);
}

export function recordValues(row: RecordRow): string[] {
  return RECORD_COLUMNS.map((c) => row[c]);
}

/** GBK bytes of the only non-ASCII characters the simulator writes (a table, not an encoder dependency). */
const GBK: Record<string, [number, number]> = {
  录: [0xc2, 0xbc],
  音: [0xd2, 0xf4],
  匿: [0xc4, 0xe4],
  名: [0xc3, 0xfb],
};

/** Encodes simulator text as GBK: ASCII as is, the characters of the table, `?` for anything else. */
export function encodeGbk(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length * 2);
  let n = 0;
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (code < 0x80) out[n++] = code;
    else {
      const pair = GBK[ch];
      if (pair) {
        out[n++] = pair[0];
        out[n++] = pair[1];
      } else out[n++] = 0x3f;
    }
  }
  return out.subarray(0, n);
}

export function cdrColumns(extra: boolean): readonly string[] {
  return extra ? [...CDR_COLUMNS, ...EXTRA_CDR_COLUMNS] : CDR_COLUMNS;
}

export function cdrLine(row: CdrRow, extra: boolean): string {
  return csvLine(cdrColumns(extra).map((c) => row[c as keyof CdrRow]));
}

export function recordLine(row: RecordRow): string {
  return csvLine(RECORD_COLUMNS.map((c) => row[c]));
}

/** Digits of the filler sequence number: fixed width, so every filler line has the same length. */
export const FILLER_SEQ_DIGITS = 10;

/**
 * Filler CDR line for padded files: a single-row call (`call_id_num` -1) whose call_id is
 * `PAD{tag}{10-digit sequence}`, valid for a parser and recognisable for a test. Returns the UTF-8
 * line with sequence 0 and the byte offset of the sequence digits, so lines can be stamped into a
 * buffer without building strings.
 */
export function fillerTemplate(
  account: Account,
  tag: string,
  beginWall: string,
  extra: boolean,
): { line: Buffer; seqOffset: number } {
  const row: CdrRow = {
    developer: account.developer,
    account_id: account.accountId,
    cc_id: '1',
    agent_id: '1001',
    call_id: '\u0000',
    caller_no: '13800000000',
    callee_no: '4008001000',
    wait_begin: '',
    wait_end: '',
    ack_begin: beginWall,
    ack_end: beginWall,
    call_begin: beginWall,
    call_end: beginWall,
    device_type: '2',
    device_no: '1001',
    call_type: '0',
    release_cause: '0',
    call_id_num: '-1',
    vdn_id: '1',
    pre_device_type: '',
    pre_device_no: '',
    callee_no2: '',
    media_type: '5',
  };
  const [before, after] = cdrLine(row, extra).split('\u0000') as [string, string];
  const head = `${before}PAD${tag}`;
  return {
    line: Buffer.from(`${head}${'0'.repeat(FILLER_SEQ_DIGITS)}${after}`, 'utf8'),
    seqOffset: Buffer.byteLength(head, 'utf8'),
  };
}
