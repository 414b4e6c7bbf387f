import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportWorkflowId } from '../../workflows/definitions';
import type { StartedExport } from '../../lib/export-service';
import { testRequest } from '../support/exports';
import { startStack, type Stack } from '../support/stack';

/** Policy: starting the same export ID twice — at once or later, by API or by service — yields one export. */
describe('idempotent start', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function runsOf(exportId: string): Promise<number> {
    let n = 0;
    for await (const _ of stack.client.workflow.list({
      query: `WorkflowId = '${exportWorkflowId(exportId)}'`,
    }))
      n++;
    return n;
  }

  it('starts one export when ExportService.start is called twice at once, and again after it finished', async () => {
    const request = testRequest({ from: '2024-03-01 00:00:00', to: '2024-03-07 00:00:00' });
    const [a, b] = await Promise.all([stack.exports.start(request), stack.exports.start(request)]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(a.runId).toBe(b.runId);

    const result = await stack.exports.result(request.exportId);
    expect(result.state).toBe('completed');
    const again = await stack.exports.start(request);
    expect(again).toMatchObject({ created: false, runId: a.runId });
    expect(await runsOf(request.exportId)).toBe(1);
    // Two chunks, requested once each.
    expect(stack.sim.simulator.inspect().queries).toHaveLength(2);
  });

  it('answers 201 then 200 with the same run to two POST /exports with one exportId', async () => {
    const before = stack.sim.simulator.inspect().queries.length;
    const exportId = `idem-${Date.now().toString(36)}`;
    const body = JSON.stringify({
      exportId,
      from: '2024-04-01 00:00:00',
      to: '2024-04-04 00:00:00',
      dataType: 'call_record',
      options: { callbackTimeoutSeconds: 20, retryInitialIntervalSeconds: 0.2 },
    });
    const post = () =>
      fetch(`${stack.apiUrl}/exports`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const answers = await Promise.all([post(), post()]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 201]);
    const [x, y] = (await Promise.all(answers.map((r) => r.json()))) as StartedExport[];
    expect(x!.runId).toBe(y!.runId);

    expect((await stack.exports.result(exportId)).state).toBe('completed');
    const late = await post();
    expect(late.status).toBe(200);
    expect(await late.json()).toMatchObject({ exportId, created: false, runId: x!.runId });
    expect(await runsOf(exportId)).toBe(1);
    expect(stack.sim.simulator.inspect().queries.length - before).toBe(1);
  });
});
