import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_CHUNK_SECONDS, planChunks } from '../../domain/chunking';
import { formatWallTime, parseWallTime, previousLocalDay, wallToInstant } from '../../domain/wall-time';

const span = (c: { begin: string; end: string }) => parseWallTime(c.end) - parseWallTime(c.begin);
const elapsed = (c: { begin: string; end: string }, zone: string) =>
  wallToInstant(parseWallTime(c.end), zone) - wallToInstant(parseWallTime(c.begin), zone);

describe('planChunks', () => {
  it('splits nine days into three abutting three-day chunks', () => {
    expect(
      planChunks({ begin: '2024-03-01 00:00:00', end: '2024-03-10 00:00:00', timeZone: 'Asia/Shanghai' }),
    ).toEqual([
      { index: 0, begin: '2024-03-01 00:00:00', end: '2024-03-04 00:00:00' },
      { index: 1, begin: '2024-03-04 00:00:00', end: '2024-03-07 00:00:00' },
      { index: 2, begin: '2024-03-07 00:00:00', end: '2024-03-10 00:00:00' },
    ]);
  });

  it('keeps a chunk across a fall-back change within 72 elapsed hours', () => {
    const chunks = planChunks({
      begin: '2024-10-26 00:00:00',
      end: '2024-11-02 00:00:00',
      timeZone: 'Europe/Berlin',
    });
    expect(chunks[0]).toEqual({ index: 0, begin: '2024-10-26 00:00:00', end: '2024-10-28 23:00:00' });
    for (const c of chunks) expect(elapsed(c, 'Europe/Berlin')).toBeLessThanOrEqual(MAX_CHUNK_SECONDS);
  });

  it('keeps three wall-clock days across a spring-forward change (71 elapsed hours)', () => {
    const [first] = planChunks({
      begin: '2024-03-30 00:00:00',
      end: '2024-04-05 00:00:00',
      timeZone: 'Europe/Berlin',
    });
    expect(first).toEqual({ index: 0, begin: '2024-03-30 00:00:00', end: '2024-04-02 00:00:00' });
    expect(elapsed(first!, 'Europe/Berlin')).toBe(71 * 3600);
  });

  it('rejects an empty or inverted range, a bad date and a chunk length over three days', () => {
    expect(() =>
      planChunks({ begin: '2024-03-01 00:00:00', end: '2024-03-01 00:00:00', timeZone: 'UTC' }),
    ).toThrow(/later than/);
    expect(() =>
      planChunks({ begin: '2024-02-30 00:00:00', end: '2024-03-02 00:00:00', timeZone: 'UTC' }),
    ).toThrow(/from "2024-02-30 00:00:00" is not a valid calendar date/);
    expect(() =>
      planChunks({
        begin: '2024-03-01 00:00:00',
        end: '2024-03-09 00:00:00',
        timeZone: 'UTC',
        chunkSeconds: MAX_CHUNK_SECONDS + 1,
      }),
    ).toThrow(/chunk length/);
  });

  const zones = fc.constantFrom(
    'UTC',
    'Europe/Berlin',
    'America/New_York',
    'Asia/Shanghai',
    'Australia/Lord_Howe',
    'America/Santiago',
  );
  const range = fc
    .record({
      start: fc.integer({
        min: parseWallTime('2015-01-01 00:00:00'),
        max: parseWallTime('2030-01-01 00:00:00'),
      }),
      length: fc.integer({ min: 1, max: 45 * 86400 }),
      chunkSeconds: fc.integer({ min: 3600, max: MAX_CHUNK_SECONDS }),
      zone: zones,
    })
    .map((r) => ({
      begin: formatWallTime(r.start),
      end: formatWallTime(r.start + r.length),
      chunkSeconds: r.chunkSeconds,
      timeZone: r.zone,
    }));

  it('covers the range exactly with abutting chunks no longer than the limit', () => {
    fc.assert(
      fc.property(range, (input) => {
        const chunks = planChunks(input);
        expect(chunks[0]!.begin).toBe(input.begin);
        expect(chunks.at(-1)!.end).toBe(input.end);
        chunks.forEach((c, i) => {
          expect(c.index).toBe(i);
          expect(span(c)).toBeGreaterThan(0);
          expect(span(c)).toBeLessThanOrEqual(input.chunkSeconds);
          // Only a chunk starting inside a repeated fall-back hour may run past its length in
          // elapsed time (by at most that hour); none ever exceeds three days.
          expect(elapsed(c, input.timeZone)).toBeLessThanOrEqual(
            Math.min(input.chunkSeconds + 3600, MAX_CHUNK_SECONDS),
          );
          if (i > 0) expect(c.begin).toBe(chunks[i - 1]!.end);
        });
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  it('advances through a repeated fall-back hour with one-hour chunks', () => {
    const chunks = planChunks({
      begin: '2020-09-17 19:41:54',
      end: '2020-10-25 03:00:00',
      timeZone: 'Europe/Berlin',
      chunkSeconds: 3600,
    });
    expect(chunks.at(-1)!.end).toBe('2020-10-25 03:00:00');
    chunks.forEach((c, i) => i > 0 && expect(c.begin).toBe(chunks[i - 1]!.end));
  });

  it('plans a ten-year backfill as 1,218 chunks', () => {
    expect(
      planChunks({ begin: '2015-01-01 00:00:00', end: '2025-01-01 00:00:00', timeZone: 'Europe/Berlin' }),
    ).toHaveLength(1218);
  });
});

describe('previousLocalDay', () => {
  it('derives yesterday in the tenant zone from the scheduled instant', () => {
    expect(previousLocalDay(new Date('2024-03-10T16:30:00Z'), 'Asia/Shanghai')).toEqual({
      day: '2024-03-10',
      begin: '2024-03-10 00:00:00',
      end: '2024-03-11 00:00:00',
    });
    expect(previousLocalDay(new Date('2024-03-10T01:00:00Z'), 'America/New_York').day).toBe('2024-03-08');
  });
});

describe('parseWallTime', () => {
  it('round-trips every valid wall time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: parseWallTime('2100-01-01 00:00:00') }), (s) => {
        expect(parseWallTime(formatWallTime(s))).toBe(s);
      }),
    );
  });

  it('names the field and the value it rejects', () => {
    expect(() => parseWallTime('2024-13-01 00:00:00', 'from')).toThrow(
      'from "2024-13-01 00:00:00" is not a valid calendar date',
    );
    expect(() => parseWallTime('2024-01-01T00:00:00', 'to')).toThrow(
      'to "2024-01-01T00:00:00" is not in the form yyyy-MM-dd HH:mm:ss',
    );
  });
});
