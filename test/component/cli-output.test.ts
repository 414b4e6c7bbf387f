import { describe, expect, it } from 'vitest';
import {
  EtaEstimator,
  formatInstant,
  ProgressReporter,
  progressLine,
  table,
  type ProgressOutput,
  type ProgressStatus,
} from '../../cli/progress';

/** A status as the export workflow reports it: `done` chunks verified, `running` in flight, of `total`. */
function status(
  done: number,
  running: number,
  total: number,
  extra: Partial<ProgressStatus> & { failed?: number } = {},
): ProgressStatus {
  const failed = extra.failed ?? 0;
  return {
    state: extra.state ?? 'running',
    counts: {
      pending: total - done - failed - running,
      running,
      verified: done,
      empty: 0,
      failed,
      cancelled: 0,
    },
    totals: extra.totals ?? { chunks: total, rows: done * 1234, bytes: done * 5_000_000 },
  };
}

function fakeOutput(tty: boolean, columns?: number): ProgressOutput & { redraws: string[]; lines: string[] } {
  const redraws: string[] = [];
  const lines: string[] = [];
  return { tty, columns, redraws, lines, status: (l) => redraws.push(l), err: (l) => lines.push(l) };
}

const hasEscapes = (line: string) => line.includes('\u001b') || line.includes('\r');

describe('CLI progress on a terminal', () => {
  it('redraws one line with a bar, chunks done of total, rows, bytes and an ETA from the pace it watched', () => {
    const out = fakeOutput(true, 200);
    const t0 = 1_700_000_000_000;
    // Started 10 s before the watch began, one chunk done by then.
    const reporter = new ProgressReporter(out, { exportStartedAt: t0 - 10_000 });
    reporter.update(status(1, 2, 4), t0);
    reporter.update(status(3, 1, 4), t0 + 4_000);
    reporter.update(status(4, 0, 4, { state: 'completed' }), t0 + 6_000);
    reporter.finish();

    expect(out.redraws).toEqual([
      // Before any chunk finished under watch: the export's own pace, 10 s per chunk, 3 left.
      '[######..................] 1/4 chunks (25%), 2 running, 1,234 rows, 5.0 MB, ETA 30s',
      // Two chunks in 4 s while watched: 2 s per chunk, 1 left.
      '[##################......] 3/4 chunks (75%), 1 running, 3,702 rows, 15.0 MB, ETA 2s',
      '[########################] 4/4 chunks (100%), 0 running, 4,936 rows, 20.0 MB, completed',
    ]);
    // The drawn line is ended once, so the manifest path printed next starts on its own line.
    expect(out.lines).toEqual(['']);
  });

  it('shows failed chunks and an unknown ETA before anything has finished', () => {
    expect(progressLine(status(0, 3, 6), Number.NaN, { bar: true })).toBe(
      '[........................] 0/6 chunks (0%), 3 running, 0 rows, 0 B, ETA ?',
    );
    expect(progressLine(status(2, 0, 3, { failed: 1, state: 'completed_with_failures' }), 0)).toBe(
      '3/3 chunks (100%), 1 failed, 0 running, 2,468 rows, 10.0 MB, completed_with_failures',
    );
  });

  it('cuts the line to the terminal width, so redrawing in place never wraps', () => {
    const out = fakeOutput(true, 40);
    new ProgressReporter(out).update(status(1, 2, 4), 0);
    expect(out.redraws[0]).toHaveLength(39);
    expect(out.redraws[0]!.endsWith('…')).toBe(true);
  });

  it('estimates the time left from chunks finished during the watch, not from those done before it', () => {
    const eta = new EtaEstimator();
    expect(eta.observe(status(50, 2, 100), 0)).toBeNaN();
    expect(eta.observe(status(55, 2, 100), 10_000)).toBe(90); // 5 chunks in 10 s, 45 left
    expect(eta.observe(status(100, 0, 100, { state: 'completed' }), 20_000)).toBe(0);
  });
});

describe('CLI progress without a terminal', () => {
  it('prints plain lines with no escape codes, one per change of the chunks, not per poll', () => {
    const out = fakeOutput(false);
    const reporter = new ProgressReporter(out);
    reporter.update(status(0, 2, 3), 0);
    reporter.update(status(0, 2, 3), 1_000); // same chunks, a later poll: the ETA alone would differ
    reporter.update(status(0, 2, 3), 2_000);
    reporter.update(status(1, 2, 3), 3_000);
    reporter.update(status(3, 0, 3, { state: 'completed' }), 4_000);
    reporter.finish();

    expect(out.redraws).toEqual([]);
    expect(out.lines).toEqual([
      '0/3 chunks (0%), 2 running, 0 rows, 0 B, ETA ?',
      '1/3 chunks (33%), 2 running, 1,234 rows, 5.0 MB, ETA 6s',
      '3/3 chunks (100%), 0 running, 3,702 rows, 15.0 MB, completed',
    ]);
    for (const line of out.lines) expect(hasEscapes(line)).toBe(false);
  });
});

describe('CLI tables', () => {
  it('aligns columns, right-aligns numbers and leaves missing cells empty', () => {
    const text = table(
      [
        { chunk: 0, state: 'verified', rows: 1234, error: undefined },
        { chunk: 11, state: 'failed', rows: undefined, error: 'no usable callback' },
      ],
      ['chunk', 'state', 'rows', 'error'],
    );
    expect(text.split('\n')).toEqual([
      'chunk  state      rows  error',
      '-----  --------  -----  ------------------',
      '    0  verified  1,234',
      '   11  failed           no usable callback',
    ]);
  });

  it('shows visibility instants as wall time of the given zone', () => {
    expect(formatInstant('2024-02-29T16:00:00.000Z', 'Asia/Shanghai')).toBe('2024-03-01 00:00');
    expect(formatInstant('2024-10-27T01:30:00.000Z', 'Europe/Berlin')).toBe('2024-10-27 02:30');
    expect(formatInstant(undefined, 'UTC')).toBeUndefined();
  });
});

describe('CLI arguments', () => {
  it('refuses a --limit of list outside 1–1000 before it connects to anything', async () => {
    const { createCli } = await import('../../cli/main');
    for (const bad of ['0', '-1', '1001', 'x']) {
      const err: string[] = [];
      const cli = createCli(
        { tty: false, columns: 80, out: () => {}, err: (l) => err.push(l), status: () => {}, pollMs: 10 },
        () => {
          throw new Error('no configuration should be read for bad arguments');
        },
      );
      cli.exitOverride().configureOutput({ writeErr: (s) => err.push(s), writeOut: () => {} });
      for (const c of cli.commands)
        c.exitOverride().configureOutput({ writeErr: (s) => err.push(s), writeOut: () => {} });
      await expect(cli.parseAsync(['list', '--limit', bad], { from: 'user' })).rejects.toThrow(/--limit/);
    }
  });
});
