import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  type WorkflowBundle,
} from '@temporalio/worker';
import type { ActivityDeps, CcfsApi } from '../../activities';
import { OutputStore } from '../../activities/output-store';
import { createApp } from '../../api/app';
import { CcfsClient } from '../../ccfs/client';
import { callbackKey } from '../../lib/callback-token';
import type { ExportRecords } from '../../lib/export-records';
import { ExportService } from '../../lib/export-service';
import type { OutputPublisher } from '../../lib/storage/publisher';
import type { Logger } from '../../lib/logger';
import { Metrics } from '../../lib/metrics';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../../simulator/app';
import { createWorkers, runWorkers, WORKFLOWS_PATH } from '../../worker/create-workers';

export const TEST_AK = 'test-ak';
/** Distinctive, so a search of histories and logs for it cannot match by accident. */
export const TEST_SK = `sk-${randomUUID()}`;

let bundle: Promise<WorkflowBundle> | undefined;
/** Bundling takes seconds: once per test file. */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  return bundle;
}

export interface StackOptions {
  simulator?: Partial<SimulatorOptions>;
  /** Wraps the CC-FS client the activities use (to observe or delay calls). */
  wrapCcfs?: (ccfs: CcfsApi, sim: RunningSimulator) => CcfsApi;
  verifyCallbackSignature?: boolean;
  /** The worker's CALLBACK_MODE / CALLBACK_ROUTING (ActivityDeps.callback); defaults as in production. */
  workerCallback?: Partial<Pick<ActivityDeps['callback'], 'mode' | 'routing'>>;
  apiTokens?: string[];
  /** The durable record the API reads (lib/export-records.ts), built over the stack's output directory. */
  records?: (outputDir: string) => ExportRecords;
  /** The worker's shared copy of the output (ActivityDeps.publish), e.g. an S3Publisher. */
  publish?: OutputPublisher;
}

export interface Stack {
  sim: RunningSimulator;
  client: Client;
  exports: ExportService;
  apiUrl: string;
  outputDir: string;
  output: OutputStore;
  taskQueue: string;
  metrics: Metrics;
  /** Every log line the worker and the API wrote. */
  logs: string[];
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * The product as the tests run it: the simulator over real HTTP, the API on a random port, a worker
 * on a unique task queue, all against the run's real Temporal dev server, output in a temp dir.
 */
let runtimeInstalled = false;

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  if (!runtimeInstalled) {
    // Once per process (a Runtime cannot be installed twice): keep the SDK's INFO chatter out of test output.
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const address = inject('temporalAddress');
  const taskQueue = `test-${randomUUID()}`;
  const outputDir = mkdtempSync(join(tmpdir(), 'ccfs-out-'));
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  );
  const sim = await startSimulator({
    port: 0,
    accounts: [{ ak: TEST_AK, sk: TEST_SK }],
    seed: 7,
    callbackDelayMs: 50,
    callbackRetryIntervalMs: 300,
    ...options.simulator,
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const exports = new ExportService(client, {
    taskQueue,
    namespace: 'default',
    uiUrl: 'http://localhost:8233',
    ...(options.records && { records: options.records(outputDir) }),
  });
  const tokenKey = callbackKey(undefined, TEST_SK);
  const app = createApp({
    client,
    exports,
    taskQueue,
    tenantTimeZone: 'Asia/Shanghai',
    apiTokens: options.apiTokens ?? [],
    // Open only when the test gives no tokens, said explicitly (the API refuses by default).
    apiAuth: options.apiTokens?.length ? 'token' : 'none',
    callback: {
      tokenKey,
      verifySignature: options.verifyCallbackSignature ?? true,
      secretFor: (ak) => (ak === TEST_AK ? TEST_SK : undefined),
      maxSkewSeconds: 900,
    },
    logger: logger.child({ name: 'api' }),
    metrics,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const real = new CcfsClient({ baseUrl: sim.url, credentials: { ak: TEST_AK, sk: TEST_SK }, logger });
  const output = new OutputStore(outputDir);
  const deps: ActivityDeps = {
    ccfs: options.wrapCcfs ? options.wrapCcfs(real, sim) : real,
    output,
    callback: { baseUrl: apiUrl, key: tokenKey, ...options.workerCallback },
    logger: logger.child({ name: 'worker' }),
    metrics,
    ...(options.publish && { publish: options.publish }),
  };
  const nativeConnection = await NativeConnection.connect({ address });
  const workers = await createWorkers(
    {
      connection: nativeConnection,
      namespace: 'default',
      taskQueue,
      ccfsCallsPerSecond: 200,
      ccfsConcurrency: 20,
      workflowBundle: await workflowBundle(),
    },
    deps,
  );
  const running = runWorkers(workers);

  return {
    sim,
    client,
    exports,
    apiUrl,
    outputDir,
    output,
    taskQueue,
    metrics,
    logs,
    logger,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running.catch(() => undefined);
      await nativeConnection.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await connection.close();
      await sim.close();
      rmSync(outputDir, { recursive: true, force: true });
    },
  };
}
