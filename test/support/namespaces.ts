import { randomUUID } from 'node:crypto';
import type { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { until } from './until';

/**
 * Registers a new namespace on the run's dev server (one day of retention) and waits until it answers.
 * It has none of the custom search attributes: the dev server registers those on `default` only.
 */
export async function freshNamespace(connection: Connection, prefix = 'ccfs-test'): Promise<string> {
  const namespace = `${prefix}-${randomUUID().slice(0, 8)}`;
  await connection.workflowService.registerNamespace({
    namespace,
    workflowExecutionRetentionPeriod: msToTs(86_400_000),
  });
  await until(
    `namespace ${namespace}`,
    async () =>
      (await connection.operatorService.listSearchAttributes({ namespace }).catch(() => undefined))
        ? true
        : undefined,
    30_000,
  );
  return namespace;
}
