import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { CcfsApi } from '../../activities';
import { createCli } from '../../cli/main';
import { loadConfig } from '../../lib/config';
import type { PairCoverage } from '../../lib/coverage';
import { ExportRecords, LocalRecordSource } from '../../lib/export-records';
import type { ExportSummary } from '../../lib/export-service';
import { daysBetween, type BackfillResult, type ScheduleView } from '../../lib/schedule-service';
import { S3Publisher, S3RecordSource } from '../../lib/storage/s3';
import { dayWorkflowId, type DataType } from '../../workflows/definitions';
import { startS3Server, type S3Server } from '../support/s3-server';
import { startStack, TEST_AK, TEST_SK, type Stack } from '../support/stack';
import { until } from '../support/until';

/**
 * Issue 16: the output is the durable record. After Temporal's retention deletes the workflows of a
 * backfill (done here with the same API call retention uses), coverage, `status` and `list` answer as
 * before from the manifests and the index beside them (locally, or in S3 with the local copy gone),
 * and a plain backfill exports nothing again. Backfills confirm what they started, also a dozen at once.
 */

const TENANT = 'acch016';
const ZONE = 'Asia/Shanghai';
const TEST_OPTIONS = {
  maxChunksInFlight: 8,
  callbackTimeoutSeconds: 20,
  retryInitialIntervalSeconds: 0.2,
  retryMaximumIntervalSeconds: 1,
  // The failing day gives up after two attempts.
  retryMaximumAttempts: 2,
};

/**
 * The real simulator answers HTTP 500 to every query of `failDay` (its fault switched on for that
 * query alone; queries are serialised so no other day's query meets the fault).
 */
