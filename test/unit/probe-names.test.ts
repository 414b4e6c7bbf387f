import { describe, expect, it } from 'vitest';
import { callbackMatches, candidateFileNames } from '../../workflows/chunk-workflow';

/** The documented bill file names a chunk probes for (docs/ccfs-protocol.md §4). */
describe('candidateFileNames', () => {
  const id = '9239CB50-A838-4BB0-AB50-3441BF089446';
  const hex = '9239cb50a8384bb0ab503441bf089446';

  it('names the day of the query in the tenant zone and in UTC, and the day after each, without duplicates', () => {
    // 2024-03-01 20:00 UTC is 2024-03-02 04:00 in Shanghai.
    expect(
      candidateFileNames({ responseId: id, requestedAt: '2024-03-01T20:00:00.000Z' }, 'Asia/Shanghai'),
    ).toEqual([`20240302_${hex}.zip`, `20240301_${hex}.zip`, `20240303_${hex}.zip`]);
    expect(candidateFileNames({ responseId: hex, requestedAt: '2024-03-01T10:00:00.000Z' }, 'UTC')).toEqual([
      `20240301_${hex}.zip`,
      `20240302_${hex}.zip`,
    ]);
  });

  it('crosses month and year ends', () => {
    expect(
      candidateFileNames({ responseId: hex, requestedAt: '2024-12-31T23:59:59.000Z' }, 'America/New_York'),
    ).toEqual([`20241231_${hex}.zip`, `20250101_${hex}.zip`]);
  });

  it('gives no name for a responseId that cannot make a valid file name', () => {
    expect(
      candidateFileNames({ responseId: 'not-an-id', requestedAt: '2024-03-01T10:00:00.000Z' }, 'UTC'),
    ).toEqual([]);
    expect(candidateFileNames({ responseId: hex, requestedAt: 'yesterday' }, 'UTC')).toEqual([]);
  });

  it('produces names a callback for the same responseId would match', () => {
    for (const name of candidateFileNames(
      { responseId: id, requestedAt: '2024-03-01T10:00:00.000Z' },
      'Asia/Shanghai',
    )) {
      expect(callbackMatches({ responseId: id, billFileName: name, receivedAt: '' }, id)).toBe(true);
      expect(
        callbackMatches(
          { responseId: id, billFileName: name.toUpperCase().replace('.ZIP', '.zip'), receivedAt: '' },
          hex,
        ),
      ).toBe(true);
    }
    expect(
      callbackMatches({ responseId: id, billFileName: `20240301_${'0'.repeat(32)}.zip`, receivedAt: '' }, id),
    ).toBe(false);
  });
});
