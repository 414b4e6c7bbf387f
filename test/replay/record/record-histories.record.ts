import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { CcfsApi } from '../../../activities';
import { PARTIAL_DIR } from '../../../activities/output-store';
import { NO_FAULTS } from '../../../simulator/options';
import { chunkWorkflowId, exportWorkflowId } from '../../../workflows/definitions';
import { testRequest } from '../../support/exports';
import { startStack, TEST_SK, type Stack } from '../../support/stack';
import { until } from '../../support/until';
import { decodedPayloads, secretFindings } from '../history-files';
import { historyToJson } from '../proto-json';

/**
 * Records the histories that `test/replay/replay.test.ts` replays: real runs of the workflow code of
 * the checkout this file runs in, against the real Temporal dev server (globalSetup), the simulator
 * over HTTP, the API and a worker. Not part of `npm test`; run it on purpose, in a checkout of the
 * release whose histories are wanted (see test/replay/README.md):
 *
 *   REPLAY_HISTORIES_DIR=<dir> npx vitest run --config test/replay/record/vitest.config.ts
 *
 * Every scenario asserts that its run took the path it is named after, so a history is never saved
 * under a name it does not deserve.
 */

const OUT = process.env.REPLAY_HISTORIES_DIR ?? fileURLToPath(new URL('../histories/', import.meta.url));

interface Saved {
  name: string;
  workflowType: string;
  events: number;
}
const saved: Saved[] = [];

/** Writes one run's history as `<name>.json` after checking that it carries no secret. */
async function save(client: Client, name: string, workflowId: string, runId?: string): Promise<unknown> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const parsed = historyToJson(history);
  expect(secretFindings(parsed, [TEST_SK]), `secrets in ${name}`).toEqual([]);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `${name}.json`), `${JSON.stringify(parsed, null, 2)}\n`);
  const events = history.events ?? [];
  saved.push({
    name,
    workflowType: events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?',
    events: events.length,
  });
  return parsed;
}

/** Run IDs of an export's chain of runs, first to last, followed back from the latest run. */
async function runChain(client: Client, workflowId: string): Promise<string[]> {
  const latest = await client.workflow.getHandle(workflowId).describe();
  const chain = [latest.runId];
  for (;;) {
    const history = await client.workflow.getHandle(workflowId, chain[0]).fetchHistory();
    const previous = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) return chain;
    chain.unshift(previous);
  }
}

/** How many times a history scheduled an activity of this type. */
function activities(history: unknown, type: string): number {
  const events = (history as { events: Array<Record<string, { activityType?: { name?: string } }>> }).events;
  return events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type).length;
}

