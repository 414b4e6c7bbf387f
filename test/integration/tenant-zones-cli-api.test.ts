import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';
import type { ExportRequest } from '../../workflows/definitions';
import { RangeBeginKey, RangeEndKey } from '../../workflows/search-attributes';
import { startService, type ServiceProcess } from '../support/processes';

/**
 * With TENANTS_FILE, one export means one range however it is started: the CLI (a real
 * `ccfs-export` process, which has no SK) and the API (a real `api/main.ts` over HTTP) both cut days
 * in the tenant's own zone and both refuse a tenant the file does not name — for exports and for
 * daily schedules. No worker polls this test's task queue: what is compared is what each started.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = `token-${randomUUID()}`;
/** A tenant far from UTC and from TENANT_TIME_ZONE, so a wrong zone shows in every instant. */
const TENANT = 'acc0002';
const ZONE = 'America/New_York';

describe('tenant zones: CLI and API agree', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ccfs-tenant-zones-'));
  const taskQueue = `tenant-zones-${randomUUID()}`;
  let api: ServiceProcess;
  let apiUrl: string;
  let connection: Connection;
  let client: Client;
  let env: Record<string, string>;
  const workflowIds: string[] = [];
  const scheduleIds: string[] = [];

  beforeAll(async () => {
    const tenantsFile = join(dir, 'tenants.yaml');
    writeFileSync(
      tenantsFile,
      [
        'tenants:',
        '  acc0001: { ak: AK1, skEnv: ACC0001_SK, timeZone: Asia/Shanghai }',
        `  ${TENANT}: { ak: AK2, skEnv: ACC0002_SK, timeZone: ${ZONE} }`,
        '',
      ].join('\n'),
    );
    env = {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: taskQueue,
      TENANTS_FILE: tenantsFile,
      // The global zone the CLI used to apply to every tenant.
      TENANT_TIME_ZONE: 'UTC',
      OUTPUT_DIR: join(dir, 'out'),
    };
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    api = await startService('api', {
      ...env,
      ACC0001_SK: 'sk-one-of-the-zone-test',
      ACC0002_SK: 'sk-two-of-the-zone-test',
      CALLBACK_SECRET: 'callback-secret-of-the-zone-test',
      CCFS_BASE_URL: 'http://127.0.0.1:1',
      CALLBACK_BASE_URL: apiUrl,
      API_PORT: String(apiPort),
      API_HOST: '127.0.0.1',
      API_TOKENS: TOKEN,
    });
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  }, 120_000);

  afterAll(async () => {
    for (const id of scheduleIds)
      await client?.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    for (const id of workflowIds)
      await client?.workflow
        .getHandle(id)
        .terminate('test over')
        .catch(() => undefined);
    await api?.stop();
    await connection?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** `ccfs-export …` as a user runs it, with the test's environment and no SK at all. */
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['bin/ccfs-export.mjs', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });

  /** `ccfs-export export` of one day-range of `tenant`. */
  const cliExport = (
    exportId: string,
    tenant: string,
    range: { from: string; to: string },
    ...more: string[]
  ) =>
    cli([
      'export',
      '--export-id',
      exportId,
      '--from',
      range.from,
      '--to',
      range.to,
      '--type',
      'call',
      '--account-id',
      tenant,
      ...more,
    ]);
  /** `ccfs-export schedule create` of a paused daily schedule of `tenant`. */
  const cliSchedule = (scheduleId: string, tenant: string, ...more: string[]) =>
    cli([
      'schedule',
      'create',
      '--id',
      scheduleId,
      '--type',
      'call',
      '--at',
      '06:30',
      '--account-id',
      tenant,
      '--paused',
      ...more,
    ]);

  const apiCall = (method: string, path: string, body?: unknown) =>
    fetch(`${apiUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  /** What a started export workflow was given, and the instants its range stands for. */
  async function started(exportId: string): Promise<{ request: ExportRequest; begin?: Date; end?: Date }> {
    const handle = client.workflow.getHandle(`ccfs-export/${exportId}`);
    workflowIds.push(handle.workflowId);
    const history = await handle.fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const input = JSON.parse(Buffer.from(payload!.data!).toString('utf8')) as { request: ExportRequest };
    const attributes = (await handle.describe()).typedSearchAttributes;
    return { request: input.request, begin: attributes.get(RangeBeginKey), end: attributes.get(RangeEndKey) };
  }

  it("starts an export of a tenant in the tenant's zone, the same range from the CLI and the API", async () => {
    const range = { from: '2024-03-09 00:00:00', to: '2024-03-11 00:00:00' }; // across New York's DST change
    const viaApi = `zones-api-${randomUUID().slice(0, 8)}`;
    const viaCli = `zones-cli-${randomUUID().slice(0, 8)}`;
    const res = await apiCall('POST', '/exports', {
      exportId: viaApi,
      ...range,
      dataType: 'call',
      filters: { accountId: TENANT },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const run = cliExport(viaCli, TENANT, range, '--json');
    expect(run.status, run.stderr).toBe(0);

    const a = await started(viaApi);
    const c = await started(viaCli);
    expect(a.request.timeZone).toBe(ZONE);
    expect(c.request.timeZone).toBe(ZONE);
    expect({ ...c.request, exportId: viaApi, origin: 'api' }).toEqual(a.request);
    // 2024-03-09 00:00 in New York is 05:00 UTC; the end, after the spring-forward, 04:00 UTC.
    expect(a.begin?.toISOString()).toBe('2024-03-09T05:00:00.000Z');
    expect(a.end?.toISOString()).toBe('2024-03-11T04:00:00.000Z');
    expect([c.begin?.toISOString(), c.end?.toISOString()]).toEqual([
      a.begin?.toISOString(),
      a.end?.toISOString(),
    ]);
  });

  it('refuses an export of a tenant the tenants file does not name, from the CLI and the API alike', async () => {
    const exportId = `zones-unknown-${randomUUID().slice(0, 8)}`;
    const res = await apiCall('POST', '/exports', {
      exportId,
      from: '2024-03-01 00:00:00',
      to: '2024-03-02 00:00:00',
      dataType: 'call',
      filters: { accountId: 'acc0009' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: 'unknown_tenant',
      message: 'no tenant "acc0009" is configured',
    });
    const run = cliExport(exportId, 'acc0009', { from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('no tenant "acc0009" is configured');
    // Neither started anything.
    await expect(client.workflow.getHandle(`ccfs-export/${exportId}`).describe()).rejects.toThrow();
  });

  it("creates a tenant's daily schedule in the tenant's zone from the CLI and the API, and refuses an unknown tenant from both", async () => {
    const viaApi = `zones-api-${randomUUID().slice(0, 8)}`;
    const viaCli = `zones-cli-${randomUUID().slice(0, 8)}`;
    scheduleIds.push(viaApi, viaCli);
    const res = await apiCall('POST', '/schedules', {
      scheduleId: viaApi,
      dataType: 'call',
      at: '06:30',
      filters: { accountId: TENANT },
      paused: true,
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const run = cliSchedule(viaCli, TENANT, '--json');
    expect(run.status, run.stderr).toBe(0);
    const view = async (id: string) =>
      (await (await apiCall('GET', `/schedules/${id}`)).json()) as { timeZone: string; tenant: string };
    expect(await view(viaApi)).toMatchObject({ timeZone: ZONE, tenant: TENANT });
    expect(await view(viaCli)).toMatchObject({ timeZone: ZONE, tenant: TENANT });

    const unknownId = `zones-unknown-${randomUUID().slice(0, 8)}`;
    scheduleIds.push(unknownId);
    const refused = await apiCall('POST', '/schedules', {
      scheduleId: unknownId,
      dataType: 'call',
      at: '06:30',
      filters: { accountId: 'acc0009' },
      paused: true,
    });
    expect(refused.status).toBe(400);
    const cliRefused = cliSchedule(unknownId, 'acc0009');
    expect(cliRefused.status).toBe(1);
    expect(cliRefused.stderr).toContain('no tenant "acc0009" is configured');
    expect((await apiCall('GET', `/schedules/${unknownId}`)).status).toBe(404);
  });
});
