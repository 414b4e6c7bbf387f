import { executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';

/** Workflows that do nothing but Temporal round trips, to measure the floor under every chunk. */

interface Noop {
  noop(): Promise<void>;
}

/** `steps` no-op activities one after the other, on the workflow's own task queue or on another. */
export async function activitiesWorkflow(input: { steps: number; taskQueue?: string }): Promise<void> {
  const { noop } = proxyActivities<Noop>({
    startToCloseTimeout: '10 seconds',
    ...(input.taskQueue && { taskQueue: input.taskQueue }),
  });
  for (let i = 0; i < input.steps; i++) await noop();
}

export async function emptyWorkflow(): Promise<void> {
  // Nothing: its cost is starting and completing a child.
}

/** `count` empty children one after the other. */
export async function childrenWorkflow(input: { count: number }): Promise<void> {
  for (let i = 0; i < input.count; i++)
    await executeChild(emptyWorkflow, { workflowId: `${workflowInfo().workflowId}/child-${i}` });
}
