import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

/**
 * The floor under every chunk: how long one Temporal round trip takes on this machine with nothing
 * else in it. No-op activities one after the other, on the workflow's task queue (eligible for eager
 * dispatch) and on a second, rate-limited task queue (as the CC-FS activities are), and empty child
 * workflows one after the other. Run as a child process by bench/orchestration.ts; prints RESULT.
 */

const address = process.env.BENCH_TEMPORAL_ADDRESS!;
const steps = Number(process.env.BENCH_FLOOR_STEPS ?? 50);
Runtime.install({ logger: new DefaultLogger('WARN') });
const connection = await NativeConnection.connect({ address });
const taskQueue = `floor-${randomUUID().slice(0, 8)}`;
const activities = { noop: async () => {} };
const main = await Worker.create({
  connection,
  taskQueue,
  workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)),
  activities,
});
const other = await Worker.create({
  connection,
  taskQueue: `${taskQueue}-other`,
  activities,
  maxTaskQueueActivitiesPerSecond: 1000,
});
const running = Promise.all([main.run(), other.run()]);
const client = new Client({ connection: await Connection.connect({ address }) });

async function timed(type: string, args: unknown[]): Promise<number> {
  const t0 = performance.now();
  await client.workflow.execute(type, {
    taskQueue,
    workflowId: `${taskQueue}-${type}-${randomUUID().slice(0, 6)}`,
    args,
  });
  return performance.now() - t0;
}

// Warm both paths first.
await timed('activitiesWorkflow', [{ steps: 3 }]);
await timed('activitiesWorkflow', [{ steps: 3, taskQueue: `${taskQueue}-other` }]);
await timed('childrenWorkflow', [{ count: 3 }]);
const sameQueue = (await timed('activitiesWorkflow', [{ steps }])) / steps;
const otherQueue = (await timed('activitiesWorkflow', [{ steps, taskQueue: `${taskQueue}-other` }])) / steps;
const child = (await timed('childrenWorkflow', [{ count: steps }])) / steps;
main.shutdown();
other.shutdown();
await running;
await connection.close();
process.stdout.write(
  `RESULT ${JSON.stringify({ steps, activitySameQueueMs: sameQueue, activityOtherQueueMs: otherQueue, childWorkflowMs: child })}\n`,
);
process.exit(0);
