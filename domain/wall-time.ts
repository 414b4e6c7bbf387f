import { DateTime, IANAZone } from 'luxon';

/**
 * Wall-clock times in a tenant's zone, as CC-FS speaks them (`yyyy-MM-dd HH:mm:ss`). Pure and
 * deterministic, so workflows may use it.
 */

export const WALL_TIME_FORMAT = 'yyyy-MM-dd HH:mm:ss';
const WALL_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

export class WallTimeError extends Error {
  override readonly name = 'WallTimeError';
}

/** Wall time as seconds since 1970-01-01 00:00:00 of a zone-less calendar. */
export type NaiveSeconds = number;

/** Parses `yyyy-MM-dd HH:mm:ss`, rejecting impossible calendar dates such as 2024-02-30. */
export function parseWallTime(value: string, field = 'time'): NaiveSeconds {
  const m = WALL_TIME.exec(value);
  if (!m) throw new WallTimeError(`${field} "${value}" is not in the form yyyy-MM-dd HH:mm:ss`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== s ||
    y < 1970
  ) {
    throw new WallTimeError(`${field} "${value}" is not a valid calendar date and time`);
  }
  return ms / 1000;
}

export function formatWallTime(seconds: NaiveSeconds): string {
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
}

export function isValidTimeZone(zone: string): boolean {
  return IANAZone.isValidZone(zone);
}

export function assertTimeZone(zone: string): void {
  if (!isValidTimeZone(zone)) throw new WallTimeError(`time zone "${zone}" is not a valid IANA zone name`);
}

/**
 * The instant (epoch seconds) a wall time denotes in a zone. A wall time inside a spring-forward gap
 * moves forward; one in a repeated fall-back hour means its first occurrence.
 */
export function wallToInstant(wall: NaiveSeconds, zone: string): number {
  const iso = new Date(wall * 1000).toISOString().slice(0, 19);
  const dt = DateTime.fromISO(iso, { zone });
  if (!dt.isValid) throw new WallTimeError(`cannot place ${formatWallTime(wall)} in time zone ${zone}`);
  const instant = Math.floor(dt.toSeconds());
  // In a repeated hour the wall time has two instants; take the earlier one, whichever luxon chose.
  for (const shift of [3600, 1800, 7200]) {
    if (instantToWall(instant - shift, zone) === wall) return instant - shift;
  }
  return instant;
}

export function instantToWall(epochSeconds: number, zone: string): NaiveSeconds {
  const dt = DateTime.fromSeconds(epochSeconds, { zone });
  return Date.UTC(dt.year, dt.month - 1, dt.day, dt.hour, dt.minute, dt.second) / 1000;
}

/** `[D 00:00:00, D+1 00:00:00)` for the local day before the one containing `instant`. */
export function previousLocalDay(instant: Date, zone: string): { day: string; begin: string; end: string } {
  const local = DateTime.fromJSDate(instant, { zone }).startOf('day');
  const prev = local.minus({ days: 1 });
  return {
    day: prev.toFormat('yyyy-MM-dd'),
    begin: `${prev.toFormat('yyyy-MM-dd')} 00:00:00`,
    end: `${local.toFormat('yyyy-MM-dd')} 00:00:00`,
  };
}
