import { DateTime, IANAZone } from 'luxon';

/**
 * Wall-clock times of the tenant's zone, handled as "naive" seconds: the wall fields read as if they
 * were UTC. CC-FS talks in `yyyy-MM-dd HH:mm:ss` wall time, ranges are compared field by field, and the
 * 3-day limit is a difference of wall times, so naive arithmetic is the faithful model; real instants
 * are only needed to know which wall hours exist (DST) and how long a call really lasts.
 */

const WALL = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const DAY = /^(\d{4})(\d{2})(\d{2})$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function validDate(year: number, month: number, day: number): boolean {
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

/** Naive seconds of a `yyyy-MM-dd HH:mm:ss` string, or undefined if it is malformed or not on the calendar. */
export function parseWall(value: string): number | undefined {
  const m = WALL.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (!validDate(year, month, day) || hour > 23 || minute > 59 || second > 59) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
}

/** Whether `yyyyMMdd` is a calendar date. */
export function isValidDay(value: string): boolean {
  const m = DAY.exec(value);
  if (!m) return false;
  const [year, month, day] = m.slice(1).map(Number) as [number, number, number];
  return validDate(year, month, day);
}

/** `yyyy-MM-dd HH:mm:ss` of naive seconds. */
export function formatWall(naiveSeconds: number): string {
  const iso = new Date(naiveSeconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

/** `yyyyMMddHHmmssSSS` of naive milliseconds. */
export function compactWallMs(naiveMs: number): string {
  return new Date(naiveMs).toISOString().replace(/[-:T.Z]/g, '');
}

export function isValidTimeZone(zone: string): boolean {
  return IANAZone.isValidZone(zone);
}

/** Converts between real instants and naive wall time of one IANA zone. */
export class WallClock {
  private readonly zone: IANAZone;

  constructor(readonly timeZone: string) {
    if (!IANAZone.isValidZone(timeZone)) throw new Error(`unknown time zone "${timeZone}"`);
    this.zone = IANAZone.create(timeZone);
  }

  /** Offset from UTC in minutes at an instant. */
  offsetMinutes(epochMs: number): number {
    return this.zone.offset(epochMs);
  }

  /** Naive milliseconds of the wall time at an instant. */
  wallMs(epochMs: number): number {
    return epochMs + this.offsetMinutes(epochMs) * 60_000;
  }

  /**
   * The instant a wall hour starts, or undefined when the hour does not exist (spring forward). A
   * repeated hour (fall back) maps to its first occurrence: rows are identified by wall time, so the
   * hour is generated once.
   */
  hourStart(naiveHourSeconds: number): number | undefined {
    const d = new Date(naiveHourSeconds * 1000);
    const dt = DateTime.fromObject(
      { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours() },
      { zone: this.zone },
    );
    if (!dt.isValid || dt.hour !== d.getUTCHours() || dt.day !== d.getUTCDate()) return undefined;
    return dt.toMillis();
  }
}