describe('records workflow histories for the replay test', () => {
  let stack: Stack;
  let onQuery: ((n: number) => void) | undefined;
  let onDownload: ((n: number) => void) | undefined;
  let queries = 0;
  let downloads = 0;

  beforeAll(async () => {
    stack = await startStack({
      // Big enough that a throttled download is still running when the export is cancelled.
      simulator: { padCallFileToBytes: 400_000 },
      wrapCcfs: (real): CcfsApi => ({
        queryBillData(body, opts) {
          onQuery?.(++queries);
          return real.queryBillData(body, opts);
        },
        downloadBillFile(name, dest, opts) {
          onDownload?.(++downloads);
          return real.downloadBillFile(name, dest, opts);
        },
      }),
    });
  });
  afterEach(async () => {
    // Each scenario reads the simulator's record of its own queries and downloads only.
    await stack.sim.simulator.reset();
    stack.sim.simulator.setFaults(NO_FAULTS);
    onQuery = undefined;
    onDownload = undefined;
    queries = 0;
    downloads = 0;
  });
  afterAll(async () => {
    await stack?.stop();
    console.log(saved.map((s) => `${s.name}: ${s.workflowType}, ${s.events} events`).join('\n'));
  });

  it('an export that continues as new between chunks, and a plain verified chunk', async () => {
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-04 00:00:00',
      options: { chunkHours: 24, maxChunksInFlight: 1 },
    });
    // Below the API's minimum of 200 on purpose: a run that starts from a ledger has about 13 events
    // when its first chunk completes, so every run after the first does one chunk and continues as
    // new, while the first run (about 9 events after prepareExport) still starts its chunk.
    request.options.maxHistoryEvents = 12;
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    expect(result.counts.verified).toBe(3);

    const workflowId = exportWorkflowId(request.exportId);
    const chain = await runChain(stack.client, workflowId);
    expect(chain.length).toBeGreaterThanOrEqual(3);
    await save(stack.client, 'export-continued-as-new-first', workflowId, chain[0]);
    await save(stack.client, 'export-continued-as-new-middle', workflowId, chain[1]);
    await save(stack.client, 'export-continued-as-new-last', workflowId, chain.at(-1));
    const chunk = await save(stack.client, 'chunk-verified', chunkWorkflowId(request.exportId, 0));
    expect(activities(chunk, 'requestChunk')).toBe(1);
    expect(activities(chunk, 'downloadChunk')).toBe(1);
  });

  it('a chunk that requests twice and takes the late callback of its first request', async () => {
    // Every callback comes 3 s late: after the 2 s timeout of request 1, within the wait of request 2.
    stack.sim.simulator.setFaults({ lateCallback: 1, lateCallbackMs: 3_000 });
    const request = testRequest({
      from: '2024-03-05 00:00:00',
      to: '2024-03-06 00:00:00',
      options: { callbackTimeoutSeconds: 2, maxRequestsPerChunk: 4 },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    const view = stack.sim.simulator.inspect();
    const chunk = await save(stack.client, 'chunk-late-callback', chunkWorkflowId(request.exportId, 0));
    expect(activities(chunk, 'requestChunk')).toBeGreaterThanOrEqual(2);
    // The file downloaded is the one of the first request: its callback came after the timeout.
    const first = view.queries.find(
      (q) => (q.msgBody as { beginTime?: string }).beginTime === '2024-03-05 00:00:00',
    );
    expect(view.downloads.map((d) => d.billFileName)).toEqual([first!.billFileName]);
  });

  it('a chunk that ends empty', async () => {
    const request = testRequest({
      from: '2024-03-06 00:00:00',
      to: '2024-03-07 00:00:00',
      // The simulator's callers are 13…: this one matches no call.
      filters: { callerNo: '10000000000' },
    });
    await stack.exports.start(request);
    const result = await stack.exports.result(request.exportId);
    expect(result.counts.empty).toBe(1);
    const chunk = await save(stack.client, 'chunk-empty', chunkWorkflowId(request.exportId, 0));
    expect(activities(chunk, 'downloadChunk')).toBe(0);
  });

  it('an export cancelled while a chunk downloads', async () => {
    // Chunk 0 downloads at full speed; chunk 1 crawls, so it is downloading when the cancel comes.
    onDownload = (n) => stack.sim.simulator.setFaults({ slowDownloadBytesPerSecond: n === 1 ? 0 : 40_000 });
    const request = testRequest({
      from: '2024-03-01 00:00:00',
      to: '2024-03-04 00:00:00',
      options: { chunkHours: 24, maxChunksInFlight: 1 },
    });
    request.options.heartbeatTimeoutMs = 2_000;
    await stack.exports.start(request);
    const partial = join(stack.output.exportDir(request.exportId), PARTIAL_DIR);
    await until(
      'chunk 1 to be downloading',
      () => existsSync(partial) && readdirSync(partial).some((f) => f.startsWith('0001-')),
      30_000,
      20,
    );
    await stack.exports.cancel(request.exportId);
    const error = await stack.exports.result(request.exportId).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    await save(stack.client, 'export-cancelled', exportWorkflowId(request.exportId));
    const chunk = await save(stack.client, 'chunk-cancelled', chunkWorkflowId(request.exportId, 1));
    expect(activities(chunk, 'downloadChunk')).toBe(1);
  });

  it('a daily run: the schedule action, its day and the day export, from a one-day backfill', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${stack.apiUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, `${path}: ${await res.clone().text()}`).toBeLessThan(300);
      return (await res.json()) as Record<string, unknown>;
    };
    const created = await post('/schedules', {
      dataType: 'call',
      at: '01:30',
      timeZone: 'Asia/Shanghai',
      options: {
        maxChunksInFlight: 8,
        callbackTimeoutSeconds: 20,
        retryInitialIntervalSeconds: 0.2,
        retryMaximumIntervalSeconds: 1,
        retryMaximumAttempts: 5,
      },
    });
    const scheduleId = created.scheduleId as string;
    await post(`/schedules/${scheduleId}/backfill`, { from: '2024-03-08', to: '2024-03-08' });

    // Found through visibility rather than by ID helpers, so this file survives moves of those helpers.
    const day = await until('the day workflow to complete', async () => {
      for await (const w of stack.client.workflow.list({
        query: `WorkflowType = 'dayExportWorkflow' AND TaskQueue = '${stack.taskQueue}'`,
      })) {
        if (w.status.name === 'COMPLETED') return w;
      }
      return undefined;
    });
    const dayDescription = await stack.client.workflow.getHandle(day.workflowId).describe();
    const parent = dayDescription.parentExecution;
    if (!parent?.workflowId || !parent.runId)
      throw new Error(`${day.workflowId} has no parent: not started by a schedule's run`);
    await stack.client.workflow.getHandle(parent.workflowId).result();
    await save(stack.client, 'daily-run', parent.workflowId, parent.runId);
    const dayHistory = await save(stack.client, 'daily-day', day.workflowId, day.runId);
    const started = (dayHistory as { events: Array<Record<string, { workflowId?: string }>> }).events.find(
      (e) => e.startChildWorkflowExecutionInitiatedEventAttributes,
    );
    const exportId = started!.startChildWorkflowExecutionInitiatedEventAttributes!.workflowId!;
    await save(stack.client, 'daily-export', exportId);
    await stack.client.schedule.getHandle(scheduleId).delete();
  });

  it('saved payloads decode', () => {
    // A guard on the secret check itself: it only means something if payloads are read.
    expect(saved.length).toBeGreaterThanOrEqual(10);
    expect(decodedPayloads({ data: Buffer.from('{"a":1}').toString('base64') })).toEqual(['{"a":1}']);
  });
});
