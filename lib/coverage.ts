import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { DateTime } from 'luxon';
import { nextDay } from '../domain/daily';
import { WorkflowType, type DayMemo } from '../workflows/definitions';
import { DataTypeKey, DayKey, ExportIdKey, ExportStateKey, TenantKey } from '../workflows/search-attributes';
import type { ExportRecords } from './export-records';
import { dueThrough, type ScheduleService, type ScheduleSummaryView } from './schedule-service';

/**
 * Which days of each tenant and data type are exported, from two sources that never disagree on a
 * finished day: Temporal visibility (every run of a `dayExportWorkflow` carries its tenant, data type
 * and day as search attributes, its outcome — `verified`, `empty`, `failed` — in `CcfsExportState`
 * and its export ID and error in the memo) and the durable record of finished exports
 * (lib/export-records.ts), which outlives the namespace's retention. Visibility adds what is running.
 *
 * A day's state is decided over all its runs:
 * - `verified` / `empty`: some run completed (the latest such run names the export). A later failed or
 *   running forced re-export does not undo it: a forced run writes a new directory, the verified
 *   files stay.
 * - `running`: no run completed yet and one is running.
 * - `failed`: every run ended failed, cancelled, terminated or timed out.
 * - `missing`: no run at all, though the day is in the window.
 *
 * "Complete through" is the last day D such that every day of the window up to D is verified or empty:
 * everything before it can be handed on without gaps.
 */

export type CoverageState = 'verified' | 'empty' | 'running' | 'failed' | 'missing';
export const COVERAGE_STATES: readonly CoverageState[] = [
  'verified',
  'empty',
  'running',
  'failed',
  'missing',
];

/** One run of a day workflow as visibility lists it. */
export interface DayRun {
  tenant: string;
  dataType: string;
  day: string;
  workflowId: string;
  runId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, … */
  status: string;
  /** `CcfsExportState` of the day run. */
  state?: string;
  startTime: string;
  exportId?: string;
  error?: string;
  timeZone?: string;
  scheduleId?: string;
  /** On a run read from the durable record (lib/export-records.ts): how many runs of its export finished. */
  finishes?: number;
}

export interface DayCoverage {
  day: string;
  state: CoverageState;
  exportId?: string;
  error?: string;
  runs: number;
  workflowId?: string;
}

export interface CoverageRange {
  from: string;
  to: string;
  state: CoverageState;
  days: number;
}

export interface PairCoverage {
  tenant: string;
  dataType: string;
  timeZone?: string;
  scheduleIds: string[];
  /** The window shown: `from` and `to` inclusive; undefined when nothing is known or due yet. */
  from?: string;
  to?: string;
  /** Last day through which every day of the window is verified or empty; null when the first is not. */
  completeThrough: string | null;
  counts: Record<CoverageState, number>;
  /** The window as runs of days in the same state, in order: the whole picture in a few lines. */
  ranges: CoverageRange[];
  /** Days that need attention (failed and running), with the error and the export to look at. */
  attention: DayCoverage[];
}

function runOutcome(run: DayRun): 'done' | 'running' | 'failed' {
  if (run.status === 'RUNNING') return 'running';
  if (run.status === 'COMPLETED') return 'done';
  return 'failed';
}

/**
 * The runs of a day as visibility and the durable record know them together. A recorded export that
 * visibility also shows closed is described by visibility (its run carries the same outcome); the
 * record adds what retention deleted. The count of runs is the larger of what either has seen.
 */
export function combineRuns(visible: DayRun[], recorded: DayRun[]): { runs: DayRun[]; count: number } {
  const closed = new Set(visible.filter((r) => r.status !== 'RUNNING').map((r) => r.exportId));
  const extra = recorded.filter((r) => !closed.has(r.exportId));
  const finished = recorded.reduce((n, r) => n + (r.finishes ?? 1), 0);
  return { runs: [...visible, ...extra], count: Math.max(visible.length + extra.length, finished) };
}

/** The state of one day from all its runs (see the rules at the top). */
export function dayState(day: string, runs: DayRun[]): DayCoverage {
  if (runs.length === 0) return { day, state: 'missing', runs: 0 };
  const latest = (xs: DayRun[]) => [...xs].sort((a, b) => a.startTime.localeCompare(b.startTime)).at(-1);
  const done = latest(runs.filter((r) => runOutcome(r) === 'done'));
  if (done) {
    const state: CoverageState = done.state === 'empty' ? 'empty' : 'verified';
    return { day, state, exportId: done.exportId, runs: runs.length, workflowId: done.workflowId };
  }
  const running = latest(runs.filter((r) => runOutcome(r) === 'running'));
  if (running)
    return {
      day,
      state: 'running',
      exportId: running.exportId,
      runs: runs.length,
      workflowId: running.workflowId,
    };
  const failed = latest(runs)!;
  return {
    day,
    state: 'failed',
    exportId: failed.exportId,
    error: failed.error ?? `day workflow ${failed.status.toLowerCase()}`,
    runs: runs.length,
    workflowId: failed.workflowId,
  };
}

