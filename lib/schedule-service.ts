import { DateTime, Duration as LuxonDuration, IANAZone } from 'luxon';
import { z } from 'zod';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  WorkflowExecutionAlreadyStartedError,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
} from '@temporalio/client';
import { msToNumber, type StringValue } from '@temporalio/common/lib/time';
import { DataType, QueryFilters } from '../ccfs/protocol';
import { isValidTimeZone, parseWallTime, previousLocalDay, wallToInstant } from '../domain/wall-time';
import { nextDay } from '../domain/daily';
import type { dayExportWorkflow } from '../workflows/daily-export-workflow';
import {
  DAILY_RUN_WORKFLOW_PREFIX,
  daySearchAttributes,
  dayWorkflowId,
  WorkflowType,
  type DailyExportInput,
  type DayExportInput,
  type DayMemo,
} from '../workflows/definitions';
import {
  DataTypeKey,
  DayKey,
  ExportIdKey,
  ExportStateKey,
  KindKey,
  TenantKey,
} from '../workflows/search-attributes';
import type { ExportRecords } from './export-records';
import { ExportOptionsInput, resolveOptions } from './export-input';

/**
 * Daily exports as Temporal Schedules: create, list, describe, pause, resume, trigger, delete and
 * backfill, shared by the API and the CLI. Policies, chosen on purpose:
 *
 * - Calendar spec `HH:MM` in the tenant's zone (`timezone`), so "every morning" follows the tenant's
 *   DST. A time inside a DST gap (e.g. 02:30 in America/New_York) is refused: Temporal silently skips
 *   a calendar time that does not exist, which would lose that day's export. A time in a repeated
 *   (fall-back) hour fires twice; both runs name the same day and the per-day lock skips the second.
 * - Overlap `ALLOW_ALL`: runs for different days are independent and may run side by side (a backfill
 *   of a month does not queue for a month); two runs for the same day cannot both export, because the
 *   day's workflow ID is the lock (workflows/daily-export-workflow.ts). CC-FS load is bounded by the
 *   worker's task-queue rate limit, not by the schedule.
 * - Catch-up window from `--catchup` (default 7 days): after an outage of Temporal or the workers the
 *   schedule runs the actions it missed within that window, each exporting the day it was scheduled
 *   for. Older misses are left for an explicit backfill, so a schedule that was down for months does
 *   not surprise CC-FS with months of queries.
 * - `pauseOnFailure` off: one bad day must not stop the following days; coverage shows the gap.
 * - Pause stops every new run: scheduled ones by Temporal, trigger and backfill by this service
 *   (Temporal itself would still run those on a paused schedule).
 */

export const DAILY_EXPORT_MEMO = 'ccfs-daily-export';
const DEFAULT_CATCHUP = '7d';
/** Temporal's smallest catch-up window. */
const MIN_CATCHUP_MS = 10_000;
const MAX_BACKFILL_DAYS = 366;

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
export const Day = z
  .string()
  .regex(DAY_PATTERN, 'expected yyyy-MM-dd')
  .refine(
    (d) => DateTime.fromISO(d, { zone: 'UTC' }).isValid && d >= '1970-01-01',
    'is not a valid calendar date',
  );

/** `HH:MM` (seconds allowed, for tests that need a run within seconds). */
export const AtTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/, 'expected HH:MM (24-hour)');

/**
 * The durations the CLI and the API accept: a whole number and one unit, `30m`, `12h`, `7d`. Each is
 * also a Temporal duration string (the SDK's `ms` format), so the SDK converts it; the pattern only
 * keeps the accepted forms (and the messages about them) as they were, where `ms` alone would also
 * take `1.5h`, `7 days` or `1y`.
 */
const DURATION = /^\d+(s|m|h|d)$/;

/** `90m`, `36h`, `7d` → milliseconds; `RangeError` for anything else. */
export function parseDuration(value: string): number {
  if (!DURATION.test(value)) throw new RangeError(`"${value}" is not a duration such as 30m, 12h or 7d`);
  return msToNumber(value as StringValue);
}

