import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_SECONDS, planChunks } from '../../domain/chunking';
import { parseWallTime, previousLocalDay, wallToInstant } from '../../domain/wall-time';
import {
  backfillWindow,
  Catchup,
  CreateScheduleInput,
  daysBetween,
  dstGapDay,
  dueThrough,
  formatDuration,
  lastCompleteDay,
  parseDuration,
  BackfillInput,
} from '../../lib/schedule-service';
import { dayRange, nextDay } from '../../domain/daily';
import { dailyExportId, dayWorkflowId, EXPORT_ID_PATTERN } from '../../workflows/definitions';

/** What a daily run exports for an action scheduled at `scheduledAt`: the day, its chunk plan and its length in hours. */
function dailyPlan(scheduledAt: string, zone: string) {
  const { day } = previousLocalDay(new Date(scheduledAt), zone);
  const { begin, end } = dayRange(day);
  const chunks = planChunks({ begin, end, timeZone: zone, chunkSeconds: MAX_CHUNK_SECONDS });
  const hours = (wallToInstant(parseWallTime(end), zone) - wallToInstant(parseWallTime(begin), zone)) / 3600;
  return { day, chunks: chunks.map((c) => [c.begin, c.end]), hours };
}

describe('day of a scheduled daily run', () => {
  it('exports the previous local day of the scheduled time as one chunk of 24 hours in Asia/Shanghai', () => {
    // 2024-03-09 01:30 in Shanghai is 2024-03-08T17:30Z: the UTC date is the 8th, the local day before is the 8th too.
    expect(dailyPlan('2024-03-08T17:30:00Z', 'Asia/Shanghai')).toEqual({
      day: '2024-03-08',
      chunks: [['2024-03-08 00:00:00', '2024-03-09 00:00:00']],
      hours: 24,
    });
    // 00:10 local on the 9th is still the 8th in UTC: the day is the 8th, not the 7th.
    expect(dailyPlan('2024-03-08T16:10:00Z', 'Asia/Shanghai').day).toBe('2024-03-08');
  });

  it('exports exactly 23 hours for the spring-forward day in America/New_York', () => {
    // The run of 2024-03-11 01:30 EDT (05:30Z) exports 2024-03-10, which has no 02:00-03:00.
    expect(dailyPlan('2024-03-11T05:30:00Z', 'America/New_York')).toEqual({
      day: '2024-03-10',
      chunks: [['2024-03-10 00:00:00', '2024-03-11 00:00:00']],
      hours: 23,
    });
  });

  it('exports exactly 25 hours for the fall-back day, and both runs of a repeated hour name the same day', () => {
    // 01:30 happens twice on 2024-11-03: a schedule at 01:30 fires at 05:30Z (EDT) and 06:30Z (EST) that day.
    const first = dailyPlan('2024-11-03T05:30:00Z', 'America/New_York');
    const second = dailyPlan('2024-11-03T06:30:00Z', 'America/New_York');
    expect(first.day).toBe('2024-11-02');
    expect(second.day).toBe(first.day);
    expect(dailyPlan('2024-11-04T06:30:00Z', 'America/New_York')).toEqual({
      day: '2024-11-03',
      chunks: [['2024-11-03 00:00:00', '2024-11-04 00:00:00']],
      hours: 25,
    });
  });

  it('exports exactly 23 and 25 hours for the DST days of Europe/Berlin', () => {
    expect(dailyPlan('2024-04-01T06:00:00Z', 'Europe/Berlin')).toMatchObject({
      day: '2024-03-31',
      hours: 23,
    });
    expect(dailyPlan('2024-10-28T06:00:00Z', 'Europe/Berlin')).toMatchObject({
      day: '2024-10-27',
      hours: 25,
    });
  });

  it('derives the day from the scheduled time, so a catch-up run days later exports the day it stood for', () => {
    // Taken a week late, the action scheduled for 2024-03-09 still exports 2024-03-08.
    expect(dailyPlan('2024-03-08T17:30:00Z', 'Asia/Shanghai').day).toBe('2024-03-08');
  });

  it('steps days across month, leap-day and year ends on the wall clock', () => {
    expect(dayRange('2024-02-28')).toEqual({ begin: '2024-02-28 00:00:00', end: '2024-02-29 00:00:00' });
    expect(nextDay('2024-02-29')).toBe('2024-03-01');
    expect(nextDay('2023-12-31')).toBe('2024-01-01');
    expect(daysBetween('2024-02-27', '2024-03-02')).toEqual([
      '2024-02-27',
      '2024-02-28',
      '2024-02-29',
      '2024-03-01',
      '2024-03-02',
    ]);
    expect(() => dayRange('2024-3-1')).toThrow(/yyyy-MM-dd/);
  });

  it('names per-day IDs that are valid export IDs and differ for a forced re-export', () => {
    const id = dailyExportId('acc0001', 'call_record', '2024-03-10');
    expect(id).toBe('daily-acc0001-call_record-2024-03-10');
    expect(EXPORT_ID_PATTERN.test(id)).toBe(true);
    const forced = dailyExportId('acc0001', 'call_record', '2024-03-10', '20240311T010203Z');
    expect(forced).not.toBe(id);
    expect(EXPORT_ID_PATTERN.test(forced)).toBe(true);
    expect(dayWorkflowId('acc0001', 'call', '2024-03-10')).toBe('ccfs-day/acc0001/call/2024-03-10');
  });
});

