import { ApplicationFailure } from '@temporalio/workflow';
import { INVALID_WORKFLOW_INPUT, type InputProblem } from '../domain/input-checks';

/**
 * Fails the run when its input has a problem (domain/input-checks.ts): a non-retryable
 * `ApplicationFailure` of type `InvalidWorkflowInput` naming the field, instead of the plain error a
 * missing or malformed field would throw later — which fails only the workflow task, retried forever.
 * Called before a workflow's first command, so it changes nothing for valid input.
 */
export function refuseInvalidInput(problem: InputProblem | undefined): void {
  if (!problem) return;
  throw ApplicationFailure.create({
    type: INVALID_WORKFLOW_INPUT,
    message: `invalid input: ${problem.field}: ${problem.problem}`,
    nonRetryable: true,
    details: [problem],
  });
}
