import { until } from '../support/until';
import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createCli } from '../../cli/main';
import { loadConfig } from '../../lib/config';
import type { PairCoverage } from '../../lib/coverage';
import type { BackfillResult, ScheduleView } from '../../lib/schedule-service';
import type { dailyExportWorkflow, dayExportWorkflow } from '../../workflows/daily-export-workflow';
import { dayWorkflowId, exportWorkflowId, type DayExportResult } from '../../workflows/definitions';
import { readManifest } from '../support/exports';
import { startStack, TEST_SK, type Stack } from '../support/stack';

/**
 * Issue 6 against the real dev server: schedules created through the API and the CLI, backfilled over
 * real days, their exports run by a real worker against the simulator over HTTP.
 */

/** Test-sized export options, as `testRequest()` uses, carried in the schedule's action. */
const TEST_OPTIONS = {
  maxChunksInFlight: 8,
  callbackTimeoutSeconds: 20,
  retryInitialIntervalSeconds: 0.2,
  retryMaximumIntervalSeconds: 1,
  retryMaximumAttempts: 5,
};
const DAYS = ['2024-03-08', '2024-03-09', '2024-03-10', '2024-03-11', '2024-03-12'];

type DayOutcome = { status: string; result?: DayExportResult; error?: string; startTime: Date };

/** Waits for the run of a day workflow started after `after` to close; its result or failure. */
async function dayOutcome(client: Client, workflowId: string, after = new Date(0)): Promise<DayOutcome> {
  return until(`day workflow ${workflowId}`, async () => {
    try {
      const handle = client.workflow.getHandle<typeof dayExportWorkflow>(workflowId);
      const d = await handle.describe();
      if (d.startTime <= after || d.status.name === 'RUNNING') return undefined;
      try {
        return { status: d.status.name, result: await handle.result(), startTime: d.startTime };
      } catch (err) {
        if (!(err instanceof WorkflowFailedError)) throw err;
        return { status: d.status.name, error: err.cause?.message, startTime: d.startTime };
      }
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  });
}

async function api<T>(
  stack: Stack,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : undefined) as T };
}

/** The simulator's queries for a day, as [beginTime, endTime]. */
function queriedRanges(stack: Stack, dataType: string): Array<[string, string]> {
  return stack.sim.simulator
    .inspect()
    .queries.map((q) => q.msgBody as { beginTime?: string; endTime?: string; dataType?: string })
    .filter((b) => b.dataType === dataType)
    .map((b) => [b.beginTime!, b.endTime!]);
}

