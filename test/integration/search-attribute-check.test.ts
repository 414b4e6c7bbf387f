import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';
import { registerSearchAttributes } from '../../scripts/register-search-attributes';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { freshNamespace } from '../support/namespaces';
import { freePortPair, startService } from '../support/processes';
import { until } from '../support/until';

/**
 * On a cluster whose namespace lacks the Ccfs* search attributes, the worker and the API refuse to
 * start, naming every missing attribute and the command that registers them — instead of the first
 * export start or child start failing later with a gRPC error. Each test gets a fresh namespace on the
 * run's dev server (which registers the attributes only on `default`).
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('search attributes at start-up', () => {
  let connection: Connection;

  beforeAll(async () => {
    connection = await Connection.connect({ address: inject('temporalAddress') });
  });

  afterAll(async () => {
    await connection?.close();
  });

  const newNamespace = () => freshNamespace(connection, 'ccfs-sa-check');

  const baseEnv = async (namespace: string) => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: namespace,
    TEMPORAL_TASK_QUEUE: `sa-check-${randomUUID()}`,
    CCFS_BASE_URL: 'http://127.0.0.1:1',
    CCFS_AK: 'ak-of-the-check',
    CCFS_SK: 'sk-of-the-check',
    API_PORT: String(await freePort()),
    API_HOST: '127.0.0.1',
    API_AUTH: 'none',
    WORKER_METRICS_PORT: String(await freePortPair()),
    LOG_FORMAT: 'json',
  });

  const run = (script: string, env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      timeout: 90_000,
    });

  const expectRefusal = (result: ReturnType<typeof run>, namespace: string) => {
    expect(result.status, result.stdout + result.stderr).toBe(1);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES))
      expect(result.stderr).toContain(`${name} (${type})`);
    expect(result.stderr).toContain(`namespace ${namespace} lacks the search attributes`);
    expect(result.stderr).toContain('npm run register-search-attributes');
    // No stack trace: the message is the whole answer.
    expect(result.stderr).not.toMatch(/\n\s+at /);
  };

  it('the worker refuses to start on a namespace without them, naming each and the command', async () => {
    const namespace = await newNamespace();
    const result = run('worker/main.ts', await baseEnv(namespace));
    expectRefusal(result, namespace);
    expect(result.stdout).not.toContain('"msg":"worker started"');
  }, 120_000);

  it('the API refuses to start on a namespace without them, before it listens', async () => {
    const namespace = await newNamespace();
    const result = run('api/main.ts', await baseEnv(namespace));
    expectRefusal(result, namespace);
    expect(result.stdout).not.toContain('"msg":"api listening"');
  }, 120_000);

  it('names only what is missing, and starts once everything is registered', async () => {
    const namespace = await newNamespace();
    // One attribute short: only that one is named.
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        Object.entries(SEARCH_ATTRIBUTES)
          .filter(([name]) => name !== 'CcfsDay')
          .map(([name, type]) => [name, { Keyword: 2, Datetime: 6, KeywordList: 7 }[type]]),
      ),
    });
    await until(
      'attributes visible',
      async () => {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
        return Object.keys(customAttributes ?? {}).includes('CcfsResponseIds') ? true : undefined;
      },
      30_000,
    );
    const env = await baseEnv(namespace);
    const partial = run('api/main.ts', env);
    expect(partial.status).toBe(1);
    expect(partial.stderr).toContain('lacks the search attributes the workflows set: CcfsDay (Keyword).');

    await registerSearchAttributes(connection, namespace);
    const api = await startService('api', env);
    try {
      await api.waitForLog('api listening');
    } finally {
      await api.stop();
    }
  }, 180_000);
});