/** Milliseconds → the largest whole unit of `d`, `h`, `m` (`7d`, `36h`, `90m`), else rounded seconds. */
export function formatDuration(ms: number): string {
  const duration = LuxonDuration.fromMillis(ms);
  for (const unit of ['days', 'hours', 'minutes'] as const) {
    const n = duration.as(unit);
    if (Number.isInteger(n)) return `${n}${unit[0]}`;
  }
  return `${Math.round(duration.as('seconds'))}s`;
}

export const Catchup = z
  .string()
  .regex(DURATION, 'expected a duration such as 30m, 12h or 7d')
  .refine(
    (v) => !DURATION.test(v) || parseDuration(v) >= MIN_CATCHUP_MS,
    "must be at least 10s (Temporal's minimum)",
  )
  .refine((v) => !DURATION.test(v) || parseDuration(v) <= 366 * 86_400_000, 'must be at most 366d');

/** Tenant labels become parts of workflow IDs and directory names. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const ScheduleId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'must be letters, digits, ".", "_" or "-"');

/** Export options a schedule may set: all but the chunk length (a daily export is always one chunk). */
export const ScheduleOptionsInput = ExportOptionsInput.omit({ chunkHours: true });

/**
 * The next day (from `now`'s day to the end of the sixth year after it) on which `at` does not exist in `zone`,
 * or undefined. Temporal skips such a calendar time, so that day's export would silently not run.
 */
export function dstGapDay(at: string, zone: string, now = new Date()): string | undefined {
  const [hour, minute, second = 0] = at.split(':').map(Number) as [number, number, number?];
  const tz = IANAZone.create(zone);
  const year = DateTime.fromJSDate(now, { zone }).year;
  const week = 7 * 86_400_000;
  // From today: the day named is the next one the schedule would miss, not one already past.
  const start = DateTime.fromJSDate(now, { zone }).startOf('day').toMillis();
  const end = DateTime.fromObject({ year: year + 6, month: 1, day: 1 }, { zone }).toMillis();
  // Offsets change a few times a year: find the weeks with a change, then check each of their days.
  for (let t = start; t < end; t += week) {
    if (tz.offset(t) === tz.offset(t + week)) continue;
    for (
      let d = DateTime.fromMillis(t, { zone }).startOf('day');
      d.toMillis() <= t + week;
      d = d.plus({ days: 1 })
    ) {
      const wall = DateTime.fromObject(
        { year: d.year, month: d.month, day: d.day, hour, minute, second },
        { zone },
      );
      if (wall.hour !== hour || wall.minute !== minute) return d.toFormat('yyyy-MM-dd');
    }
  }
  return undefined;
}

export const CreateScheduleInput = z
  .object({
    scheduleId: ScheduleId.optional(),
    dataType: DataType,
    filters: QueryFilters.strict()
      .refine((f) => f.accountId === undefined || SAFE_ID.test(f.accountId), {
        path: ['accountId'],
        message: 'must be letters, digits, ".", "_" or "-" to name a tenant',
      })
      .optional(),
    at: AtTime,
    timeZone: z
      .string()
      .refine(isValidTimeZone, 'must be an IANA time zone such as Asia/Shanghai')
      .optional(),
    catchup: Catchup.optional(),
    options: ScheduleOptionsInput.optional(),
    paused: z.boolean().optional(),
    note: z.string().max(200).optional(),
  })
  .strict();
export type CreateScheduleInput = z.infer<typeof CreateScheduleInput>;

export const BackfillInput = z
  .object({ from: Day, to: Day, force: z.boolean().optional() })
  .strict()
  .refine((v) => !Day.safeParse(v.from).success || !Day.safeParse(v.to).success || v.to >= v.from, {
    path: ['to'],
    message: 'must not be before from',
  })
  .refine(
    (v) =>
      !Day.safeParse(v.from).success ||
      !Day.safeParse(v.to).success ||
      v.to < v.from ||
      daysBetween(v.from, v.to).length <= MAX_BACKFILL_DAYS,
    { path: ['to'], message: `a backfill covers at most ${MAX_BACKFILL_DAYS} days` },
  );
export type BackfillInput = z.infer<typeof BackfillInput>;

export const NoteInput = z.object({ note: z.string().max(200).optional() }).strict();