describe('daily exports on Temporal Schedules', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Runs the CLI in-process against the test server and the stack's task queue. */
  async function cli(...argv: string[]): Promise<{ out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const config = loadConfig(
      {
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_TASK_QUEUE: stack.taskQueue,
        TENANT_TIME_ZONE: 'Asia/Shanghai',
      },
      '',
    );
    const program = createCli(
      { out: (l) => out.push(l), err: (l) => err.push(l), tty: false, status: () => undefined },
      () => config,
    );
    await program.parseAsync(argv, { from: 'user' });
    return { out: out.join('\n'), err: err.join('\n') };
  }

  it('backfills five days in Asia/Shanghai as five one-day exports, and backfilling them again downloads nothing', async () => {
    const created = await api<ScheduleView>(stack, 'POST', '/schedules', {
      dataType: 'call_record',
      filters: { accountId: 'acc0001' },
      at: '01:30',
      timeZone: 'Asia/Shanghai',
      catchup: '3d',
      options: TEST_OPTIONS,
    });
    expect(created.status).toBe(201);
    const id = created.json.scheduleId;
    expect(id).toBe('ccfs-daily-acc0001-call_record');
    expect(created.json).toMatchObject({
      at: '01:30',
      timeZone: 'Asia/Shanghai',
      catchupWindow: '3d',
      overlap: 'ALLOW_ALL',
      paused: false,
    });

    const backfill = await api<BackfillResult>(stack, 'POST', `/schedules/${id}/backfill`, {
      from: DAYS[0],
      to: DAYS[4],
    });
    expect(backfill.status).toBe(202);
    expect(backfill.json.days.map((d) => d.day)).toEqual(DAYS);

    const outcomes = await Promise.all(
      DAYS.map((day) => dayOutcome(stack.client, dayWorkflowId('acc0001', 'call_record', day))),
    );
    for (const [i, day] of DAYS.entries()) {
      const result = outcomes[i]!.result!;
      expect(result).toMatchObject({
        day,
        state: 'verified',
        exportId: `daily-acc0001-call_record-${day}`,
        timeZone: 'Asia/Shanghai',
      });
      const manifest = await readManifest(result.manifestPath);
      expect(manifest.chunks.map((c) => [c.begin, c.end, c.state])).toEqual([
        [`${day} 00:00:00`, `${DAYS[i + 1] ?? '2024-03-13'} 00:00:00`, 'verified'],
      ]);
    }
    expect(queriedRanges(stack, 'call_record').sort()).toEqual(
      DAYS.map((d, i) => [`${d} 00:00:00`, `${DAYS[i + 1] ?? '2024-03-13'} 00:00:00`]),
    );

    // The exports carry the same search attributes as API-started ones, plus the day.
    const exportDescription = await stack.client.workflow
      .getHandle(exportWorkflowId('daily-acc0001-call_record-2024-03-10'))
      .describe();
    const attrs = Object.fromEntries(
      exportDescription.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]),
    );
    expect(attrs).toMatchObject({
      CcfsExportId: 'daily-acc0001-call_record-2024-03-10',
      CcfsTenant: 'acc0001',
      CcfsDataType: 'call_record',
      CcfsKind: 'export',
      CcfsDay: '2024-03-10',
      CcfsExportState: 'completed',
      CcfsRangeBegin: new Date('2024-03-09T16:00:00Z'),
      CcfsRangeEnd: new Date('2024-03-10T16:00:00Z'),
    });

    const before = stack.sim.simulator.inspect();
    const again = await api<BackfillResult>(stack, 'POST', `/schedules/${id}/backfill`, {
      from: DAYS[0],
      to: DAYS[4],
    });
    expect(again.status).toBe(202);
    const schedule = await until('the second backfill to finish', async () => {
      const d = (await api<ScheduleView>(stack, 'GET', `/schedules/${id}`)).json;
      return d.actionsTaken >= 10 && d.runningWorkflowIds.length === 0 ? d : undefined;
    });
    const skipped = await Promise.all(
      schedule.recentRuns
        .slice(-5)
        .map((r) => stack.client.workflow.getHandle<typeof dailyExportWorkflow>(r.workflowId!).result()),
    );
    expect(skipped.map((r) => [r.day, r.outcome]).sort()).toEqual(DAYS.map((d) => [d, 'skipped']));
    const after = stack.sim.simulator.inspect();
    expect(after.downloads).toEqual(before.downloads);
    expect(after.queries).toEqual(before.queries);

    // --force exports a verified day again, into a new directory; the verified one stays.
    const forced = await api<BackfillResult>(stack, 'POST', `/schedules/${id}/backfill`, {
      from: '2024-03-09',
      to: '2024-03-09',
      force: true,
    });
    expect(forced.json).toMatchObject({ mode: 'force', days: [{ day: '2024-03-09', started: true }] });
    const rerun = await dayOutcome(
      stack.client,
      dayWorkflowId('acc0001', 'call_record', '2024-03-09'),
      outcomes[1]!.startTime,
    );
    expect(rerun.result?.state).toBe('verified');
    expect(rerun.result?.exportId).toMatch(/^daily-acc0001-call_record-2024-03-09-f\d{8}T\d{6}Z$/);
    expect(stack.sim.simulator.inspect().downloads.length).toBe(before.downloads.length + 1);
  });

  it('exports the 23-hour DST day of America/New_York with exactly its hours, created and backfilled through the CLI', async () => {
    const created = await cli(
      'schedule',
      'create',
      '--type',
      'call',
      '--account-id',
      'acc0001',
      '--at',
      '01:30',
      '--time-zone',
      'America/New_York',
      '--callback-timeout',
      '20',
      '--probe-interval',
      '45',
      '--json',
    );
    const view = JSON.parse(created.out) as ScheduleView;
    expect(view).toMatchObject({
      scheduleId: 'ccfs-daily-acc0001-call',
      at: '01:30',
      timeZone: 'America/New_York',
      catchupWindow: '7d',
    });

    const filled = await cli('schedule', 'backfill', view.scheduleId, '--from', DAYS[0]!, '--to', DAYS[4]!);
    expect(filled.out).toContain('backfill of 5 day(s)');
    const outcomes = await Promise.all(
      DAYS.map((day) => dayOutcome(stack.client, dayWorkflowId('acc0001', 'call', day))),
    );
    const hours: Record<string, number> = {};
    for (const [i, day] of DAYS.entries()) {
      const result = outcomes[i]!.result!;
      expect(result.state).toBe('verified');
      expect([result.begin, result.end]).toEqual([
        `${day} 00:00:00`,
        `${DAYS[i + 1] ?? '2024-03-13'} 00:00:00`,
      ]);
      const manifest = await readManifest(result.manifestPath);
      expect(manifest.chunks).toHaveLength(1);
      // The schedule's options reach each day's export.
      expect(manifest.request.options).toMatchObject({ callbackTimeoutMs: 20_000, probeIntervalMs: 45_000 });
      const d = await stack.client.workflow.getHandle(result.exportWorkflowId).describe();
      const attr = (name: string) =>
        d.typedSearchAttributes.getAll().find((p) => p.key.name === name)?.value as Date;
      hours[day] = (attr('CcfsRangeEnd').getTime() - attr('CcfsRangeBegin').getTime()) / 3_600_000;
    }
    expect(hours).toEqual({
      '2024-03-08': 24,
      '2024-03-09': 24,
      '2024-03-10': 23,
      '2024-03-11': 24,
      '2024-03-12': 24,
    });
    expect(queriedRanges(stack, 'call')).toContainEqual(['2024-03-10 00:00:00', '2024-03-11 00:00:00']);

    // The 23-hour day holds exactly the rows CC-FS has for it.
    const dst = outcomes[2]!.result!;
    const expected = stack.sim.simulator.rowKeys({
      beginTime: dst.begin,
      endTime: dst.end,
      dataType: 'call',
    });
    const manifest = await readManifest(dst.manifestPath);
    expect(manifest.chunks[0]).toMatchObject({ state: 'verified', rows: expected.call.length });

    const described = await cli('schedule', 'describe', view.scheduleId);
    expect(described.out).toContain('runs daily at 01:30 America/New_York');
    expect(described.out).toContain('actions taken: 5');
  });

  it('takes no new action while paused: neither at its time nor by trigger or backfill', async () => {
    // Two schedules due a few seconds from now, one of them paused from the start (so no race with
    // its time); the other shows that the time did come.
    const at = DateTime.utc().plus({ seconds: 6 }).toFormat('HH:mm:ss');
    const base = { at, timeZone: 'UTC', options: TEST_OPTIONS };
    const control = await api<ScheduleView>(stack, 'POST', '/schedules', { ...base, dataType: 'call' });
    const paused = await api<ScheduleView>(stack, 'POST', '/schedules', {
      ...base,
      dataType: 'record',
      paused: true,
    });
    expect([control.status, paused.status]).toEqual([201, 201]);
    const pausedId = paused.json.scheduleId;
    const pause = await api<ScheduleView>(stack, 'POST', `/schedules/${pausedId}/pause`, {
      note: 'CC-FS maintenance',
    });
    expect(pause.json).toMatchObject({ paused: true, note: 'CC-FS maintenance' });

    const trigger = await api<{ error: string; message: string }>(
      stack,
      'POST',
      `/schedules/${pausedId}/trigger`,
    );
    expect(trigger.status).toBe(409);
    expect(trigger.json).toMatchObject({ error: 'paused' });
    expect(trigger.json.message).toContain('CC-FS maintenance');
    const backfill = await api<{ error: string }>(stack, 'POST', `/schedules/${pausedId}/backfill`, {
      from: '2024-03-08',
      to: '2024-03-08',
    });
    expect(backfill.status).toBe(409);

    // The control's own scheduled run exports the day before its scheduled time (UTC).
    const ran = await until('the control schedule to run', async () => {
      const d = (await api<ScheduleView>(stack, 'GET', `/schedules/${control.json.scheduleId}`)).json;
      return d.recentRuns[0];
    });
    expect(ran.scheduledAt.slice(11, 19)).toBe(at);
    expect(ran.day).toBe(
      DateTime.fromISO(ran.scheduledAt, { zone: 'UTC' }).minus({ days: 1 }).toFormat('yyyy-MM-dd'),
    );
    const outcome = await dayOutcome(stack.client, dayWorkflowId('default', 'call', ran.day));
    expect(outcome.result?.state).toBe('verified');

    const described = (await api<ScheduleView>(stack, 'GET', `/schedules/${pausedId}`)).json;
    expect(described).toMatchObject({
      paused: true,
      actionsTaken: 0,
      recentRuns: [],
      runningWorkflowIds: [],
    });
    await expect(
      stack.client.workflow.getHandle(dayWorkflowId('default', 'record', ran.day)).describe(),
    ).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const resumed = await api<ScheduleView>(stack, 'POST', `/schedules/${pausedId}/resume`);
    expect(resumed.json.paused).toBe(false);
    const list = await api<{ schedules: Array<{ scheduleId: string }> }>(stack, 'GET', '/schedules');
    expect(list.json.schedules.map((s) => s.scheduleId)).toEqual(
      expect.arrayContaining([control.json.scheduleId, pausedId]),
    );
    for (const id of [control.json.scheduleId, pausedId])
      expect((await api(stack, 'DELETE', `/schedules/${id}`)).status).toBe(204);
    expect((await api(stack, 'GET', `/schedules/${pausedId}`)).status).toBe(404);
  });

  it('shows a failed day as the gap in coverage and completes through the day before it until the day is exported', async () => {
    const created = await api<ScheduleView>(stack, 'POST', '/schedules', {
      dataType: 'record',
      filters: { accountId: 'acc0001' },
      at: '02:00',
      timeZone: 'Asia/Shanghai',
      // A short retry budget: the failing day gives up after two attempts.
      options: { ...TEST_OPTIONS, retryMaximumAttempts: 2 },
    });
    const id = created.json.scheduleId;
    const wf = (day: string) => dayWorkflowId('acc0001', 'record', day);
    const coverage = async () => {
      const res = await api<{ coverage: PairCoverage[] }>(
        stack,
        'GET',
        `/coverage?tenant=acc0001&dataType=record&from=${DAYS[0]}&to=${DAYS[4]}`,
      );
      expect(res.status).toBe(200);
      return res.json.coverage;
    };

    await api(stack, 'POST', `/schedules/${id}/backfill`, { from: DAYS[0], to: DAYS[1] });
    await Promise.all(DAYS.slice(0, 2).map((d) => dayOutcome(stack.client, wf(d))));
    // Every query of the middle day answers HTTP 500, so it fails after its retry budget.
    stack.sim.simulator.setFaults({ queryHttp500: 1 });
    await api(stack, 'POST', `/schedules/${id}/backfill`, { from: DAYS[2], to: DAYS[2] });
    const failed = await dayOutcome(stack.client, wf(DAYS[2]!));
    stack.sim.simulator.setFaults({ queryHttp500: 0 });
    expect(failed.status).toBe('FAILED');
    await api(stack, 'POST', `/schedules/${id}/backfill`, { from: DAYS[3], to: DAYS[4] });
    await Promise.all(DAYS.slice(3).map((d) => dayOutcome(stack.client, wf(d))));

    const gap = await until('coverage to show the failed day', async () => {
      const [c] = await coverage();
      return c && c.counts.verified === 4 && c.counts.failed === 1 ? c : undefined;
    });
    expect(gap).toMatchObject({
      tenant: 'acc0001',
      dataType: 'record',
      timeZone: 'Asia/Shanghai',
      scheduleIds: [id],
      completeThrough: '2024-03-09',
    });
    expect(gap.ranges.map((r) => [r.from, r.to, r.state])).toEqual([
      ['2024-03-08', '2024-03-09', 'verified'],
      ['2024-03-10', '2024-03-10', 'failed'],
      ['2024-03-11', '2024-03-12', 'verified'],
    ]);
    expect(gap.attention.map((d) => [d.day, d.state])).toEqual([['2024-03-10', 'failed']]);
    expect(gap.attention[0]!.error).toMatch(/ended completed_with_failures.*HTTP 500/);

    const printed = await cli(
      'coverage',
      '--tenant',
      'acc0001',
      '--type',
      'record',
      '--from',
      DAYS[0]!,
      '--to',
      DAYS[4]!,
    );
    expect(printed.out).toContain('acc0001 / record (Asia/Shanghai): complete through 2024-03-09');
    expect(printed.out).toMatch(/! 2024-03-10 failed: /);

    // A later backfill of the range exports only the failed day; then coverage is complete.
    const queries = stack.sim.simulator.inspect().queries.length;
    await api(stack, 'POST', `/schedules/${id}/backfill`, { from: DAYS[0], to: DAYS[4] });
    const retried = await dayOutcome(stack.client, wf(DAYS[2]!), failed.startTime);
    expect(retried, JSON.stringify(retried)).toMatchObject({ result: { state: 'verified' } });
    const complete = await until('coverage to complete', async () => {
      const [c] = await coverage();
      return c?.completeThrough === DAYS[4] ? c : undefined;
    });
    expect(complete.counts).toMatchObject({ verified: 5, failed: 0, missing: 0 });
    expect(stack.sim.simulator.inspect().queries.length).toBe(queries + 1);
  });

  it('refuses a time inside a DST gap, a second schedule for the same tenant and type, and unknown schedules', async () => {
    const gap = await api<{ error: string; message: string }>(stack, 'POST', '/schedules', {
      dataType: 'call',
      at: '02:30',
      timeZone: 'America/New_York',
    });
    expect(gap.status).toBe(400);
    expect(gap.json.message).toMatch(/02:30 does not exist in America\/New_York/);
    const first = await api(stack, 'POST', '/schedules', {
      dataType: 'call_record',
      at: '03:00',
      paused: true,
    });
    expect(first.status).toBe(201);
    const again = await api<{ error: string }>(stack, 'POST', '/schedules', {
      dataType: 'call_record',
      at: '04:00',
    });
    expect(again).toMatchObject({ status: 409, json: { error: 'exists' } });
    expect((await api(stack, 'POST', '/schedules/no-such-schedule/trigger')).status).toBe(404);
    const future = DateTime.now().setZone('Asia/Shanghai').toFormat('yyyy-MM-dd');
    const today = await api<{ message: string }>(
      stack,
      'POST',
      '/schedules/ccfs-daily-default-call_record/backfill',
      { from: future, to: future },
    );
    expect(today.status).toBe(409); // paused first
    await api(stack, 'POST', '/schedules/ccfs-daily-default-call_record/resume');
    const notOver = await api<{ message: string }>(
      stack,
      'POST',
      '/schedules/ccfs-daily-default-call_record/backfill',
      { from: future, to: future },
    );
    expect(notOver.status).toBe(400);
    expect(notOver.json.message).toMatch(/is not over yet/);
    await api(stack, 'DELETE', '/schedules/ccfs-daily-default-call_record');
  });

  it('keeps the SK out of the schedules and out of the histories of their runs', async () => {
    const texts: string[] = [];
    for await (const s of stack.client.schedule.list()) {
      texts.push(JSON.stringify((await stack.client.schedule.getHandle(s.scheduleId).describe()).raw));
    }
    const query = `TaskQueue = '${stack.taskQueue}' AND WorkflowType IN ('dailyExportWorkflow', 'dayExportWorkflow')`;
    for await (const wf of stack.client.workflow.list({ query })) {
      texts.push(
        JSON.stringify(await stack.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory()),
      );
    }
    expect(texts.length).toBeGreaterThan(20);
    for (const text of texts) expect(text).not.toContain(TEST_SK);
  });
});
