import type {
  ActivityInput,
  Next,
  WorkflowInterceptorsFactory,
  WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';

/**
 * Workflow interceptor for tests that kill workers: caps every activity's start-to-close timeout
 * and heartbeat timeout, so the work of a SIGKILLed worker is retried elsewhere in seconds rather
 * than after the production timeouts (minutes). Bundled into the test's workflow bundle only
 * (`workflowInterceptorModules`); the product's workflows are unchanged.
 */
const START_TO_CLOSE = '10 seconds';
const HEARTBEAT = '3 seconds';

class ShortActivityTimeouts implements WorkflowOutboundCallsInterceptor {
  async scheduleActivity(
    input: ActivityInput,
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>,
  ): Promise<unknown> {
    const options = { ...input.options, startToCloseTimeout: START_TO_CLOSE };
    if (options.heartbeatTimeout !== undefined) options.heartbeatTimeout = HEARTBEAT;
    return next({ ...input, options });
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ outbound: [new ShortActivityTimeouts()] });
