import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatWallTime, parseWallTime } from '../../domain/wall-time';
import { buildExportRequest, describeIssues, StartExportInput } from '../../lib/export-input';
import { EXPORT_ID_PATTERN } from '../../workflows/definitions';

/** Property tests of what people type: dates, ranges, filters, zones, IDs. */

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysIn = (y: number, m: number) =>
  [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;

/** Independent oracle of calendar validity (the product accepts 1970 onwards). */
const calendarValid = (y: number, mo: number, d: number, h: number, mi: number, s: number) =>
  y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(y, mo) && h <= 23 && mi <= 59 && s <= 59;

/** Any six numbers in the field widths of `yyyy-MM-dd HH:mm:ss`, valid or not. */
const fieldsAnyValue = fc.tuple(
  fc.integer({ min: 0, max: 9999 }),
  fc.nat(99),
  fc.nat(99),
  fc.nat(99),
  fc.nat(99),
  fc.nat(99),
);
const format = ([y, mo, d, h, mi, s]: number[]) =>
  `${pad(y!, 4)}-${pad(mo!)}-${pad(d!)} ${pad(h!)}:${pad(mi!)}:${pad(s!)}`;

/** Valid wall times from 1970 to 2100. */
const validWall = fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) / 1000 }).map((sec) => formatWallTime(sec));

const base = { dataType: 'call_record' as const };
const issuesOf = (input: unknown) => {
  const r = StartExportInput.safeParse(input);
  return r.success ? [] : describeIssues(r.error);
};

describe('wall time parsing', () => {
  it('accepts exactly the calendar-valid times, by an independent oracle', () => {
    fc.assert(
      fc.property(fieldsAnyValue, (fields) => {
        const text = format(fields);
        const [y, mo, d, h, mi, s] = fields;
        let ok: boolean;
        try {
          parseWallTime(text);
          ok = true;
        } catch {
          ok = false;
        }
        expect(ok, text).toBe(calendarValid(y, mo, d, h, mi, s));
      }),
      { numRuns: 5000 },
    );
  });

  it('round-trips every valid time through seconds and back', () => {
    fc.assert(
      fc.property(validWall, (text) => {
        expect(formatWallTime(parseWallTime(text))).toBe(text);
      }),
    );
  });

  it('orders times as their text orders (so "begin before end" means what people read)', () => {
    fc.assert(
      fc.property(validWall, validWall, (a, b) => {
        expect(Math.sign(parseWallTime(a) - parseWallTime(b))).toBe(Math.sign(a.localeCompare(b)));
      }),
    );
  });

  it('rejects anything that is not in the form yyyy-MM-dd HH:mm:ss, without throwing anything but its own error', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        fc.pre(!/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(text));
        expect(() => parseWallTime(text)).toThrow(/is not in the form yyyy-MM-dd HH:mm:ss/);
      }),
    );
  });
});

describe('StartExportInput', () => {
  it('accepts a range iff both ends are calendar-valid and from is before to', () => {
    fc.assert(
      fc.property(fieldsAnyValue, fieldsAnyValue, (f, t) => {
        const from = format(f);
        const to = format(t);
        const fromOk = calendarValid(...f);
        const toOk = calendarValid(...t);
        const issues = issuesOf({ ...base, from, to });
        expect(issues.some((i) => i.path === 'from')).toBe(!fromOk);
        if (fromOk && toOk) expect(issues.length === 0).toBe(from < to);
        if (!toOk)
          expect(issues.some((i) => i.path === 'to' && /not a valid calendar date/.test(i.message))).toBe(
            true,
          );
      }),
      { numRuns: 3000 },
    );
  });

  it('names to when it is not after from, quoting both', () => {
    fc.assert(
      fc.property(validWall, validWall, (a, b) => {
        const [from, to] = a >= b ? [a, b] : [b, a];
        expect(issuesOf({ ...base, from, to })).toEqual([
          { path: 'to', message: `to (${to}) must be later than from (${from})` },
        ]);
      }),
    );
  });

  it('never throws, whatever JSON it is given, and names a field for every issue', () => {
    const fields = ['exportId', 'from', 'to', 'dataType', 'timeZone', 'filters', 'options'];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.dictionary(fc.constantFrom(...fields, 'other', '__proto__', 'constructor'), fc.jsonValue()),
          fc.record({
            from: fc.oneof(validWall, fc.jsonValue()),
            to: fc.oneof(validWall, fc.jsonValue()),
            dataType: fc.jsonValue(),
          }),
        ),
        (input) => {
          const r = StartExportInput.safeParse(input);
          if (!r.success)
            for (const i of describeIssues(r.error)) expect(i.message.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('accepts each filter up to its documented length and not one character more', () => {
    const limits = {
      accountId: 20,
      agentId: 20,
      callId: 25,
      callerNo: 25,
      calleeNo: 25,
      calleeNo2: 25,
    } as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...(Object.keys(limits) as Array<keyof typeof limits>)),
        fc.integer({ min: 0, max: 40 }),
        (key, length) => {
          const issues = issuesOf({
            ...base,
            from: '2024-03-01 00:00:00',
            to: '2024-03-02 00:00:00',
            filters: { [key]: 'x'.repeat(length) },
          });
          const ok = length >= 1 && length <= limits[key];
          expect(issues.map((i) => i.path)).toEqual(ok ? [] : [`filters.${key}`]);
        },
      ),
    );
  });

  it('accepts every IANA zone the runtime knows and rejects made-up ones', () => {
    for (const zone of Intl.supportedValuesOf('timeZone')) {
      expect(
        issuesOf({ ...base, from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00', timeZone: zone }),
        zone,
      ).toEqual([]);
    }
    for (const zone of ['Mars/Olympus', 'Asia/Shanghai ', '../../etc/passwd', 'Europe/', '']) {
      expect(
        issuesOf({ ...base, from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00', timeZone: zone }).map(
          (i) => i.path,
        ),
        zone,
      ).toEqual(['timeZone']);
    }
  });

  it('builds requests whose export ID is always a safe directory and workflow name', () => {
    fc.assert(
      fc.property(
        validWall,
        fc.constantFrom('call', 'record', 'call_record'),
        fc.option(fc.string({ maxLength: 120 }), { nil: undefined }),
        (from, dataType, exportId) => {
          const to = formatWallTime(parseWallTime(from) + 3600);
          const parsed = StartExportInput.safeParse({ from, to, dataType, exportId });
          if (!parsed.success) {
            expect(exportId).toBeDefined();
            expect(describeIssues(parsed.error).map((i) => i.path)).toEqual(['exportId']);
            return;
          }
          const request = buildExportRequest(parsed.data, { timeZone: 'UTC', origin: 'test' });
          expect(request.exportId).toMatch(EXPORT_ID_PATTERN);
          expect(request.exportId).not.toMatch(/\.\./);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
