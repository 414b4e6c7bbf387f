import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { startDevServer, freePort, portIsFree, type DevServer } from '../../dev/temporal-server';
import { ExportService } from '../../lib/export-service';
import { WORKFLOWS_PATH } from '../../worker/create-workers';
import { WORKER_MEMORY_ENV, workerNodeOptions } from '../../worker/memory-settings';
// @ts-expect-error -- plain ESM helper shared with the bootstrap (Node built-ins only, no types)
import { ensureTemporalCli } from '../../scripts/temporal-cli.mjs';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../simulator/app';
import { RssSampler, spawnTs, type TsProcess } from './proc';

export const BENCH_AK = 'bench-ak';
/** Fresh per run: a search of logs for it cannot match by accident. */
export const BENCH_SK = `sk-bench-${randomBytes(12).toString('hex')}`;

/** A headless, in-memory Temporal dev server for this bench run only. */
export async function startTemporal(dir: string): Promise<DevServer> {
  const cli = (ensureTemporalCli as (log?: (l: string) => void) => string)((l) => console.error(l));
  return startDevServer({
    cli,
    port: await freePort(),
    logFile: join(dir, 'temporal.log'),
    readyTimeoutMs: 120_000,
  });
}

export interface SimRequest {
  path: string;
  /** Epoch ms of arrival, for lining up with workflow histories. */
  at: number;
  /** Time the simulator spent on the request: arrival until the last byte was handed to the socket. */
  ms: number;
}

export interface BenchSimulator {
  url: string;
  simulator: Simulator;
  requests: SimRequest[];
  /** Total time spent inside the simulator's handlers, by endpoint suffix. */
  busyMs(pathEndsWith: string): number;
  close(): Promise<void>;
}