describe('backfill window', () => {
  /** Every action time of a daily schedule at `at` in `zone` whose instant falls in [start, end] (Temporal includes both ends). */
  function actionDays(at: string, zone: string, window: { start: Date; end: Date }): string[] {
    const [hour, minute] = at.split(':').map(Number) as [number, number];
    const days: string[] = [];
    const startDay = DateTime.fromJSDate(window.start, { zone }).minus({ days: 2 });
    for (let d = startDay; d.toJSDate() <= window.end; d = d.plus({ days: 1 })) {
      const t = DateTime.fromObject(
        { year: d.year, month: d.month, day: d.day, hour, minute },
        { zone },
      ).toJSDate();
      if (t >= window.start && t <= window.end) days.push(previousLocalDay(t, zone).day);
    }
    return days;
  }

  it('covers exactly the action times of the requested days, whatever the time of day', () => {
    for (const at of ['00:00', '01:30', '12:00', '23:59']) {
      for (const zone of ['Asia/Shanghai', 'America/New_York', 'UTC']) {
        const w = backfillWindow('2024-03-08', '2024-03-12', zone);
        expect(actionDays(at, zone, w), `${at} ${zone}`).toEqual([
          '2024-03-08',
          '2024-03-09',
          '2024-03-10',
          '2024-03-11',
          '2024-03-12',
        ]);
      }
    }
  });

  it('starts a second before the local midnight after the first day (servers that treat the start as exclusive still run an action at 00:00) and ends a second before the midnight two days after the last', () => {
    expect(backfillWindow('2024-03-08', '2024-03-12', 'America/New_York')).toEqual({
      start: new Date('2024-03-09T04:59:59Z'),
      end: new Date('2024-03-14T03:59:59Z'),
    });
  });

  it('refuses an inverted or oversized range', () => {
    expect(BackfillInput.safeParse({ from: '2024-03-12', to: '2024-03-08' }).success).toBe(false);
    expect(BackfillInput.safeParse({ from: '2020-01-01', to: '2024-01-01' }).success).toBe(false);
    expect(BackfillInput.safeParse({ from: '2024-02-30', to: '2024-03-01' }).success).toBe(false);
    expect(BackfillInput.safeParse({ from: '2024-03-08', to: '2024-03-08', force: true }).success).toBe(true);
  });
});

describe('schedule settings', () => {
  const now = new Date('2024-06-01T00:00:00Z');

  it('finds the day on which a daily time falls into a DST gap, and none where it always exists', () => {
    // The next such day after now (2024-06-01), not one already past.
    expect(dstGapDay('02:30', 'America/New_York', now)).toBe('2025-03-09');
    expect(dstGapDay('02:00', 'Europe/Berlin', now)).toBe('2025-03-30');
    expect(dstGapDay('02:30', 'America/New_York', new Date('2024-03-10T00:00:00Z'))).toBe('2024-03-10');
    expect(dstGapDay('01:30', 'America/New_York', now)).toBeUndefined();
    expect(dstGapDay('03:00', 'America/New_York', now)).toBeUndefined();
    expect(dstGapDay('02:30', 'Asia/Shanghai', now)).toBeUndefined();
  });

  it('refuses a malformed time, zone, catch-up window or tenant name', () => {
    const base = { dataType: 'call', at: '01:30', timeZone: 'Asia/Shanghai' };
    expect(CreateScheduleInput.safeParse(base).success).toBe(true);
    expect(CreateScheduleInput.safeParse({ ...base, at: '24:00' }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, at: '1:30' }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, timeZone: 'Mars/Base' }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, catchup: '5s' }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, catchup: 'week' }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, filters: { accountId: 'a/b' } }).success).toBe(false);
    expect(CreateScheduleInput.safeParse({ ...base, options: { chunkHours: 1 } }).success).toBe(false);
  });

  it('reads catch-up windows in the units people write', () => {
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('90m')).toBe(5_400_000);
    expect(formatDuration(7 * 86_400_000)).toBe('7d');
    expect(formatDuration(36 * 3_600_000)).toBe('36h');
    expect(Catchup.safeParse('10s').success).toBe(true);
    expect(Catchup.safeParse('400d').success).toBe(false);
  });

  it("names the last day that is over and the last day whose run is due in the tenant's zone", () => {
    // 2024-03-10T17:00Z is 2024-03-11 01:00 in Shanghai.
    const t = new Date('2024-03-10T17:00:00Z');
    expect(lastCompleteDay('Asia/Shanghai', t)).toBe('2024-03-10');
    expect(lastCompleteDay('UTC', t)).toBe('2024-03-09');
    expect(dueThrough('00:30', 'Asia/Shanghai', t)).toBe('2024-03-10');
    expect(dueThrough('02:00', 'Asia/Shanghai', t)).toBe('2024-03-09');
  });
});