/** Every day from `from` through `to`, inclusive. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = from; d <= to && out.length <= MAX_BACKFILL_DAYS * 10; d = nextDay(d)) out.push(d);
  return out;
}

const instantOf = (wall: string, zone: string) => new Date(wallToInstant(parseWallTime(wall), zone) * 1000);

/**
 * The span of schedule times whose actions export the days `from`..`to`: the action for day D runs on
 * D+1 at `at`, anywhere in [D+1 00:00, D+2 00:00). Temporal's backfill range includes both ends, so the
 * end stops one second before the midnight that starts the day after `to`'s action day.
 */
export function backfillWindow(from: string, to: string, zone: string): { start: Date; end: Date } {
  // One second early: some servers treat the start as exclusive and would skip an action at exactly
  // midnight (`at` 00:00). The extra second can only hold the previous day's action at 23:59:59,
  // which its day's lock skips when that day is done.
  const start = new Date(instantOf(`${nextDay(from)} 00:00:00`, zone).getTime() - 1000);
  const end = new Date(instantOf(`${nextDay(nextDay(to))} 00:00:00`, zone).getTime() - 1000);
  return { start, end };
}

/** The last local day that is over in `zone` at `now` (yesterday there). */
export function lastCompleteDay(zone: string, now = new Date()): string {
  return previousLocalDay(now, zone).day;
}

/** The last day whose scheduled run is due at `now`: yesterday once today's `at` has passed, else the day before. */
export function dueThrough(at: string, zone: string, now = new Date()): string {
  const local = DateTime.fromJSDate(now, { zone });
  const [h, m, s = 0] = at.split(':').map(Number) as [number, number, number?];
  const passed = local.hour * 3600 + local.minute * 60 + local.second >= h * 3600 + m * 60 + s;
  return local.minus({ days: passed ? 1 : 2 }).toFormat('yyyy-MM-dd');
}

export type ScheduleErrorCode = 'not_found' | 'exists' | 'paused' | 'invalid' | 'not_daily';

/** A refusal the API turns into 404/409/400 and the CLI into a message. */
export class ScheduleError extends Error {
  constructor(
    readonly code: ScheduleErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ScheduleServiceSettings {
  taskQueue: string;
  namespace: string;
  /** Base URL of the Temporal UI, for links. */
  uiUrl: string;
  /** Zone of schedules that name none: TENANT_TIME_ZONE, or the tenant's zone from the tenants file (undefined: no such tenant). */
  defaultTimeZone: string | ((tenant: string) => string | undefined);
  /**
   * The durable record of finished exports (lib/export-records.ts): a backfill skips the days it
   * records as verified or empty even when retention has deleted their day workflows (the lock).
   */
  records?: Pick<ExportRecords, 'dayRuns'>;
  /** How long a backfill waits for each day's run to start before it reports the day as not started (default 120 s). */
  backfillConfirmMs?: number;
}

export interface ScheduleRun {
  scheduledAt: string;
  /** The local day the run exports. */
  day: string;
  workflowId?: string;
  takenAt?: string;
}

export interface ScheduleView {
  scheduleId: string;
  tenant: string;
  dataType: DataType;
  filters: DailyExportInput['filters'];
  timeZone: string;
  at: string;
  catchupWindow: string;
  overlap: string;
  paused: boolean;
  note?: string;
  actionsTaken: number;
  actionsMissedCatchupWindow: number;
  createdAt: string;
  nextRuns: ScheduleRun[];
  recentRuns: ScheduleRun[];
  runningWorkflowIds: string[];
  links: { temporalUi: string };
}

/** What the list shows; read from the schedule's memo, so listing needs no describe per schedule. */
export interface ScheduleSummaryView {
  scheduleId: string;
  tenant?: string;
  dataType?: string;
  timeZone?: string;
  at?: string;
  paused: boolean;
  note?: string;
  nextRun?: ScheduleRun;
  lastRun?: ScheduleRun;
}

interface ScheduleMemo {
  kind: typeof DAILY_EXPORT_MEMO;
  tenant: string;
  dataType: DataType;
  timeZone: string;
  at: string;
  createdBy: string;
}

/**
 * What a backfill did for one day, confirmed against Temporal (not merely asked for):
 * - `started`: a run of the day's workflow started for this backfill (`runId`);
 * - `skipped`: the day is already verified or empty (in the durable record or by its day workflow),
 *   or is being exported right now; `reason` says which, `exportId` names the export;
 * - `not_started`: no run started within the wait (`reason`): run the backfill again.
 * `started` (boolean) is kept for callers of the earlier shape: true exactly for `started`.
 */
export interface BackfillDay {
  day: string;
  dayWorkflowId: string;
  outcome: 'started' | 'skipped' | 'not_started';
  started: boolean;
  reason?: string;
  runId?: string;
  exportId?: string;
  /** Who started a `started` day: the schedule's run, or the backfill itself when the schedule dropped or delayed the day. */
  startedBy?: 'schedule' | 'direct';
}

export interface BackfillResult {
  scheduleId: string;
  from: string;
  to: string;
  /** `schedule`: through Temporal's backfill (already verified days are skipped); `force`: day workflows started directly. */
  mode: 'schedule' | 'force';
  days: BackfillDay[];
  /** Days per outcome. */
  counts: Record<BackfillDay['outcome'], number>;
}

const countOutcomes = (days: BackfillDay[]): BackfillResult['counts'] => ({
  started: days.filter((d) => d.outcome === 'started').length,
  skipped: days.filter((d) => d.outcome === 'skipped').length,
  not_started: days.filter((d) => d.outcome === 'not_started').length,
});

/** Consecutive days as `[first, last]` ranges (one Temporal backfill range each). */
export function dayRanges(days: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const day of [...days].sort()) {
    const last = out.at(-1);
    if (last && nextDay(last[1]) === day) last[1] = day;
    else out.push([day, day]);
  }
  return out;
}

const DEFAULT_BACKFILL_CONFIRM_MS = 120_000;
/** Without a newly started day for this long, the backfill of the days still waiting is asked again. */
const BACKFILL_STALL_MS = 10_000;
/** Between two looks at visibility (plus up to as much again, so concurrent backfills spread out). */
const BACKFILL_POLL_MS = 1_000;

/** gRPC RESOURCE_EXHAUSTED (8), as the SDK's ServiceError carries it or its cause. */
function isResourceExhausted(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === 8) return true;
  }
  return false;
}
/** Days the schedule has not started this long after the backfill are started directly. */
const BACKFILL_DIRECT_AFTER_MS = 30_000;
/** Client and server clocks: a run that started this much before the request still counts as ours. */
const CLOCK_SLACK_MS = 2_000;

