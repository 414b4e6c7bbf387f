import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { Worker, type NativeConnection, type WorkerOptions, type WorkflowBundle } from '@temporalio/worker';
import { createCcfsActivities, createMainActivities, type ActivityDeps } from '../activities';
import type { Loader } from '../lib/loader/loader';
import { ccfsTaskQueue } from '../workflows/definitions';
import { WORKER_MAX_CACHED_WORKFLOWS } from './memory-settings';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
export const WORKFLOW_BUNDLE_PATH = fileURLToPath(new URL('../dist/workflow-bundle.js', import.meta.url));

export interface WorkerSettings {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** Server-enforced limit on CC-FS calls per second across every worker of the task queue. */
  ccfsCallsPerSecond: number;
  /** CC-FS calls (queries and downloads) one worker runs at once. */
  ccfsConcurrency: number;
  /** Use a prebuilt workflow bundle instead of bundling at start (production images). */
  workflowBundlePath?: string;
  /** A bundle already in memory (tests bundle once per file). */
  workflowBundle?: WorkflowBundle;
  /**
   * On shutdown (SIGTERM), how long running activities may finish; then they are cancelled and
   * fail, so Temporal retries them on another worker at once rather than after a timeout.
   */
  shutdownGraceTimeMs?: number;
}

/**
 * The two workers of one process: the main task queue runs workflows and file activities; the CC-FS
 * task queue runs the activities that call CC-FS, so Temporal can rate-limit them as a whole.
 */
export async function createWorkers(
  settings: WorkerSettings,
  deps: ActivityDeps & { loader?: Loader },
): Promise<Worker[]> {
  const bundlePath =
    settings.workflowBundlePath ??
    (existsSync(WORKFLOW_BUNDLE_PATH) && process.env.NODE_ENV === 'production'
      ? WORKFLOW_BUNDLE_PATH
      : undefined);
  const workflowSource: Pick<WorkerOptions, 'workflowsPath' | 'workflowBundle'> = settings.workflowBundle
    ? { workflowBundle: settings.workflowBundle }
    : bundlePath
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: WORKFLOWS_PATH };
  const grace = settings.shutdownGraceTimeMs ?? 0;
  const common = {
    connection: settings.connection,
    namespace: settings.namespace,
    shutdownGraceTime: grace,
    // An activity that ignores its cancellation must not keep the process alive for ever.
    shutdownForceTime: grace + 15_000,
  };
  const main = await Worker.create({
    ...common,
    ...workflowSource,
    taskQueue: settings.taskQueue,
    // Explicit: the SDK's default follows the heap limit, which the worker's memory settings lower.
    maxCachedWorkflows: WORKER_MAX_CACHED_WORKFLOWS,
    // The loader's activities are among them with or without a loader: without one loadChunk answers
    // `configured: false`, which is how a chunk workflow learns whether this deployment loads.
    activities: createMainActivities(deps),
  });
  const ccfs = await Worker.create({
    ...common,
    taskQueue: ccfsTaskQueue(settings.taskQueue),
    activities: createCcfsActivities(deps),
    maxTaskQueueActivitiesPerSecond: settings.ccfsCallsPerSecond,
    maxConcurrentActivityTaskExecutions: settings.ccfsConcurrency,
  });
  return [main, ccfs];
}

/** Runs workers until one stops or fails; a failure of one shuts the others down. */
export async function runWorkers(workers: Worker[]): Promise<void> {
  try {
    await Promise.all(
      workers.map((w) =>
        w.run().catch((err: unknown) => {
          for (const other of workers) if (other !== w && other.getState() === 'RUNNING') other.shutdown();
          throw err;
        }),
      ),
    );
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  }
}