function failingDay(failDay: () => string | undefined) {
  let queue: Promise<unknown> = Promise.resolve();
  return (ccfs: CcfsApi, sim: Stack['sim']): CcfsApi => ({
    downloadBillFile: (name, dest, opts) => ccfs.downloadBillFile(name, dest, opts),
    queryBillData: (body, opts) => {
      const run = async () => {
        const fail = failDay() !== undefined && String(body.beginTime).startsWith(failDay()!);
        if (fail) sim.simulator.setFaults({ queryHttp500: 1 });
        try {
          return await ccfs.queryBillData(body, opts);
        } finally {
          if (fail) sim.simulator.setFaults({ queryHttp500: 0 });
        }
      };
      const result = queue.then(run, run);
      queue = result.catch(() => undefined);
      return result;
    },
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

/** The CLI in-process, configured as an operator's shell would be. */
async function cli(stack: Stack, env: Record<string, string>, ...argv: string[]): Promise<string> {
  const out: string[] = [];
  const config = loadConfig(
    {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      TENANT_TIME_ZONE: ZONE,
      OUTPUT_DIR: stack.outputDir,
      ...env,
    },
    '',
  );
  const program = createCli(
    { out: (l) => out.push(l), err: (l) => out.push(`ERR ${l}`), tty: false, status: () => undefined },
    () => config,
  );
  await program.parseAsync(argv, { from: 'user' });
  return out.join('\n');
}

/** Every run of every workflow of the tenant and data type, closed ones: what retention deletes. */
async function deleteClosedWorkflows(stack: Stack, dataType: string): Promise<number> {
  const query = `TaskQueue = '${stack.taskQueue}' AND ExecutionStatus != 'Running'`;
  const dayQuery = `CcfsTenant = '${TENANT}' AND CcfsDataType = '${dataType}' AND ExecutionStatus != 'Running'`;
  const runs = new Map<string, { workflowId: string; runId: string }>();
  for (const q of [query, dayQuery])
    for await (const wf of stack.client.workflow.list({ query: q }))
      runs.set(`${wf.workflowId}/${wf.runId}`, { workflowId: wf.workflowId, runId: wf.runId });
  for (const execution of runs.values()) {
    await stack.client.workflowService.deleteWorkflowExecution({
      namespace: 'default',
      workflowExecution: execution,
    });
  }
  await until('the deleted workflows to be gone', async () => {
    for (const { workflowId, runId } of runs.values()) {
      try {
        await stack.client.workflow.getHandle(workflowId, runId).describe();
        return false;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    let visible = 0;
    for await (const _ of stack.client.workflow.list({ query: dayQuery })) visible++;
    return visible === 0;
  });
  return runs.size;
}

/** Waits until no day of `days` has a running day workflow, and returns the closed statuses. */
async function daysSettled(stack: Stack, dataType: string, days: string[]): Promise<Record<string, string>> {
  return until(
    `the days ${days[0]} … ${days.at(-1)} to finish`,
    async () => {
      const out: Record<string, string> = {};
      for (const day of days) {
        try {
          const d = await stack.client.workflow
            .getHandle(dayWorkflowId(TENANT, dataType as DataType, day))
            .describe();
          if (d.status.name === 'RUNNING') return false;
          out[day] = d.status.name;
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return false;
          throw err;
        }
      }
      return out;
    },
    110_000,
    500,
  );
}

interface Snapshot {
  coverageApi: PairCoverage[];
  coverageDefault: PairCoverage[];
  coverageCli: string;
  status: Record<string, string>;
  list: ExportSummary[];
}

async function snapshot(
  stack: Stack,
  env: Record<string, string>,
  dataType: string,
  days: string[],
  exportIds: string[],
): Promise<Snapshot> {
  const window = `tenant=${TENANT}&dataType=${dataType}&from=${days[0]}&to=${days.at(-1)}`;
  const coverageApi = (await api<{ coverage: PairCoverage[] }>(stack, 'GET', `/coverage?${window}`)).json
    .coverage;
  const coverageDefault = (
    await api<{ coverage: PairCoverage[] }>(stack, 'GET', `/coverage?tenant=${TENANT}&dataType=${dataType}`)
  ).json.coverage;
  const coverageCli = await cli(
    stack,
    env,
    'coverage',
    '--tenant',
    TENANT,
    '--type',
    dataType,
    '--from',
    days[0]!,
    '--to',
    days.at(-1)!,
  );
  const status: Record<string, string> = {};
  for (const id of exportIds) status[id] = await cli(stack, env, 'status', id);
  const list = JSON.parse(
    await cli(stack, env, 'list', '--tenant', TENANT, '--type', dataType, '--json'),
  ) as ExportSummary[];
  return { coverageApi, coverageDefault, coverageCli, status, list };
}

const withoutTimes = (rows: ExportSummary[]) =>
  rows
    .map(({ startTime: _s, closeTime: _c, ...rest }) => rest)
    .sort((a, b) => a.exportId.localeCompare(b.exportId));

/**
 * The scenario of the acceptance: a 5-day backfill in which one day fails; every closed workflow of
 * it deleted; the same answers; a plain backfill again downloads nothing and the failed day stays the gap.
 */
async function retentionScenario(
  stack: Stack,
  fail: { day?: string },
  opts: { dataType: string; days: string[]; env: Record<string, string>; afterDelete?: () => void },
): Promise<void> {
  const { dataType, days, env } = opts;
  const failDay = days[2]!;
  const created = await api<ScheduleView>(stack, 'POST', '/schedules', {
    scheduleId: `durable-${TENANT}-${dataType}`,
    dataType,
    filters: { accountId: TENANT },
    at: '01:30',
    timeZone: ZONE,
    options: TEST_OPTIONS,
  });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  const id = created.json.scheduleId;

  fail.day = `${failDay} 00:00:00`;
  const first = await api<BackfillResult>(stack, 'POST', `/schedules/${id}/backfill`, {
    from: days[0],
    to: days[4],
  });
  expect(first.status).toBe(202);
  expect(first.json.days.map((d) => [d.day, d.outcome])).toEqual(days.map((d) => [d, 'started']));
  const settled = await daysSettled(stack, dataType, days);
  expect(settled).toEqual(Object.fromEntries(days.map((d) => [d, d === failDay ? 'FAILED' : 'COMPLETED'])));

  const exportIds = days.map((d) => `daily-${TENANT}-${dataType}-${d}`);
  const before = await until('coverage to show four verified days and the failed one', async () => {
    const s = await snapshot(stack, env, dataType, days, exportIds);
    const c = s.coverageApi[0];
    return c && c.counts.verified + c.counts.empty === 4 && c.counts.failed === 1 && s.list.length === 5
      ? s
      : undefined;
  });
  expect(before.coverageApi[0]).toMatchObject({
    completeThrough: days[1],
    scheduleIds: [id],
    timeZone: ZONE,
  });
  expect(before.coverageApi[0]!.attention.map((d) => [d.day, d.state])).toEqual([[failDay, 'failed']]);
  expect(before.coverageApi[0]!.attention[0]!.error).toMatch(/ended completed_with_failures.*HTTP 500/);
  expect(before.status[exportIds[2]!]).toMatch(/completed_with_failures/);
  expect(before.coverageCli).toContain(`complete through ${days[1]}`);

  expect(await deleteClosedWorkflows(stack, dataType)).toBeGreaterThanOrEqual(15);
  opts.afterDelete?.();

  const after = await snapshot(stack, env, dataType, days, exportIds);
  expect(after.coverageApi).toEqual(before.coverageApi);
  expect(after.coverageDefault).toEqual(before.coverageDefault);
  expect(after.coverageCli).toBe(before.coverageCli);
  for (const exportId of exportIds) {
    // With the local copy gone, the manifest is where it is now: in the bucket.
    const norm = (s: string) => s.replace(/^manifest: .*$/m, 'manifest: …');
    if (opts.afterDelete) {
      expect(norm(after.status[exportId]!)).toBe(norm(before.status[exportId]!));
      expect(after.status[exportId]).toMatch(/^manifest: +s3:\/\//m);
    } else expect(after.status[exportId]).toBe(before.status[exportId]);
  }
  expect(withoutTimes(after.list)).toEqual(withoutTimes(before.list));
  // Start and close come from the files (request written, manifest finalised): within seconds of Temporal's.
  for (const row of after.list) {
    const was = before.list.find((r) => r.exportId === row.exportId)!;
    expect(Math.abs(Date.parse(row.startTime) - Date.parse(was.startTime))).toBeLessThan(5_000);
    expect(Math.abs(Date.parse(row.closeTime!) - Date.parse(was.closeTime!))).toBeLessThan(5_000);
  }

  // A plain backfill again: the recorded days are skipped, the failed day runs (and fails) again.
  const downloads = stack.sim.simulator.inspect().downloads;
  const again = await api<BackfillResult>(stack, 'POST', `/schedules/${id}/backfill`, {
    from: days[0],
    to: days[4],
  });
  expect(again.json.days.map((d) => [d.day, d.outcome])).toEqual(
    days.map((d) => [d, d === failDay ? 'started' : 'skipped']),
  );
  expect(again.json.days.find((d) => d.day === days[0])!.reason).toMatch(/already (verified|empty)/);
  expect(await daysSettled(stack, dataType, [failDay])).toEqual({ [failDay]: 'FAILED' });
  expect(stack.sim.simulator.inspect().downloads).toEqual(downloads);
  const gap = await until('coverage after the second backfill', async () => {
    const c = (
      await api<{ coverage: PairCoverage[] }>(
        stack,
        'GET',
        `/coverage?tenant=${TENANT}&dataType=${dataType}&from=${days[0]}&to=${days[4]}`,
      )
    ).json.coverage[0];
    return c && c.counts.running === 0 && c.counts.failed === 1 ? c : undefined;
  });
  expect(gap.completeThrough).toBe(days[1]);
  expect(gap.ranges.map((r) => [r.from, r.to, r.state === 'empty' ? 'verified' : r.state])).toEqual([
    [days[0], days[1], 'verified'],
    [failDay, failDay, 'failed'],
    [days[3], days[4], 'verified'],
  ]);
  fail.day = undefined;
}

describe('the output as the durable record (local OUTPUT_DIR)', () => {
  let stack: Stack;
  const fail: { day?: string } = {};
  beforeAll(async () => {
    stack = await startStack({
      simulator: { accounts: [{ ak: TEST_AK, sk: TEST_SK, accountId: TENANT }], callsPerHour: 0.5 },
      records: (dir) => new ExportRecords([new LocalRecordSource(dir)]),
      wrapCcfs: failingDay(() => fail.day),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers coverage, status and list as before once retention has deleted the workflows, and a second backfill downloads nothing', async () => {
    await retentionScenario(stack, fail, {
      dataType: 'call_record',
      days: daysBetween('2023-05-01', '2023-05-05'),
      env: {},
    });
    // `retry` after retention (what coverage and the Operations table tell the operator to do): the
    // export is known from its manifest, and the retry starts from its request.
    const failedExport = `daily-${TENANT}-call_record-2023-05-03`;
    await deleteClosedWorkflows(stack, 'call_record');
    expect(await stack.exports.describe(failedExport)).toBeUndefined();
    const retried = await api<{ exportId: string }>(stack, 'POST', `/exports/${failedExport}/retry`);
    expect(retried.status, JSON.stringify(retried.json)).toBeLessThan(300);
    expect((await stack.exports.result(failedExport)).state).toBe('completed');
  });

  it('confirms twelve concurrent month backfills: every day of the year started once and ends verified or empty', async () => {
    const created = await api<ScheduleView>(stack, 'POST', '/schedules', {
      scheduleId: `durable-${TENANT}-year`,
      dataType: 'call',
      filters: { accountId: TENANT },
      at: '00:00',
      timeZone: ZONE,
      options: { ...TEST_OPTIONS, retryMaximumAttempts: 5 },
    });
    expect(created.status).toBe(201);
    stack.sim.simulator.setOptions({ callsPerHour: 0.01 });
    const months = Array.from({ length: 12 }, (_, m) => {
      const from = `2022-${String(m + 1).padStart(2, '0')}-01`;
      const to = daysBetween(from, `2022-${String(m + 1).padStart(2, '0')}-31`)
        .filter((d) => d.slice(5, 7) === from.slice(5, 7))
        .at(-1)!;
      return { from, to };
    });
    const t0 = Date.now();
    const answers = await Promise.all(
      months.map((m) =>
        api<BackfillResult>(stack, 'POST', `/schedules/${created.json.scheduleId}/backfill`, m),
      ),
    );
    const year = daysBetween('2022-01-01', '2022-12-31');
    expect(answers.map((a) => (a.status === 202 ? 202 : JSON.stringify(a.json)))).toEqual(
      answers.map(() => 202),
    );
    const by = (who: string | undefined) =>
      answers.flatMap((a) => a.json.days).filter((d) => d.startedBy === who).length;
    console.log(
      `backfills answered after ${Date.now() - t0} ms: ${by('schedule')} days started by the schedule, ${by('direct')} directly`,
    );
    for (const [i, a] of answers.entries()) {
      expect(a.status).toBe(202);
      expect(a.json.days.map((d) => d.day)).toEqual(daysBetween(months[i]!.from, months[i]!.to));
      expect(a.json.days.filter((d) => d.outcome !== 'started')).toEqual([]);
    }
    expect(answers.flatMap((a) => a.json.days.map((d) => d.day))).toEqual(year);

    const coverage = await until(
      'every day of 2022 to be verified or empty',
      async () => {
        const c = (
          await api<{ coverage: PairCoverage[] }>(
            stack,
            'GET',
            `/coverage?tenant=${TENANT}&dataType=call&from=2022-01-01&to=2022-12-31`,
          )
        ).json.coverage[0];
        if (c) console.log(`${Date.now() - t0} ms: ${JSON.stringify(c.counts)}`);
        return c && c.counts.verified + c.counts.empty === year.length ? c : undefined;
      },
      // 365 one-day exports: minutes on a loaded two-core machine.
      1_500_000,
      10_000,
    );
    expect(coverage.completeThrough).toBe('2022-12-31');
    expect(coverage.counts).toMatchObject({ failed: 0, missing: 0, running: 0 });
    // The index holds every day: one entry per export, no more.
    const entries = await new ExportRecords([new LocalRecordSource(stack.outputDir)]).entries({
      tenant: TENANT,
      dataType: 'call',
    });
    expect(entries.map((e) => e.day).sort()).toEqual(year);
  }, 1_800_000);
});

describe('the output as the durable record (S3, local OUTPUT_DIR emptied)', () => {
  let stack: Stack;
  let s3: S3Server;
  let s3client: S3Client;
  const fail: { day?: string } = {};
  const bucket = 'durable-record';
  const prefix = 'exports/h16';
  let env: Record<string, string>;
  beforeAll(async () => {
    s3 = await startS3Server();
    // The CLI reads the bucket with the standard AWS credential chain, as in production.
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    s3client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: s3.credentials,
      forcePathStyle: true,
    });
    await s3client.send(new CreateBucketCommand({ Bucket: bucket }));
    env = {
      OUTPUT_S3_BUCKET: bucket,
      OUTPUT_S3_PREFIX: prefix,
      OUTPUT_S3_ENDPOINT: s3.endpoint,
      OUTPUT_S3_REGION: s3.region,
    };
    stack = await startStack({
      simulator: { accounts: [{ ak: TEST_AK, sk: TEST_SK, accountId: TENANT }], callsPerHour: 0.5 },
      records: (dir) =>
        new ExportRecords([new LocalRecordSource(dir), new S3RecordSource(s3client, bucket, prefix)]),
      publish: new S3Publisher({ client: s3client, bucket, prefix, partSize: 5 * 1024 * 1024, queueSize: 2 }),
      wrapCcfs: failingDay(() => fail.day),
    });
  });
  afterAll(async () => {
    await stack?.stop();
    s3client?.destroy();
    await s3?.close();
  });

  it('answers coverage, status and list from the bucket as before, and a second backfill downloads nothing', async () => {
    await retentionScenario(stack, fail, {
      dataType: 'record',
      days: daysBetween('2021-07-01', '2021-07-05'),
      env,
      afterDelete: () => {
        for (const name of readdirSync(stack.outputDir))
          rmSync(join(stack.outputDir, name), { recursive: true, force: true });
        expect(readdirSync(stack.outputDir)).toEqual([]);
      },
    });
  });
});
