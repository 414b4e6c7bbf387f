import { describe, expect, it } from 'vitest';
import {
  ProgressReporter,
  progressLine,
  progressSummary,
  STUCK_AFTER_MS,
  waitingSummary,
  type ProgressStatus,
} from '../../cli/progress';

const at = Date.parse('2024-05-01T12:40:00Z');

function status(overrides: Partial<ProgressStatus> = {}): ProgressStatus {
  return {
    state: 'running',
    counts: { pending: 0, running: 1, verified: 9, empty: 0, failed: 0, cancelled: 0 },
    totals: { chunks: 10, bytes: 12_300, rows: 4_321 },
    waitingFor: [
      {
        index: 17,
        begin: '2024-03-01 00:00:00',
        end: '2024-03-04 00:00:00',
        startedAt: '2024-05-01T12:03:00.000Z',
      },
    ],
    ...overrides,
  };
}

describe('what the progress line says an export waits for', () => {
  it('names the chunk that holds the export up, and since when it runs, instead of an ETA', () => {
    expect(progressLine(status(), 5, { at })).toBe(
      '9/10 chunks (90%), 1 running, 4,321 rows, 12.3 KB, waiting for 1 chunk: #17 2024-03-01 → 03-04 running since 12:03 UTC (37m00s)',
    );
  });

  it('says what the chunk itself waits for when it reported its phase', () => {
    const s = status();
    s.waitingFor![0]!.progress = {
      index: 17,
      phase: 'waiting-for-callback',
      since: '2024-05-01T12:05:00.000Z',
      requests: 2,
      maxRequests: 4,
      responseId: 'a1b2',
    };
    expect(waitingSummary(s, at)).toBe(
      'waiting for 1 chunk: #17 2024-03-01 → 03-04 waiting for the CC-FS callback for responseId a1b2 since 12:05 UTC (35m00s, request 2 of 4)',
    );
  });

  it('counts the other running chunks', () => {
    const s = status({ counts: { pending: 0, running: 3, verified: 7, empty: 0, failed: 0, cancelled: 0 } });
    expect(waitingSummary(s, at)).toMatch(/^waiting for 3 chunks: #17 .*; 2 more running$/);
  });

  it('keeps the ETA while no chunk has run long, when the export can start others, and once it has ended', () => {
    expect(
      progressLine(status(), 5, { at: Date.parse('2024-05-01T12:03:00Z') + STUCK_AFTER_MS - 1 }),
    ).toMatch(/, ETA 5s$/);
    expect(progressLine(status({ waitingFor: undefined }), 5, { at })).toMatch(/, ETA 5s$/);
    expect(progressLine(status({ state: 'completed' }), 0, { at })).toMatch(/, completed$/);
  });

  it('prints a plain line when a chunk starts holding the export up, and not again on every poll', () => {
    const lines: string[] = [];
    const reporter = new ProgressReporter({ tty: false, status: () => {}, err: (l) => lines.push(l) });
    const started = Date.parse('2024-05-01T12:03:00Z');
    reporter.update(status(), started + 1000);
    reporter.update(status(), started + 2000);
    reporter.update(status(), started + STUCK_AFTER_MS + 1000);
    reporter.update(status(), started + STUCK_AFTER_MS + 2000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain('waiting for 1 chunk: #17 2024-03-01 → 03-04 running since 12:03 UTC');
  });
});

describe('what the progress line counts', () => {
  it('counts cancelled chunks as cancelled, not failed', () => {
    const s = status({
      state: 'cancelled',
      counts: { pending: 0, running: 0, verified: 7, empty: 0, failed: 1, cancelled: 2 },
      waitingFor: undefined,
    });
    expect(progressSummary(s)).toBe(
      '10/10 chunks (100%), 1 failed, 2 cancelled, 0 running, 4,321 rows, 12.3 KB',
    );
  });
});
