import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { OutputStore } from '../../activities/output-store';
import { createApp } from '../../api/app';
import { CcfsClient } from '../../ccfs/client';
import { freePort, startDevServer, type DevServer } from '../../dev/temporal-server';
import { callbackKey } from '../../lib/callback-token';
import { ExportService } from '../../lib/export-service';
import { silentLogger } from '../../lib/logger';
import { Metrics } from '../../lib/metrics';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import { createWorkers, runWorkers } from '../../worker/create-workers';
import {
  chunkProgressQuery,
  chunkWorkflowId,
  exportWorkflowId,
  type ExportRequest,
} from '../../workflows/definitions';
import { testRequest } from '../support/exports';
import { TEST_AK, TEST_SK, workflowBundle } from '../support/stack';

/**
 * What an operator sees in the Temporal UI, checked in a real browser (Debian's chromium, driven by
 * playwright-core; nothing is downloaded). The UI needs a dev server started with its UI, so this
 * file runs its own small stack instead of the suite's shared headless server.
 *
 * Screenshots go to test-output/screenshots; with UPDATE_SCREENSHOTS=1 they replace the ones the
 * README shows in docs/screenshots.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(
  ROOT,
  process.env.UPDATE_SCREENSHOTS === '1' ? 'docs/screenshots' : 'test-output/screenshots',
);
const MAX_SCREENSHOT_BYTES = 300 * 1024;

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError ? ` (${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The text of the page and of every frame in it (the UI renders Markdown in sandboxed iframes). */
async function visibleText(page: Page): Promise<string> {
  const parts: string[] = [];
  for (const frame of page.frames()) {
    parts.push(
      await frame
        .locator('body')
        .innerText()
        .catch(() => ''),
    );
  }
  return parts.join('\n');
}

