import { mkdtempSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePortPair, startService, writeWorkflowBundle, type ServiceProcess } from '../support/processes';

/**
 * Policy: the worker's `/metrics` (which tenants export what, how much) listens on loopback unless
 * `WORKER_METRICS_HOST` says otherwise, and serves the worker's own counters — the ones the API's
 * `/metrics` does not have.
 */
const external = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe.skipIf(external === undefined)('worker metrics listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ccfs-wm-'));
  const workers: ServiceProcess[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    env = {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: `wm-${Date.now().toString(36)}`,
      CCFS_BASE_URL: 'http://127.0.0.1:9',
      CCFS_AK: 'ak',
      CCFS_SK: 'sk-worker-metrics-test-0123456789',
      OUTPUT_DIR: join(dir, 'out'),
      WORKFLOW_BUNDLE_PATH: await writeWorkflowBundle(dir),
    };
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reachable = (host: string, port: number) =>
    fetch(`http://${host}:${port}/metrics`).then(
      async (r) => ({ ok: r.ok, text: await r.text() }),
      () => ({ ok: false, text: '' }),
    );

  it('listens on loopback by default, with the worker counters', async () => {
    const port = await freePortPair();
    workers.push(await startService('worker', { ...env, WORKER_METRICS_PORT: String(port) }));
    const local = await reachable('127.0.0.1', port);
    expect(local.ok).toBe(true);
    expect(local.text).toContain('ccfs_export_download_bytes_total');
    expect(local.text).not.toContain('ccfs_export_callbacks_total');
    expect((await reachable(external!, port)).ok).toBe(false);
  });

  it('listens on every interface with WORKER_METRICS_HOST=0.0.0.0', async () => {
    const port = await freePortPair();
    workers.push(
      await startService(
        'worker',
        { ...env, WORKER_METRICS_PORT: String(port), WORKER_METRICS_HOST: '0.0.0.0' },
        'worker-any',
      ),
    );
    expect((await reachable(external!, port)).ok).toBe(true);
  });
});
