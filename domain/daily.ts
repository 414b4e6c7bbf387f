import { formatWallTime, parseWallTime, wallToInstant } from './wall-time';

/**
 * The calendar of daily exports: a day is a local day (`yyyy-MM-dd`) of a tenant's zone, exported as
 * the wall-time range `[D 00:00:00, D+1 00:00:00)` (CC-FS speaks wall times, docs/ccfs-protocol.md §3).
 * Pure and deterministic, so the daily workflows, the schedule service and coverage share one
 * definition of a day instead of each deriving it.
 */

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * `[D 00:00:00, D+1 00:00:00)` as wall times (`yyyy-MM-dd HH:mm:ss`); the length in elapsed time
 * (23, 24 or 25 h) follows from the zone. Throws `RangeError` for a day not in the form `yyyy-MM-dd`,
 * and `WallTimeError` for an impossible date (2024-02-30) or one before 1970.
 */
export function dayRange(day: string): { begin: string; end: string } {
  if (!DAY.test(day)) throw new RangeError(`day "${day}" is not in the form yyyy-MM-dd`);
  const begin = `${day} 00:00:00`;
  // Wall-clock arithmetic on a zone-less calendar: the next day's midnight, whatever DST does.
  return { begin, end: formatWallTime(parseWallTime(begin, 'day') + 86_400) };
}

/** The day after `day` (`yyyy-MM-dd` in, `yyyy-MM-dd` out); errors as `dayRange`. */
export function nextDay(day: string): string {
  return dayRange(day).end.slice(0, 10);
}

/**
 * The instants `dayRange(day)` denotes in `timeZone` (an IANA name): the start of the day and the
 * start of the next, as `Date`s. A midnight inside a DST gap moves forward (wall-time.ts). Throws
 * `WallTimeError` for an unknown zone and as `dayRange` for a bad day.
 */
export function dayInstants(day: string, timeZone: string): { begin: Date; end: Date } {
  const { begin, end } = dayRange(day);
  const instant = (wall: string) => new Date(wallToInstant(parseWallTime(wall), timeZone) * 1000);
  return { begin: instant(begin), end: instant(end) };
}
