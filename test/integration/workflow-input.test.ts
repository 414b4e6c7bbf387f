import { randomUUID } from 'node:crypto';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INVALID_WORKFLOW_INPUT } from '../../domain/input-checks';
import { DEFAULT_EXPORT_OPTIONS, type ExportRequest } from '../../workflows/definitions';
import { startStack, type Stack } from '../support/stack';

/**
 * Input the API and the CLI would refuse can still reach a workflow started directly (the Temporal CLI
 * or UI, another client, a hand-edited schedule). Such a run must fail at once with a non-retryable
 * ApplicationFailure naming the field — not throw a plain error, which fails the workflow task and
 * retries it forever while the run shows as Running. Started here with the SDK client, bypassing the API.
 */
describe('workflows started directly with bad input', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  const request = (over: Partial<ExportRequest>): ExportRequest => ({
    exportId: `bad-input-${randomUUID().slice(0, 8)}`,
    tenant: 'default',
    begin: '2024-03-01 00:00:00',
    end: '2024-03-02 00:00:00',
    timeZone: 'Asia/Shanghai',
    dataType: 'call',
    filters: {},
    options: DEFAULT_EXPORT_OPTIONS,
    origin: 'test',
    ...over,
  });

  /** Starts `workflowType` with `input`, expects it to fail; returns its failure and whether any workflow task failed. */
  async function failure(
    workflowType: string,
    input: unknown,
  ): Promise<{ cause: ApplicationFailure; taskFailures: number }> {
    const workflowId = `bad-input/${workflowType}/${randomUUID()}`;
    const handle = await stack.client.workflow.start(workflowType, {
      workflowId,
      taskQueue: stack.taskQueue,
      args: [input],
    });
    const error = await handle.result().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    const history = await handle.fetchHistory();
    const taskFailures = (history.events ?? []).filter(
      (e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    ).length;
    return { cause: cause as ApplicationFailure, taskFailures };
  }

  it.each([
    ['an invalid time zone', { timeZone: 'Mars/Olympus_Mons' }, 'request.timeZone', 'Mars/Olympus_Mons'],
    ['a malformed wall time', { begin: '2024-03-01T00:00:00' }, 'request.begin', 'yyyy-MM-dd HH:mm:ss'],
    ['an impossible date', { end: '2024-02-30 00:00:00' }, 'request.end', 'not a valid calendar date'],
    ['an end before its begin', { end: '2024-02-01 00:00:00' }, 'request.end', 'not later than'],
    [
      'an unknown data type',
      { dataType: 'calls' as ExportRequest['dataType'] },
      'request.dataType',
      '"calls"',
    ],
  ])('exportWorkflow fails non-retryably naming the field on %s', async (_what, over, field, detail) => {
    const { cause, taskFailures } = await failure('exportWorkflow', { request: request(over) });
    expect(cause.type).toBe(INVALID_WORKFLOW_INPUT);
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain(field);
    expect(cause.message).toContain(detail);
    expect(cause.details).toEqual([expect.objectContaining({ field })]);
    expect(taskFailures).toBe(0);
  });

  const day = (over: Record<string, unknown>) => ({
    tenant: 'default',
    dataType: 'call',
    filters: {},
    timeZone: 'Asia/Shanghai',
    options: DEFAULT_EXPORT_OPTIONS,
    day: '2024-03-01',
    origin: 'test',
    ...over,
  });

  it.each([
    ['a day that is no calendar date', { day: '2024-02-30' }, 'day', '2024-02-30'],
    ['a day in another form', { day: '01/03/2024' }, 'day', 'yyyy-MM-dd'],
    ['an invalid time zone', { timeZone: 'Asia/Atlantis' }, 'timeZone', 'Asia/Atlantis'],
  ])('dayExportWorkflow fails non-retryably naming the field on %s', async (_what, over, field, detail) => {
    const { cause, taskFailures } = await failure('dayExportWorkflow', day(over));
    expect(cause.type).toBe(INVALID_WORKFLOW_INPUT);
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain(`invalid input: ${field}:`);
    expect(cause.message).toContain(detail);
    expect(taskFailures).toBe(0);
  });

  it('dailyExportWorkflow fails non-retryably naming timeZone on an invalid zone', async () => {
    const { day: _day, origin: _origin, ...daily } = day({ timeZone: 'Not/AZone' });
    const { cause, taskFailures } = await failure('dailyExportWorkflow', daily);
    expect(cause.type).toBe(INVALID_WORKFLOW_INPUT);
    expect(cause.message).toContain('invalid input: timeZone:');
    expect(cause.message).toContain('Not/AZone');
    expect(taskFailures).toBe(0);
  });

  // Input of the wrong shape altogether (found by a new-user run with `temporal workflow start
  // --input '{}'`): it must fail the same way, before any field is read.
  const chunkInput = {
    exportId: 'shape-check',
    chunk: { index: 0, begin: '2024-03-01 00:00:00', end: '2024-03-02 00:00:00' },
    timeZone: 'UTC',
    dataType: 'call',
    filters: {},
    options: DEFAULT_EXPORT_OPTIONS,
  };
  it.each([
    ['exportWorkflow', 'nothing', null, 'input'],
    ['exportWorkflow', 'a string', 'hello', 'input'],
    ['exportWorkflow', 'no request', {}, 'request'],
    [
      'exportWorkflow',
      'an unsafe export ID',
      { request: request({ exportId: '../../escape' }) },
      'request.exportId',
    ],
    ['chunkWorkflow', 'no chunk', { ...chunkInput, chunk: undefined }, 'chunk'],
    ['chunkWorkflow', 'nothing', null, 'input'],
    ['chunkWorkflow', 'no options', { ...chunkInput, options: undefined }, 'options'],
    ['dayExportWorkflow', 'nothing', null, 'input'],
    ['dailyExportWorkflow', 'nothing', null, 'input'],
    ['loadExportWorkflow', 'no export ID', {}, 'exportId'],
  ])('%s fails non-retryably on %s', async (workflowType, _what, input, field) => {
    const { cause, taskFailures } = await failure(workflowType, input);
    expect(cause.type).toBe(INVALID_WORKFLOW_INPUT);
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain(`invalid input: ${field}:`);
    expect(taskFailures).toBe(0);
  });
});
