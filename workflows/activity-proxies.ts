import { proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { CcfsActivities, MainActivities } from '../activities';
import { ccfsTaskQueue } from './definitions';

/**
 * Activity options without a task queue: each helper below names its own, so a proxy's type and the
 * queue it schedules on cannot disagree (a CC-FS activity scheduled on the main queue would never
 * run: no worker there registers it).
 */
export type QueueActivityOptions = ActivityOptions & { taskQueue?: never };

/**
 * The CC-FS activities (requestChunk, downloadChunk), scheduled on `ccfsTaskQueue(<the workflow's
 * task queue>)`, the queue whose worker registers exactly `createCcfsActivities`. Call inside a
 * workflow function (it reads `workflowInfo()`). Per-call `executeWithOptions` overrides merge into
 * these options, so the queue stays unless an override names another.
 */
export function proxyCcfsActivities(options: QueueActivityOptions) {
  return proxyActivities<CcfsActivities>({ ...options, taskQueue: ccfsTaskQueue(workflowInfo().taskQueue) });
}

/**
 * The main task queue's activities (file records, manifest, loader), scheduled on the workflow's own
 * task queue (the SDK's default, as before the split: same commands, same histories), whose worker
 * registers exactly `createMainActivities`. Safe at module level.
 */
export function proxyMainActivities(options: QueueActivityOptions) {
  return proxyActivities<MainActivities>(options);
}
