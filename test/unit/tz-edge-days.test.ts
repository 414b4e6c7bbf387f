import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_SECONDS, planChunks } from '../../domain/chunking';
import { parseWallTime, previousLocalDay, wallToInstant } from '../../domain/wall-time';
import { dstGapDay } from '../../lib/schedule-service';
import { dayRange } from '../../domain/daily';

/**
 * Days whose midnight does not exist or happens twice (issue 16): the zones where "00:00" itself is the
 * moment clocks change. Every expectation below is an instant worked out by hand from the zone's rules.
 */

const instant = (wall: string, zone: string) =>
  new Date(wallToInstant(parseWallTime(wall), zone) * 1000).toISOString();

function elapsedHours(day: string, zone: string): number {
  const { begin, end } = dayRange(day);
  return (wallToInstant(parseWallTime(end), zone) - wallToInstant(parseWallTime(begin), zone)) / 3600;
}

/** The chunks of a range must abut in elapsed time too: each end instant is the next begin instant. */
function expectAbutting(chunks: Array<{ begin: string; end: string }>, zone: string): void {
  for (let i = 1; i < chunks.length; i++)
    expect(instant(chunks[i]!.begin, zone)).toBe(instant(chunks[i - 1]!.end, zone));
}

describe('America/Santiago on 2024-09-08, a day whose midnight does not exist', () => {
  const zone = 'America/Santiago';

  it('starts the day at 01:00 -03, the instant its missing midnight moves forward to, and lasts 23 hours', () => {
    // 2024-09-08 00:00 -04 never happens: at 04:00Z the clocks jump to 01:00 -03.
    expect(instant('2024-09-08 00:00:00', zone)).toBe('2024-09-08T04:00:00.000Z');
    expect(instant('2024-09-09 00:00:00', zone)).toBe('2024-09-09T03:00:00.000Z');
    expect(elapsedHours('2024-09-08', zone)).toBe(23);
  });

  it('leaves no second between the day before and the gap day', () => {
    expect(instant(dayRange('2024-09-07').end, zone)).toBe(instant(dayRange('2024-09-08').begin, zone));
    expect(elapsedHours('2024-09-07', zone)).toBe(24);
  });

  it('plans abutting chunks through the gap, daily and three-daily', () => {
    const daily = planChunks({
      begin: '2024-09-06 00:00:00',
      end: '2024-09-11 00:00:00',
      timeZone: zone,
      chunkSeconds: 86_400,
    });
    expect(daily.map((c) => c.begin.slice(0, 10))).toEqual([
      '2024-09-06',
      '2024-09-07',
      '2024-09-08',
      '2024-09-09',
      '2024-09-10',
    ]);
    expectAbutting(daily, zone);
    const threeDays = planChunks({
      begin: '2024-09-01 00:00:00',
      end: '2024-09-15 00:00:00',
      timeZone: zone,
      chunkSeconds: MAX_CHUNK_SECONDS,
    });
    expectAbutting(threeDays, zone);
    expect(threeDays.at(-1)!.end).toBe('2024-09-15 00:00:00');
  });

  it('derives the gap day for the run after it and the day before for a run on it', () => {
    // 00:30 -03 on the 9th (03:30Z): the previous local day is the gap day itself.
    expect(previousLocalDay(new Date('2024-09-09T03:30:00Z'), zone)).toEqual({
      day: '2024-09-08',
      begin: '2024-09-08 00:00:00',
      end: '2024-09-09 00:00:00',
    });
    // 01:30 -03 on the 8th, the first hour that exists that day: the day before.
    expect(previousLocalDay(new Date('2024-09-08T04:30:00Z'), zone).day).toBe('2024-09-07');
  });

  it('warns that a schedule at 00:30 would skip 2024-09-08', () => {
    expect(dstGapDay('00:30', zone, new Date('2024-06-15T00:00:00Z'))).toBe('2024-09-08');
    expect(dstGapDay('01:30', zone, new Date('2024-06-15T00:00:00Z'))).toBeUndefined();
  });
});

describe('America/Havana on 2024-11-03, a day whose midnight happens twice', () => {
  const zone = 'America/Havana';

  it('starts the day at the first midnight and lasts 25 hours, so the repeated hour belongs to it', () => {
    // 01:00 -04 (05:00Z) falls back to 00:00 -05: midnight is 04:00Z and again 05:00Z.
    expect(instant('2024-11-03 00:00:00', zone)).toBe('2024-11-03T04:00:00.000Z');
    expect(instant('2024-11-04 00:00:00', zone)).toBe('2024-11-04T05:00:00.000Z');
    expect(elapsedHours('2024-11-03', zone)).toBe(25);
    expect(elapsedHours('2024-11-02', zone)).toBe(24);
  });

  it('leaves no second out and counts none twice between the day before and the repeated-midnight day', () => {
    expect(instant(dayRange('2024-11-02').end, zone)).toBe(instant(dayRange('2024-11-03').begin, zone));
    expect(instant(dayRange('2024-11-03').end, zone)).toBe(instant(dayRange('2024-11-04').begin, zone));
  });

  it('keeps daily chunks within 24 elapsed hours through the long day, abutting', () => {
    const chunks = planChunks({
      begin: '2024-11-01 00:00:00',
      end: '2024-11-06 00:00:00',
      timeZone: zone,
      chunkSeconds: 86_400,
    });
    expectAbutting(chunks, zone);
    for (const c of chunks) {
      expect(
        wallToInstant(parseWallTime(c.end), zone) - wallToInstant(parseWallTime(c.begin), zone),
      ).toBeLessThanOrEqual(86_400);
    }
    expect(chunks.at(-1)!.end).toBe('2024-11-06 00:00:00');
    // A three-day chunk holds the whole 25-hour day.
    const threeDays = planChunks({
      begin: '2024-11-02 00:00:00',
      end: '2024-11-05 00:00:00',
      timeZone: zone,
      chunkSeconds: MAX_CHUNK_SECONDS,
    });
    expectAbutting(threeDays, zone);
  });

  it('derives the same day for both runs of a schedule at 00:30, and the long day for the run after it', () => {
    // 00:30 happens at 04:30Z and again at 05:30Z on the 3rd; both runs export the 2nd (the per-day lock
    // makes the second a no-op).
    expect(previousLocalDay(new Date('2024-11-03T04:30:00Z'), zone).day).toBe('2024-11-02');
    expect(previousLocalDay(new Date('2024-11-03T05:30:00Z'), zone).day).toBe('2024-11-02');
    expect(previousLocalDay(new Date('2024-11-04T05:30:00Z'), zone)).toEqual({
      day: '2024-11-03',
      begin: '2024-11-03 00:00:00',
      end: '2024-11-04 00:00:00',
    });
  });
});