const pad = (n: number) => String(n).padStart(2, '0');
const quoteQuery = (v: string) => `'${v.replace(/['"\\]/g, '')}'`;

export function defaultScheduleId(tenant: string, dataType: DataType): string {
  return `ccfs-daily-${tenant}-${dataType}`;
}

/** Schedules of daily exports: shared by the API and the CLI. */
export class ScheduleService {
  constructor(
    readonly client: Client,
    readonly settings: ScheduleServiceSettings,
  ) {}

  uiLink(scheduleId: string): string {
    return `${this.settings.uiUrl}/namespaces/${encodeURIComponent(this.settings.namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
  }

  async create(input: CreateScheduleInput, createdBy: string): Promise<ScheduleView> {
    const tenant = input.filters?.accountId ?? 'default';
    const scheduleId = input.scheduleId ?? defaultScheduleId(tenant, input.dataType);
    const zones = this.settings.defaultTimeZone;
    const timeZone = input.timeZone ?? (typeof zones === 'string' ? zones : zones(tenant));
    if (timeZone === undefined) throw new ScheduleError('invalid', `no tenant "${tenant}" is configured`);
    const gap = dstGapDay(input.at, timeZone);
    if (gap) {
      throw new ScheduleError(
        'invalid',
        `${input.at} does not exist in ${timeZone} on ${gap} (a DST change skips it) and Temporal would skip that day's run; choose a time outside the change`,
      );
    }
    const filters = Object.fromEntries(
      Object.entries(input.filters ?? {}).filter(([, v]) => v !== undefined),
    );
    const args: DailyExportInput = {
      scheduleId,
      tenant,
      dataType: input.dataType,
      filters,
      timeZone,
      options: resolveOptions(input.options),
    };
    const [hour, minute, second = 0] = input.at.split(':').map(Number) as [number, number, number?];
    const at = `${pad(hour)}:${pad(minute)}${second ? `:${pad(second)}` : ''}`;
    const memo: ScheduleMemo = {
      kind: DAILY_EXPORT_MEMO,
      tenant,
      dataType: input.dataType,
      timeZone,
      at,
      createdBy,
    };
    try {
      await this.client.schedule.create({
        scheduleId,
        spec: {
          calendars: [{ hour, minute, second, comment: `daily at ${at} ${timeZone}` }],
          timezone: timeZone,
        },
        action: {
          type: 'startWorkflow',
          workflowType: WorkflowType.daily,
          taskQueue: this.settings.taskQueue,
          // Temporal appends the scheduled time, so every run has its own ID; the day's lock is the day workflow.
          workflowId: `${DAILY_RUN_WORKFLOW_PREFIX}/${scheduleId}`,
          args: [args],
          typedSearchAttributes: [
            { key: TenantKey, value: tenant },
            { key: DataTypeKey, value: input.dataType },
            { key: KindKey, value: 'daily-run' },
          ],
          staticSummary: `daily ${input.dataType} export of ${tenant}: the day before the scheduled time (${timeZone})`,
        },
        policies: {
          overlap: 'ALLOW_ALL',
          catchupWindow: parseDuration(input.catchup ?? DEFAULT_CATCHUP),
          pauseOnFailure: false,
        },
        state: { paused: input.paused ?? false, note: input.note ?? `created by ${createdBy}` },
        memo: memo as unknown as Record<string, unknown>,
      });
    } catch (err) {
      if (err instanceof ScheduleAlreadyRunning) {
        throw new ScheduleError(
          'exists',
          `schedule ${scheduleId} already exists; delete it first or choose another ID`,
        );
      }
      throw err;
    }
    return this.describe(scheduleId);
  }

  async list(): Promise<ScheduleSummaryView[]> {
    const out: ScheduleSummaryView[] = [];
    for await (const s of this.client.schedule.list()) {
      if (s.action?.workflowType !== WorkflowType.daily) continue;
      const memo = s.memo as Partial<ScheduleMemo> | undefined;
      const run = (at: Date | undefined, workflowId?: string): ScheduleRun | undefined =>
        at && memo?.timeZone
          ? { scheduledAt: at.toISOString(), day: previousLocalDay(at, memo.timeZone).day, workflowId }
          : undefined;
      const last = s.info.recentActions.at(-1);
      out.push({
        scheduleId: s.scheduleId,
        tenant: memo?.tenant,
        dataType: memo?.dataType,
        timeZone: memo?.timeZone,
        at: memo?.at,
        paused: s.state.paused,
        note: s.state.note,
        nextRun: run(s.info.nextActionTimes[0]),
        lastRun: run(last?.scheduledAt, last?.action.workflow.workflowId),
      });
    }
    return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
  }

  private async load(
    scheduleId: string,
  ): Promise<{ handle: ScheduleHandle; description: ScheduleDescription; input: DailyExportInput }> {
    const handle = this.client.schedule.getHandle(scheduleId);
    let description: ScheduleDescription;
    try {
      description = await handle.describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError)
        throw new ScheduleError('not_found', `no schedule with ID ${scheduleId}`);
      throw err;
    }
    const input = description.action.args?.[0] as DailyExportInput | undefined;
    if (description.action.workflowType !== WorkflowType.daily || !input) {
      throw new ScheduleError('not_daily', `schedule ${scheduleId} does not run daily exports`);
    }
    return { handle, description, input };
  }

  async describe(scheduleId: string): Promise<ScheduleView> {
    const { description: d, input } = await this.load(scheduleId);
    const cal = d.spec.calendars?.[0];
    const second = cal?.second[0]?.start ?? 0;
    const at = cal
      ? `${pad(cal.hour[0]?.start ?? 0)}:${pad(cal.minute[0]?.start ?? 0)}${second ? `:${pad(second)}` : ''}`
      : '';
    const day = (t: Date) => previousLocalDay(t, input.timeZone).day;
    return {
      scheduleId,
      tenant: input.tenant,
      dataType: input.dataType,
      filters: input.filters,
      timeZone: input.timeZone,
      at,
      catchupWindow: formatDuration(d.policies.catchupWindow),
      overlap: d.policies.overlap ?? 'SKIP',
      paused: d.state.paused,
      note: d.state.note,
      actionsTaken: d.info.numActionsTaken,
      actionsMissedCatchupWindow: d.info.numActionsMissedCatchupWindow,
      createdAt: d.info.createdAt.toISOString(),
      nextRuns: d.info.nextActionTimes
        .slice(0, 3)
        .map((t) => ({ scheduledAt: t.toISOString(), day: day(t) })),
      recentRuns: d.info.recentActions.map((a) => ({
        scheduledAt: a.scheduledAt.toISOString(),
        takenAt: a.takenAt.toISOString(),
        day: day(a.scheduledAt),
        workflowId: a.action.workflow.workflowId,
      })),
      runningWorkflowIds: d.info.runningActions.map((a) => a.workflow.workflowId),
      links: { temporalUi: this.uiLink(scheduleId) },
    };
  }

  async pause(scheduleId: string, note?: string): Promise<ScheduleView> {
    const { handle } = await this.load(scheduleId);
    await handle.pause(note ?? 'paused through ccfs-export');
    return this.describe(scheduleId);
  }

  async resume(scheduleId: string, note?: string): Promise<ScheduleView> {
    const { handle } = await this.load(scheduleId);
    await handle.unpause(note ?? 'resumed through ccfs-export');
    return this.describe(scheduleId);
  }

  async delete(scheduleId: string): Promise<void> {
    const { handle } = await this.load(scheduleId);
    // Running exports are not stopped: a half-exported day would only have to be redone.
    await handle.delete();
  }

  private refuseWhenPaused(scheduleId: string, description: ScheduleDescription, what: string): void {
    if (description.state.paused) {
      throw new ScheduleError(
        'paused',
        `schedule ${scheduleId} is paused${description.state.note ? ` (${description.state.note})` : ''}; resume it to ${what}`,
      );
    }
  }

  /** Runs the schedule's action now: it exports yesterday in the tenant's zone (skipped if already verified). */
  async trigger(
    scheduleId: string,
    now = new Date(),
  ): Promise<{ scheduleId: string; day: string; dayWorkflowId: string }> {
    const { handle, description, input } = await this.load(scheduleId);
    this.refuseWhenPaused(scheduleId, description, 'trigger it');
    await handle.trigger('ALLOW_ALL');
    const day = previousLocalDay(now, input.timeZone).day;
    return { scheduleId, day, dayWorkflowId: dayWorkflowId(input.tenant, input.dataType, day) };
  }

  /**
   * Exports the days `from`..`to` and answers what happened to each (`BackfillDay`). Without force:
   * days the durable record holds as verified or empty are skipped; the others go through Temporal's
   * backfill of the schedule (each run exports the day of its scheduled time; a day verified or
   * running is skipped by its lock), and the answer waits until each day's run exists
   * (`confirmBackfill`). With force, each day's workflow is started directly and may run again even
   * if verified (never while it runs). Throws `ScheduleError` (`not_found`, `paused`, `invalid`).
   */
  async backfill(
    scheduleId: string,
    input: BackfillInput,
    origin: string,
    now = new Date(),
  ): Promise<BackfillResult> {
    const { handle, description, input: action } = await this.load(scheduleId);
    this.refuseWhenPaused(scheduleId, description, 'backfill it');
    const last = lastCompleteDay(action.timeZone, now);
    if (input.to > last) {
      // A day that is not over would be exported partially and then count as verified.
      throw new ScheduleError(
        'invalid',
        `day ${input.to} is not over yet in ${action.timeZone}; the last complete day is ${last}`,
      );
    }
    const days = daysBetween(input.from, input.to);
    const id = (day: string) => dayWorkflowId(action.tenant, action.dataType, day);
    if (!input.force) {
      const out = new Map<string, BackfillDay>();
      // Days the durable record holds as verified or empty are done, whether or not retention has
      // deleted their day workflows (which are the lock Temporal's backfill relies on).
      const recorded = this.settings.records
        ? await this.settings.records.dayRuns({ tenant: action.tenant, dataType: action.dataType })
        : [];
      for (const run of recorded) {
        if (run.status !== 'COMPLETED' || run.day < input.from || run.day > input.to || out.has(run.day))
          continue;
        out.set(run.day, {
          day: run.day,
          dayWorkflowId: id(run.day),
          outcome: 'skipped',
          started: false,
          reason: `already ${run.state ?? 'verified'} (export ${run.exportId}); use --force to export it again`,
          exportId: run.exportId,
        });
      }
      const todo = days.filter((d) => !out.has(d));
      if (todo.length > 0) {
        for (const d of await this.confirmBackfill(handle, action, todo)) out.set(d.day, d);
      }
      const result = days.map((d) => out.get(d)!);
      return {
        scheduleId,
        from: input.from,
        to: input.to,
        mode: 'schedule',
        days: result,
        counts: countOutcomes(result),
      };
    }
    const out: BackfillDay[] = [];
    for (const day of days) {
      const args: DayExportInput = { ...action, day, force: true, origin };
      try {
        await this.client.workflow.start<typeof dayExportWorkflow>(WorkflowType.day, {
          taskQueue: this.settings.taskQueue,
          workflowId: id(day),
          args: [args],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          workflowIdConflictPolicy: 'FAIL',
          typedSearchAttributes: daySearchAttributes(args),
          memo: { timeZone: action.timeZone, scheduleId } satisfies DayMemo,
          staticSummary: `forced re-export of day ${day} of ${action.tenant}/${action.dataType} (${action.timeZone})`,
        });
        out.push({ day, dayWorkflowId: id(day), outcome: 'started', started: true });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        out.push({
          day,
          dayWorkflowId: id(day),
          outcome: 'skipped',
          started: false,
          reason: 'being exported right now',
        });
      }
    }
    return {
      scheduleId,
      from: input.from,
      to: input.to,
      mode: 'force',
      days: out,
      counts: countOutcomes(out),
    };
  }

  /**
   * Asks Temporal to backfill the schedule over `days` and waits until each day's run exists: a run
   * of its day workflow that started after the request (`started`), or the day's workflow already
   * completed or running (`skipped`: the schedule's run finds the lock taken). Some server versions
   * drop part of a backfill (several at once on one schedule, or an action exactly at the window's
   * start): the days still waiting after a stall are asked for once more, then (after a second stall
   * or 30 s) their day workflows are started directly under the same lock; what never starts is
   * reported `not_started` with the reason.
   */
  private async confirmBackfill(
    handle: ScheduleHandle,
    action: DailyExportInput,
    days: string[],
  ): Promise<BackfillDay[]> {
    const id = (day: string) => dayWorkflowId(action.tenant, action.dataType, day);
    const since = Date.now() - CLOCK_SLACK_MS;
    const ask = (pending: string[]) =>
      handle.backfill(
        dayRanges(pending).map(([from, to]) => ({
          ...backfillWindow(from, to, action.timeZone),
          overlap: 'ALLOW_ALL' as const,
        })),
      );
    await ask(days);
    const done = new Map<string, BackfillDay>();
    const startedAt = Date.now();
    const deadline = startedAt + (this.settings.backfillConfirmMs ?? DEFAULT_BACKFILL_CONFIRM_MS);
    let progressAt = Date.now();
    let asked = 1;
    let direct = false;
    for (;;) {
      const pending = days.filter((d) => !done.has(d));
      if (pending.length === 0) break;
      let settled: BackfillDay[] = [];
      try {
        settled = await this.dayRunStates(action, pending, since);
      } catch (err) {
        // Visibility is rate-limited per namespace (10 requests/s by default): several backfills
        // waiting at once may meet the limit; the next poll asks again.
        if (!isResourceExhausted(err)) throw err;
      }
      for (const d of settled) {
        done.set(d.day, d);
        progressAt = Date.now();
      }
      if (days.every((d) => done.has(d)) || Date.now() >= deadline) break;
      const stalled = Date.now() - progressAt >= BACKFILL_STALL_MS;
      if (stalled && asked < 2) {
        await ask(days.filter((d) => !done.has(d)));
        asked++;
        progressAt = Date.now();
      } else if (!direct && (stalled || Date.now() - startedAt >= BACKFILL_DIRECT_AFTER_MS)) {
        // The schedule has dropped or is far behind on these days: start their day workflows the
        // way the schedule's run does (same ID and reuse policy, so the lock is the same); a run the
        // schedule still starts later finds the day taken and is skipped.
        await this.startDays(
          action,
          days.filter((d) => !done.has(d)),
        );
        direct = true;
        progressAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, BACKFILL_POLL_MS + Math.random() * BACKFILL_POLL_MS));
    }
    const waited = Math.round((this.settings.backfillConfirmMs ?? DEFAULT_BACKFILL_CONFIRM_MS) / 1000);
    return days.map(
      (day) =>
        done.get(day) ?? {
          day,
          dayWorkflowId: id(day),
          outcome: 'not_started',
          started: false,
          reason: `no run of ${id(day)} started within ${waited} s although the backfill was asked ${asked} time(s); the schedule took no action for this day — run the backfill again`,
        },
    );
  }

  /** Starts the day workflows of `days` directly, under the lock's policy (`ALLOW_DUPLICATE_FAILED_ONLY`). */
  private async startDays(action: DailyExportInput, days: string[]): Promise<void> {
    for (const day of days) {
      const args: DayExportInput = { ...action, day, origin: `backfill:${action.scheduleId ?? 'schedule'}` };
      try {
        await this.client.workflow.start<typeof dayExportWorkflow>(WorkflowType.day, {
          taskQueue: this.settings.taskQueue,
          workflowId: dayWorkflowId(action.tenant, action.dataType, day),
          args: [args],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
          workflowIdConflictPolicy: 'FAIL',
          typedSearchAttributes: daySearchAttributes(args),
          memo: { timeZone: action.timeZone, scheduleId: action.scheduleId } satisfies DayMemo,
          staticSummary: `day ${day} of ${action.tenant}/${action.dataType} (${action.timeZone}), backfill`,
        });
      } catch (err) {
        // Verified, empty or running: the next poll reports it as skipped.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    }
  }

  /** The days of `pending` whose run is settled for a backfill requested at `since` (see confirmBackfill). */
  private async dayRunStates(
    action: DailyExportInput,
    pending: string[],
    since: number,
  ): Promise<BackfillDay[]> {
    const out: BackfillDay[] = [];
    for (let i = 0; i < pending.length; i += 100) {
      const batch = pending.slice(i, i + 100);
      const query = [
        `WorkflowType = '${WorkflowType.day}'`,
        `${TenantKey.name} = ${quoteQuery(action.tenant)}`,
        `${DataTypeKey.name} = ${quoteQuery(action.dataType)}`,
        `${DayKey.name} IN (${batch.map(quoteQuery).join(', ')})`,
      ].join(' AND ');
      const newest = new Map<
        string,
        {
          started: boolean;
          startTime: number;
          status: string;
          state?: string;
          exportId?: string;
          runId: string;
          direct: boolean;
        }
      >();
      for await (const wf of this.client.workflow.list({ query })) {
        const attr = (key: { name: string }) =>
          wf.typedSearchAttributes.getAll().find((p) => p.key.name === key.name)?.value;
        const theDay = attr(DayKey);
        if (typeof theDay !== 'string') continue;
        // One run that started for this backfill settles the day; otherwise the newest run speaks.
        const started = wf.startTime.getTime() >= since;
        const seen = newest.get(theDay);
        if (seen && (seen.started || (!started && seen.startTime > wf.startTime.getTime()))) continue;
        const state = attr(ExportStateKey);
        const exportId = attr(ExportIdKey);
        newest.set(theDay, {
          started,
          startTime: wf.startTime.getTime(),
          status: wf.status.name,
          state: typeof state === 'string' ? state : undefined,
          exportId: typeof exportId === 'string' ? exportId : undefined,
          runId: wf.runId,
          direct: wf.parentExecution === undefined,
        });
      }
      for (const day of batch) {
        const run = newest.get(day);
        if (!run) continue;
        const base = {
          day,
          dayWorkflowId: dayWorkflowId(action.tenant, action.dataType, day),
          exportId: run.exportId,
        };
        if (run.started)
          out.push({
            ...base,
            outcome: 'started',
            started: true,
            runId: run.runId,
            startedBy: run.direct ? 'direct' : 'schedule',
          });
        else if (run.status === 'RUNNING')
          out.push({ ...base, outcome: 'skipped', started: false, reason: 'being exported right now' });
        else if (run.status === 'COMPLETED')
          out.push({
            ...base,
            outcome: 'skipped',
            started: false,
            reason: `already ${run.state ?? 'verified'}${run.exportId ? ` (export ${run.exportId})` : ''}; use --force to export it again`,
          });
      }
    }
    return out;
  }
}
