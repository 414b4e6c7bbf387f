import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { ActivityDeps } from '../../activities';
import { OutputStore } from '../../activities/output-store';
import { createApp } from '../../api/app';
import { CcfsClient } from '../../ccfs/client';
import { callbackKey, type CallbackRouting } from '../../lib/callback-token';
import { ExportService } from '../../lib/export-service';
import { Metrics } from '../../lib/metrics';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../../simulator/app';
import { createWorkers, runWorkers } from '../../worker/create-workers';
import { startGateway, type Gateway } from './gateway-proxy';
import { TEST_AK, TEST_SK, workflowBundle } from './stack';

/**
 * The product as a real installation wires its callbacks: like `startStack`, but the API knows the
 * public CALLBACK_BASE_URL and the routing (CALLBACK_ROUTING), and a prefix-stripping, Host-rewriting
 * gateway may sit between CC-FS (the simulator) and the API. The API listens before it is built, so
 * its public URL can name the gateway in front of it.
 */
export interface CallbackStackOptions {
  simulator?: Partial<SimulatorOptions>;
  routing?: CallbackRouting;
  /** A gateway in front of the API, e.g. `{ prefix: '/gw' }`. */
  gateway?: { prefix: string; forwardedHeaders?: boolean };
  /** CALLBACK_BASE_URL from the API's and the gateway's URLs; default the gateway's URL, else the API's. */
  publicUrl?: (urls: { api: string; gateway?: string }) => string;
}

export interface CallbackStack {
  sim: RunningSimulator;
  client: Client;
  exports: ExportService;
  apiUrl: string;
  /** CALLBACK_BASE_URL as the worker sends it and the API verifies against. */
  publicUrl: string;
  gateway?: Gateway;
  output: OutputStore;
  metrics: Metrics;
  logs: string[];
  stop(): Promise<void>;
}

let runtimeInstalled = false;

export async function startCallbackStack(options: CallbackStackOptions = {}): Promise<CallbackStack> {
  if (!runtimeInstalled) {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // Installed already by startStack in this process.
    }
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
    // Its own seed: responseIds derive from it, and a fixed URL routes by responseId across every
    // chunk the shared dev server has seen (real CC-FS responseIds are UUIDs, unique).
    seed: randomUUID(),
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
  });
  const tokenKey = callbackKey(undefined, TEST_SK);

  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gateway = options.gateway ? await startGateway({ ...options.gateway, upstream: apiUrl }) : undefined;
  const publicUrl = options.publicUrl?.({ api: apiUrl, gateway: gateway?.url }) ?? gateway?.url ?? apiUrl;
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
      publicBaseUrl: publicUrl,
      routing: options.routing ?? 'token',
    },
    logger: logger.child({ name: 'api' }),
    metrics,
  });
  server.on('request', app);

  const output = new OutputStore(outputDir);
  const deps: ActivityDeps = {
    ccfs: new CcfsClient({ baseUrl: sim.url, credentials: { ak: TEST_AK, sk: TEST_SK }, logger }),
    output,
    callback: { baseUrl: publicUrl, key: tokenKey, routing: options.routing ?? 'token', mode: 'callback' },
    logger: logger.child({ name: 'worker' }),
    metrics,
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
    publicUrl,
    gateway,
    output,
    metrics,
    logs,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running.catch(() => undefined);
      await nativeConnection.close();
      await gateway?.close();
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

/** The value of one counter series from the metrics registry (0 when absent). */
export async function counterValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}