/** Waits until every expected string is on the page (the UI loads in steps), then returns the text. */
async function waitForText(
  page: Page,
  expected: Array<string | RegExp>,
  timeoutMs = 20_000,
): Promise<string> {
  let text = '';
  try {
    return await until(
      `UI text ${expected.join(', ')}`,
      async () => {
        text = await visibleText(page);
        return expected.every((e) => (typeof e === 'string' ? text.includes(e) : e.test(text)))
          ? text
          : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    const missing = expected.filter((e) => !(typeof e === 'string' ? text.includes(e) : e.test(text)));
    throw new Error(`${(err as Error).message}; missing ${missing.join(' | ')} in:\n${text.slice(0, 3000)}`);
  }
}

/** The cells of the first Markdown table in the "Current Details" frame, row by row. */
async function currentDetailsItems(page: Page): Promise<string[]> {
  return (await page.frameLocator('#user-metadata-current-details').locator('li').allInnerTexts()).map((t) =>
    t.trim(),
  );
}

async function tableCells(rows: Locator): Promise<string[][]> {
  const out: string[][] = [];
  for (const row of await rows.all())
    out.push((await row.locator('th,td').allInnerTexts()).map((t) => t.trim()));
  return out;
}

async function shoot(page: Page, name: string, height?: number): Promise<string> {
  const path = join(SHOTS, name);
  const viewport = page.viewportSize();
  await page.screenshot({
    path,
    clip: height && viewport ? { x: 0, y: 0, width: viewport.width, height } : undefined,
  });
  return path;
}

describe('Temporal UI for operators', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ccfs-ui-'));
  let server: DevServer;
  let sim: RunningSimulator;
  let connection: Connection;
  let nativeConnection: NativeConnection;
  let api: Server;
  let workers: Worker[] = [];
  let running: Promise<void> | undefined;
  let exports: ExportService;
  let browser: Browser;
  let page: Page;
  let uiUrl: string;
  const completed: ExportRequest = testRequest({
    exportId: 'cdr-2024-03',
    from: '2024-03-01 00:00:00',
    to: '2024-03-10 00:00:00',
    filters: { accountId: 'acc0001' },
  });
  // Two chunks in flight, an hour to wait for a callback that never comes and to probe for its file
  // (which is there): it stays running until cancelled.
  const waiting: ExportRequest = testRequest({
    exportId: 'cdr-2024-04',
    from: '2024-04-01 00:00:00',
    to: '2024-04-10 00:00:00',
    filters: { accountId: 'acc0001' },
    options: { maxChunksInFlight: 2, callbackTimeoutSeconds: 3600, probeIntervalSeconds: 3600 },
  });

  const runId = async (workflowId: string) =>
    (await exports.client.workflow.getHandle(workflowId).describe()).runId;
  const workflowPage = async (workflowId: string, tab: string) =>
    `${uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}/${await runId(workflowId)}/${tab}`;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)`);
    mkdirSync(SHOTS, { recursive: true });
    Runtime.install({ logger: new DefaultLogger('WARN') });

    const uiPort = await freePort();
    server = await startDevServer({
      cli: inject('temporalCli'),
      port: await freePort(),
      uiPort,
      dbFile: join(dir, 'temporal.db'),
      logFile: join(dir, 'temporal.log'),
    });
    uiUrl = server.uiUrl!;
    sim = await startSimulator({
      port: 0,
      accounts: [{ ak: TEST_AK, sk: TEST_SK }],
      seed: 11,
      callbackDelayMs: 50,
    });
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    const taskQueue = 'ccfs-export';
    exports = new ExportService(client, { taskQueue, namespace: 'default', uiUrl });
    const tokenKey = callbackKey(undefined, TEST_SK);
    const app = createApp({
      client,
      exports,
      taskQueue,
      tenantTimeZone: 'Asia/Shanghai',
      apiTokens: [],
      apiAuth: 'none',
      callback: {
        tokenKey,
        verifySignature: true,
        secretFor: (ak) => (ak === TEST_AK ? TEST_SK : undefined),
        maxSkewSeconds: 900,
      },
      logger: silentLogger,
    });
    api = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    workers = await createWorkers(
      {
        connection: nativeConnection,
        namespace: 'default',
        taskQueue,
        ccfsCallsPerSecond: 100,
        ccfsConcurrency: 10,
        workflowBundle: await workflowBundle(),
      },
      {
        ccfs: new CcfsClient({
          baseUrl: sim.url,
          credentials: { ak: TEST_AK, sk: TEST_SK },
          logger: silentLogger,
        }),
        output: new OutputStore(join(dir, 'exports')),
        callback: { baseUrl: `http://127.0.0.1:${(api.address() as AddressInfo).port}`, key: tokenKey },
        logger: silentLogger,
        metrics: new Metrics({ defaultMetrics: false }),
      },
    );
    running = runWorkers(workers);

    await exports.start(completed);
    expect((await exports.result(completed.exportId)).state).toBe('completed');
    sim.simulator.setFaults({ dropCallback: 1 });
    await exports.start(waiting);
    const chunk0 = exports.client.workflow.getHandle(chunkWorkflowId(waiting.exportId, 0));
    await until('chunk 0 waiting for its callback', async () =>
      (await chunk0.query(chunkProgressQuery)).phase === 'waiting-for-callback' ? true : undefined,
    );
    // Visibility is eventually consistent: wait until the UI's list can see both exports.
    await until('both exports in visibility', async () =>
      (await exports.list({ tenant: 'acc0001' })).length === 2 ? true : undefined,
    );

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({
      viewport: { width: 1400, height: 900 },
      timezoneId: 'Asia/Shanghai',
      locale: 'en-US',
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (exports) {
      await exports.cancel(waiting.exportId).catch(() => undefined);
      await exports.client.workflow
        .getHandle(exportWorkflowId(waiting.exportId))
        .result()
        .catch(() => undefined);
    }
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await running?.catch(() => undefined);
    await nativeConnection?.close();
    if (api)
      await new Promise<void>((r) => {
        api.close(() => r());
        api.closeAllConnections();
      });
    await connection?.close();
    await sim?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the summary, the live table of chunk states and the search attributes of a running export', async () => {
    const workflowId = exportWorkflowId(waiting.exportId);
    await page.goto(await workflowPage(workflowId, 'user-metadata'));
    await waitForText(page, [
      'call_record export 2024-04-01 00:00:00 → 2024-04-10 00:00:00 (Asia/Shanghai), tenant acc0001',
      'requested by test',
      'Export cdr-2024-04: running',
      // Both slots taken: the export says what it waits for, as each chunk reported it.
      'Waiting for 2 chunks:',
      '#0 2024-04-01 → 04-04 waiting for the CC-FS callback for responseId',
      '#1 2024-04-04 → 04-07 waiting for the CC-FS callback for responseId',
    ]);
    const items = await currentDetailsItems(page);
    expect(items.slice(0, 6)).toEqual([
      'pending: 1',
      'running: 2',
      'verified: 0',
      'empty: 0',
      'failed: 0',
      'cancelled: 0',
    ]);
    expect(items.slice(6)).toHaveLength(2);
    for (const item of items.slice(6))
      expect(item).toMatch(
        /^#[01] 2024-04-0[14] → 04-0[47] waiting for the CC-FS callback for responseId [0-9a-f]{32} since \d\d:\d\d UTC \(request 1 of 4\)$/,
      );
    const shot = await shoot(page, 'export-running.png');

    await page.goto(await workflowPage(workflowId, 'search-attributes'));
    await waitForText(page, [
      '"CcfsExportId": "cdr-2024-04"',
      '"CcfsTenant": "acc0001"',
      '"CcfsExportState": "running"',
      '"CcfsKind": "export"',
      '"CcfsDataType": "call_record"',
      '"CcfsRangeBegin": "2024-03-31T16:00:00.000Z"',
      '"CcfsRangeEnd": "2024-04-09T16:00:00.000Z"',
    ]);
    expect(statSync(shot).size).toBeLessThan(MAX_SCREENSHOT_BYTES);
  });

  it('shows a finished export as completed, with every chunk verified', async () => {
    const workflowId = exportWorkflowId(completed.exportId);
    await page.goto(await workflowPage(workflowId, 'user-metadata'));
    await waitForText(page, [
      'call_record export 2024-03-01 00:00:00 → 2024-03-10 00:00:00 (Asia/Shanghai), tenant acc0001',
      'Export cdr-2024-03: completed',
    ]);
    expect(await currentDetailsItems(page)).toEqual([
      'pending: 0',
      'running: 0',
      'verified: 3',
      'empty: 0',
      'failed: 0',
      'cancelled: 0',
    ]);
    const shot = await shoot(page, 'export-completed.png');

    await page.goto(await workflowPage(workflowId, 'search-attributes'));
    await waitForText(page, [
      '"CcfsExportId": "cdr-2024-03"',
      '"CcfsExportState": "completed"',
      '"CcfsTenant": "acc0001"',
    ]);
    expect(statSync(shot).size).toBeLessThan(MAX_SCREENSHOT_BYTES);
  });

  it('shows what a chunk waits for and since when, and names its activity and its wait in the timeline', async () => {
    const workflowId = chunkWorkflowId(waiting.exportId, 0);
    const { responseIds } = await exports.client.workflow.getHandle(workflowId).query(chunkProgressQuery);
    expect(responseIds).toHaveLength(1);
    await page.goto(await workflowPage(workflowId, 'user-metadata'));
    await waitForText(page, [
      'cdr-2024-04 chunk #0: call_record 2024-04-01 00:00:00 → 2024-04-04 00:00:00',
      'Chunk #0 of export cdr-2024-04, Asia/Shanghai.',
      `Waiting for the CC-FS callback for responseId ${responseIds[0]} since`,
      `_${responseIds[0]}.zip every 3600 s`,
    ]);
    expect(await currentDetailsItems(page)).toEqual([
      'requests: 1 of 4',
      `responseIds: ${responseIds[0]}`,
      'callbacks: 0 received, 0 rejected',
      'probes: 0',
      'download attempts: 0',
    ]);
    const details = await shoot(page, 'chunk-waiting.png');

    // Taller, so the timeline below the input fits in the picture.
    await page.setViewportSize({ width: 1400, height: 1100 });
    await page.goto(await workflowPage(workflowId, 'timeline'));
    await waitForText(page, [
      'queryBillData 2024-04-01 00:00 → 2024-04-04 00:00, request 1',
      `waiting for the CC-FS callback for responseId ${responseIds[0]}`,
    ]);
    const timeline = await shoot(page, 'chunk-timeline.png');
    await page.setViewportSize({ width: 1400, height: 900 });

    await page.goto(await workflowPage(workflowId, 'search-attributes'));
    await waitForText(page, [
      '"CcfsExportId": "cdr-2024-04"',
      '"CcfsKind": "chunk"',
      '"CcfsRangeEnd": "2024-04-03T16:00:00.000Z"',
    ]);
    for (const shot of [details, timeline]) expect(statSync(shot).size).toBeLessThan(MAX_SCREENSHOT_BYTES);
  });

  it('filters the workflow list by search attributes, and shows them as columns', async () => {
    const list = (query: string) =>
      `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
    await page.goto(list('CcfsExportState="running"'));
    const runningOnly = await waitForText(page, ['ccfs-export/cdr-2024-04', 'CcfsExportState = "running"']);
    expect(runningOnly).not.toContain('ccfs-export/cdr-2024-03');

    // What an operator does once: add the export's search attributes as columns of the list.
    await page.setViewportSize({ width: 1640, height: 900 });
    await page.goto(list('CcfsKind="export" AND CcfsTenant="acc0001"'));
    await waitForText(page, ['ccfs-export/cdr-2024-04', 'ccfs-export/cdr-2024-03']);
    await page.getByTestId('workflows-summary-table-configuration-button').click();
    for (const column of ['Run ID', 'Type', 'End'])
      await page.getByTestId(`orderable-list-item-${column}-remove-button`).click();
    for (const column of ['CcfsExportState', 'CcfsTenant', 'CcfsRangeBegin', 'CcfsRangeEnd']) {
      await page.getByTestId(`orderable-list-item-${column}-add-button`).click();
    }
    await page.getByTestId('drawer-close-button').click();
    await page.reload();
    const rows = await until('list rows with the state column', async () => {
      const cells = await tableCells(page.locator('table tbody tr'));
      return cells.length === 2 && cells.every((r) => r.some((c) => c === 'running' || c === 'completed'))
        ? cells
        : undefined;
    });
    const byId = Object.fromEntries(
      rows.map((r): [string, string[]] => [r.find((c) => c.startsWith('ccfs-export/')) ?? '', r]),
    );
    expect(byId['ccfs-export/cdr-2024-04']).toEqual(expect.arrayContaining(['running', 'acc0001']));
    expect(byId['ccfs-export/cdr-2024-03']).toEqual(expect.arrayContaining(['completed', 'acc0001']));
    // Range instants shown in the browser's zone, here the tenant's: the wall-clock range asked for.
    expect(byId['ccfs-export/cdr-2024-04']!.join(' ')).toMatch(
      /Apr 1, 2024, 12:00:00.00 AM GMT\+8 Apr 10, 2024, 12:00:00.00 AM GMT\+8/,
    );
    const shot = await shoot(page, 'export-list.png', 420);
    expect(statSync(shot).size).toBeLessThan(MAX_SCREENSHOT_BYTES);
  });
});