/** The simulator over real HTTP, with each request's time inside the simulator recorded. */
export async function startBenchSimulator(options: Partial<SimulatorOptions>): Promise<BenchSimulator> {
  const simulator = createSimulator({ accounts: [{ ak: BENCH_AK, sk: BENCH_SK }], seed: 9, ...options });
  const requests: SimRequest[] = [];
  const server: Server = createServer((req, res) => {
    const at = Date.now();
    const t0 = performance.now();
    const path = req.url ?? '';
    res.once('close', () => requests.push({ path, at, ms: performance.now() - t0 }));
    simulator.app(req, res);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    simulator,
    requests,
    busyMs: (suffix) => requests.filter((r) => r.path.endsWith(suffix)).reduce((n, r) => n + r.ms, 0),
    async close() {
      await simulator.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * Bundles the workflows once per bench run, as `npm run build` does for production images; workers
 * load it through WORKFLOW_BUNDLE_PATH instead of running webpack inside the worker at start.
 */
export async function buildWorkflowBundle(path: string): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  writeFileSync(path, code);
}

/** Two adjacent free ports: the worker serves its metrics on one and the SDK's on the next. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 65535 && (await portIsFree(p + 1, '127.0.0.1'))) return p;
  }
}

export interface ProductOptions {
  temporalAddress: string;
  /** Write CPU profiles of the worker and the API under `dir/profiles/<label>-<process>/` (node --cpu-prof). */
  profile?: string;
  simulatorUrl: string;
  dir: string;
  /** A prebuilt workflow bundle (production); without it the worker bundles at start, as `npm start` does. */
  workflowBundle?: string;
  /** Extra worker environment (CCFS_MAX_CALLS_PER_SECOND, CCFS_MAX_CONCURRENT_CALLS, …). */
  workerEnv?: NodeJS.ProcessEnv;
  /** More worker environment, from the command line (applied last). */
  extraWorkerEnv?: NodeJS.ProcessEnv;
  apiEnv?: NodeJS.ProcessEnv;
  /** Node flags of the worker (e.g. --cpu-prof). */
  workerNodeArgs?: string[];
  apiNodeArgs?: string[];
}

export interface Product {
  worker: TsProcess;
  api: TsProcess;
  apiUrl: string;
  taskQueue: string;
  outputDir: string;
  client: Client;
  exports: ExportService;
  /** RSS of the worker and the API, polled every 50 ms from start to stop. */
  workerRss: RssSampler;
  apiRss: RssSampler;
  /** RSS of the worker once it was polling, before any work. */
  workerIdleRss: number;
  /** The worker's main-thread V8 heap and external memory, from its /metrics (prom-client defaults). */
  workerMemory(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/**
 * The product as an operator runs it: `worker/main.ts` and `api/main.ts` as their own processes,
 * configured only through the environment, against the bench's Temporal server and simulator.
 */
export async function startProduct(options: ProductOptions): Promise<Product> {
  const taskQueue = `bench-${randomUUID().slice(0, 8)}`;
  const outputDir = join(options.dir, `out-${taskQueue}`);
  mkdirSync(outputDir, { recursive: true });
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const profileArgs = (who: string) =>
    // One file per thread (main thread = tid 0, then the loader and workflow threads), so a directory each.
    options.profile
      ? ['--cpu-prof', '--cpu-prof-dir', join(options.dir, 'profiles', `${options.profile}-${who}`)]
      : [];
  const common: NodeJS.ProcessEnv = {
    TEMPORAL_ADDRESS: options.temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: taskQueue,
    CCFS_BASE_URL: options.simulatorUrl,
    CCFS_AK: BENCH_AK,
    CCFS_SK: BENCH_SK,
    CALLBACK_BASE_URL: apiUrl,
    OUTPUT_DIR: outputDir,
    TENANT_TIME_ZONE: 'UTC',
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
  };
  const api = spawnTs(
    'api',
    'api/main.ts',
    { ...common, API_PORT: String(apiPort), API_HOST: '127.0.0.1', ...options.apiEnv },
    join(options.dir, `api-${taskQueue}.log`),
    [...(options.apiNodeArgs ?? []), ...profileArgs('api')],
  );
  const metricsPort = await freePortPair();
  const worker = spawnTs(
    'worker',
    'worker/main.ts',
    {
      ...common,
      // Started as the product starts it (dev/launcher.ts, the image, compose): its memory settings.
      ...WORKER_MEMORY_ENV,
      NODE_OPTIONS: workerNodeOptions(),
      WORKER_METRICS_PORT: String(metricsPort),
      // A worker that bundles at start (webpack inside the worker) stays ~130 MB larger for its lifetime.
      ...(options.workflowBundle && { WORKFLOW_BUNDLE_PATH: options.workflowBundle }),
      ...options.workerEnv,
      ...options.extraWorkerEnv,
    },
    join(options.dir, `worker-${taskQueue}.log`),
    [...(options.workerNodeArgs ?? []), ...profileArgs('worker')],
  );
  const workerRss = new RssSampler(worker.pid).start();
  const apiRss = new RssSampler(api.pid).start();
  try {
    await Promise.all([
      api.waitForLine((l) => l.includes('"api listening"')),
      worker.waitForLine((l) => l.includes('"worker started"')),
    ]);
  } catch (err) {
    await Promise.all([api.stop(), worker.stop()]);
    throw err;
  }
  const connection = await Connection.connect({ address: options.temporalAddress });
  const client = new Client({ connection, namespace: 'default' });
  const exports = new ExportService(client, {
    taskQueue,
    namespace: 'default',
    uiUrl: 'http://localhost:8233',
  });
  // Give the worker a moment to settle after bundling before calling its memory "idle".
  await new Promise((r) => setTimeout(r, 1000));
  const workerIdleRss = workerRss.sample();
  return {
    worker,
    api,
    apiUrl,
    taskQueue,
    outputDir,
    client,
    exports,
    workerRss,
    apiRss,
    workerIdleRss,
    async workerMemory() {
      const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
      const out: Record<string, number> = {};
      for (const name of [
        'nodejs_heap_size_used_bytes',
        'nodejs_heap_size_total_bytes',
        'nodejs_external_memory_bytes',
        'process_resident_memory_bytes',
      ]) {
        const m = new RegExp(`^\\w*${name} (\\S+)`, 'm').exec(text);
        if (m) out[name] = Number(m[1]);
      }
      return out;
    },
    async stop() {
      workerRss.stop();
      apiRss.stop();
      await Promise.all([worker.stop(), api.stop()]);
      await connection.close();
    },
  };
}