export interface SummariseInput {
  tenant: string;
  dataType: string;
  runs: DayRun[];
  /** Inclusive window; days outside it are ignored. */
  from?: string;
  to?: string;
  timeZone?: string;
  scheduleIds?: string[];
  /** Runs read from the durable record (finished exports whose workflows may be gone). */
  recorded?: DayRun[];
}

/** Coverage of one tenant and data type over a window of days. */
export function summarise(input: SummariseInput): PairCoverage {
  const counts = Object.fromEntries(COVERAGE_STATES.map((s) => [s, 0])) as Record<CoverageState, number>;
  const base = {
    tenant: input.tenant,
    dataType: input.dataType,
    timeZone: input.timeZone,
    scheduleIds: input.scheduleIds ?? [],
  };
  const recorded = input.recorded ?? [];
  const days = [...input.runs, ...recorded].map((r) => r.day).sort();
  const from = input.from ?? days[0];
  const to = input.to ?? days.at(-1);
  if (!from || !to || to < from)
    return { ...base, from, to, completeThrough: null, counts, ranges: [], attention: [] };

  const byDay = new Map<string, DayRun[]>();
  for (const run of input.runs) byDay.set(run.day, [...(byDay.get(run.day) ?? []), run]);
  const recordedByDay = new Map<string, DayRun[]>();
  for (const run of recorded) recordedByDay.set(run.day, [...(recordedByDay.get(run.day) ?? []), run]);
  const ranges: CoverageRange[] = [];
  const attention: DayCoverage[] = [];
  let completeThrough: string | null = null;
  let gapSeen = false;
  for (let day = from; day <= to; day = nextDay(day)) {
    const { runs, count } = combineRuns(byDay.get(day) ?? [], recordedByDay.get(day) ?? []);
    const coverage = { ...dayState(day, runs), runs: count };
    counts[coverage.state]++;
    const good = coverage.state === 'verified' || coverage.state === 'empty';
    if (!good) gapSeen = true;
    else if (!gapSeen) completeThrough = day;
    if (coverage.state === 'failed' || coverage.state === 'running') attention.push(coverage);
    const last = ranges.at(-1);
    if (last && last.state === coverage.state) {
      last.to = day;
      last.days++;
    } else {
      ranges.push({ from: day, to: day, state: coverage.state, days: 1 });
    }
  }
  return { ...base, from, to, completeThrough, counts, ranges, attention };
}

export interface CoverageQuery {
  tenant?: string;
  dataType?: string;
  /** Inclusive window of days; by default from the first day ever run to the last day due. */
  from?: string;
  to?: string;
}

const quote = (v: string) => `"${v.replace(/["\\]/g, '')}"`;

function toRun(wf: WorkflowExecutionInfo): DayRun | undefined {
  const attr = (name: string) => wf.typedSearchAttributes.getAll().find((p) => p.key.name === name)?.value;
  const tenant = attr(TenantKey.name);
  const dataType = attr(DataTypeKey.name);
  const day = attr(DayKey.name);
  if (typeof tenant !== 'string' || typeof dataType !== 'string' || typeof day !== 'string') return undefined;
  const memo = (wf.memo ?? {}) as Partial<DayMemo>;
  const exportId = attr(ExportIdKey.name);
  const state = attr(ExportStateKey.name);
  return {
    tenant,
    dataType,
    day,
    workflowId: wf.workflowId,
    runId: wf.runId,
    status: wf.status.name,
    state: typeof state === 'string' ? state : undefined,
    startTime: wf.startTime.toISOString(),
    exportId: typeof exportId === 'string' ? exportId : memo.exportId,
    error: memo.error,
    timeZone: memo.timeZone,
    scheduleId: memo.scheduleId,
  };
}

