import { describe, expect, it } from 'vitest';
import { dayState, summarise, type DayRun } from '../../lib/coverage';

let n = 0;
function run(day: string, status: string, state?: string, extra: Partial<DayRun> = {}): DayRun {
  n++;
  return {
    tenant: 'acc1',
    dataType: 'call',
    day,
    workflowId: `ccfs-day/acc1/call/${day}`,
    runId: `r${n}`,
    status,
    state,
    startTime: new Date(Date.UTC(2024, 2, 20, 0, 0, n)).toISOString(),
    exportId: `daily-acc1-call-${day}`,
    ...extra,
  };
}

describe('coverage of daily exports', () => {
  it('shows each day verified, empty, failed, running or missing and completes through the day before the first gap', () => {
    const c = summarise({
      tenant: 'acc1',
      dataType: 'call',
      from: '2024-03-08',
      to: '2024-03-14',
      runs: [
        run('2024-03-08', 'COMPLETED', 'verified'),
        run('2024-03-09', 'COMPLETED', 'empty'),
        run('2024-03-10', 'FAILED', 'failed', { error: 'CC-FS rejected the query' }),
        run('2024-03-11', 'COMPLETED', 'verified'),
        run('2024-03-13', 'RUNNING', 'running'),
        run('2024-03-20', 'COMPLETED', 'verified'), // outside the window
      ],
    });
    expect(c.completeThrough).toBe('2024-03-09');
    expect(c.counts).toEqual({ verified: 2, empty: 1, failed: 1, running: 1, missing: 2 });
    expect(c.ranges).toEqual([
      { from: '2024-03-08', to: '2024-03-08', state: 'verified', days: 1 },
      { from: '2024-03-09', to: '2024-03-09', state: 'empty', days: 1 },
      { from: '2024-03-10', to: '2024-03-10', state: 'failed', days: 1 },
      { from: '2024-03-11', to: '2024-03-11', state: 'verified', days: 1 },
      { from: '2024-03-12', to: '2024-03-12', state: 'missing', days: 1 },
      { from: '2024-03-13', to: '2024-03-13', state: 'running', days: 1 },
      { from: '2024-03-14', to: '2024-03-14', state: 'missing', days: 1 },
    ]);
    expect(c.attention.map((d) => [d.day, d.state, d.error])).toEqual([
      ['2024-03-10', 'failed', 'CC-FS rejected the query'],
      ['2024-03-13', 'running', undefined],
    ]);
  });

  it('has no complete-through day when the first day of the window is not exported', () => {
    const c = summarise({
      tenant: 'acc1',
      dataType: 'call',
      runs: [run('2024-03-08', 'FAILED', 'failed'), run('2024-03-09', 'COMPLETED', 'verified')],
    });
    expect(c.from).toBe('2024-03-08');
    expect(c.to).toBe('2024-03-09');
    expect(c.completeThrough).toBeNull();
  });

  it('counts a failed day as verified once a later run completes it', () => {
    const d = dayState('2024-03-10', [
      run('2024-03-10', 'FAILED', 'failed'),
      run('2024-03-10', 'COMPLETED', 'verified'),
    ]);
    expect(d).toMatchObject({ state: 'verified', runs: 2 });
  });

  it('keeps a verified day verified while a forced re-export runs or after it fails, naming the verified export', () => {
    const verified = run('2024-03-10', 'COMPLETED', 'verified');
    const forcedRunning = run('2024-03-10', 'RUNNING', 'running', {
      exportId: 'daily-acc1-call-2024-03-10-f20240320T000000Z',
    });
    expect(dayState('2024-03-10', [verified, forcedRunning])).toMatchObject({
      state: 'verified',
      exportId: 'daily-acc1-call-2024-03-10',
    });
    const forcedFailed = run('2024-03-10', 'TERMINATED', undefined);
    expect(dayState('2024-03-10', [verified, forcedFailed])).toMatchObject({ state: 'verified' });
  });

  it('names the latest of several failed runs and treats termination, cancellation and timeouts as failed', () => {
    for (const status of ['TERMINATED', 'CANCELLED', 'TIMED_OUT']) {
      expect(dayState('2024-03-10', [run('2024-03-10', status)])).toMatchObject({
        state: 'failed',
        error: `day workflow ${status.toLowerCase()}`,
      });
    }
    const d = dayState('2024-03-10', [
      run('2024-03-10', 'FAILED', 'failed', { error: 'first' }),
      run('2024-03-10', 'FAILED', 'failed', { error: 'second' }),
    ]);
    expect(d.error).toBe('second');
  });

  it('shows an empty window when nothing is due yet', () => {
    const c = summarise({ tenant: 'acc1', dataType: 'call', runs: [], from: '2024-03-10', to: '2024-03-09' });
    expect(c).toMatchObject({ completeThrough: null, ranges: [], attention: [] });
  });
});