/** Every run of a day workflow matching the query, from Temporal visibility. */
export async function listDayRuns(client: Client, query: CoverageQuery): Promise<DayRun[]> {
  const clauses = [`WorkflowType = '${WorkflowType.day}'`];
  if (query.tenant) clauses.push(`CcfsTenant = ${quote(query.tenant)}`);
  if (query.dataType) clauses.push(`CcfsDataType = ${quote(query.dataType)}`);
  // The window is applied exactly below; here only a generous bound on the range so that a query
  // for one month does not read years of runs (any zone is within ±14 h of UTC).
  if (query.from)
    clauses.push(
      `CcfsRangeEnd > ${quote(DateTime.fromISO(query.from, { zone: 'UTC' }).minus({ days: 1 }).toISO()!)}`,
    );
  if (query.to)
    clauses.push(
      `CcfsRangeBegin < ${quote(DateTime.fromISO(query.to, { zone: 'UTC' }).plus({ days: 2 }).toISO()!)}`,
    );
  const runs: DayRun[] = [];
  for await (const wf of client.workflow.list({ query: clauses.join(' AND ') })) {
    const run = toRun(wf);
    if (run) runs.push(run);
  }
  return runs;
}

/** The first day a schedule is due to export: the day before its first run after creation. */
function firstScheduledDay(
  schedule: { at?: string; timeZone?: string },
  createdAt: Date | undefined,
): string | undefined {
  if (!schedule.at || !schedule.timeZone || !createdAt) return undefined;
  // dueThrough at (creation + 1 day) is the day the first run after creation exports, or the day before
  // it when that run is not due yet by then; +1 day later is always past the first run.
  return dueThrough(schedule.at, schedule.timeZone, new Date(createdAt.getTime() + 86_400_000));
}

/**
 * Coverage per tenant and data type: every pair that has a daily schedule or any day run. The window
 * ends by default with the last day whose scheduled run is due (so a day whose run has not come yet is
 * not called missing), or with the last day run for pairs without a schedule.
 */
export async function loadCoverage(
  client: Client,
  schedules: Pick<ScheduleService, 'list' | 'describe'>,
  query: CoverageQuery,
  now = new Date(),
  records?: Pick<ExportRecords, 'dayRuns'>,
): Promise<PairCoverage[]> {
  const runs = await listDayRuns(client, query);
  const inWindow = (r: DayRun) => (!query.from || r.day >= query.from) && (!query.to || r.day <= query.to);
  const recorded = records
    ? (await records.dayRuns({ tenant: query.tenant, dataType: query.dataType })).filter(inWindow)
    : [];
  const list = (await schedules.list()).filter(
    (s): s is ScheduleSummaryView & { tenant: string; dataType: string } =>
      s.tenant !== undefined &&
      s.dataType !== undefined &&
      (!query.tenant || s.tenant === query.tenant) &&
      (!query.dataType || s.dataType === query.dataType),
  );
  const key = (tenant: string, dataType: string) => `${tenant}\u0000${dataType}`;
  const pairs = new Map<
    string,
    { tenant: string; dataType: string; runs: DayRun[]; recorded: DayRun[]; schedules: typeof list }
  >();
  const pair = (tenant: string, dataType: string) => {
    const k = key(tenant, dataType);
    let p = pairs.get(k);
    if (!p) pairs.set(k, (p = { tenant, dataType, runs: [], recorded: [], schedules: [] }));
    return p;
  };
  for (const run of runs) pair(run.tenant, run.dataType).runs.push(run);
  for (const run of recorded) pair(run.tenant, run.dataType).recorded.push(run);
  for (const s of list) pair(s.tenant, s.dataType).schedules.push(s);

  const out: PairCoverage[] = [];
  for (const p of [...pairs.values()].sort((a, b) =>
    key(a.tenant, a.dataType).localeCompare(key(b.tenant, b.dataType)),
  )) {
    const timeZone = p.schedules[0]?.timeZone ?? [...p.runs, ...p.recorded].find((r) => r.timeZone)?.timeZone;
    let to = query.to;
    let from = query.from;
    if (!to) {
      const due = p.schedules
        .filter((s) => s.at && s.timeZone)
        .map((s) => dueThrough(s.at!, s.timeZone!, now));
      to =
        due.sort().at(-1) ??
        [...p.runs, ...p.recorded]
          .map((r) => r.day)
          .sort()
          .at(-1);
    }
    if (!from) {
      const starts: string[] = [...p.runs, ...p.recorded].map((r) => r.day);
      for (const s of p.schedules) {
        const createdAt = (await schedules.describe(s.scheduleId).catch(() => undefined))?.createdAt;
        const first = firstScheduledDay(s, createdAt ? new Date(createdAt) : undefined);
        if (first) starts.push(first);
      }
      from = starts.sort()[0];
    }
    out.push(
      summarise({
        tenant: p.tenant,
        dataType: p.dataType,
        runs: p.runs,
        recorded: p.recorded,
        from,
        to,
        timeZone,
        scheduleIds: p.schedules.map((s) => s.scheduleId),
      }),
    );
  }
  return out;
}
