import { createServer } from 'node:http';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { loadConfig, requireCcfs } from '../lib/config';
import { createLogger } from '../lib/logger';
import { Metrics } from '../lib/metrics';
import { temporalConnectionOptions } from '../lib/temporal';
import { requireSearchAttributes } from '../lib/search-attribute-check';
import { PinoTemporalLogger } from '../lib/temporal-logger';
import { activityDepsFromConfig } from './activity-deps';
import { createWorkers, runWorkers } from './create-workers';

/** The worker process: hosts the workflows and activities until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = requireCcfs(loadConfig());
  const logger = createLogger({ name: 'worker', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const sdkMetricsPort = config.WORKER_METRICS_PORT + 1;
  Runtime.install({
    logger: new PinoTemporalLogger(logger.child({ component: 'temporal-sdk' })),
    telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${sdkMetricsPort}` } } },
  });
  const metrics = new Metrics({ role: 'worker' });
  // One /metrics for both: the product's counters, then the SDK's own (served by core on the next port).
  const metricsServer = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    void (async () => {
      try {
        const own = await metrics.registry.metrics();
        // Without the SDK's part the product's counters are still worth serving.
        const sdk = await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`)
          .then((r) => r.text())
          .catch(() => '');
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(`${own}\n${sdk}`);
      } catch (err) {
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'metrics could not be collected',
        );
        res.writeHead(500).end();
      }
    })();
  });
  const metricsHost = config.WORKER_METRICS_HOST;
  metricsServer.listen(config.WORKER_METRICS_PORT, metricsHost);

  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  // Before any worker polls: a namespace without the Ccfs* attributes would fail every export start
  // and child start with a gRPC error; refuse to start instead, naming them and the command to run.
  try {
    const checked = await requireSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
    if (!checked.checked)
      logger.warn(
        { reason: checked.reason },
        'the server does not let this client list search attributes: not checked (npm run register-search-attributes registers them)',
      );
  } catch (err) {
    metricsServer.close();
    await connection.close();
    throw err;
  }
  const workers = await createWorkers(
    {
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      ccfsCallsPerSecond: config.CCFS_MAX_CALLS_PER_SECOND,
      ccfsConcurrency: config.CCFS_MAX_CONCURRENT_CALLS,
      workflowBundlePath: config.WORKFLOW_BUNDLE_PATH,
      shutdownGraceTimeMs: config.WORKER_SHUTDOWN_GRACE_SECONDS * 1000,
    },
    activityDepsFromConfig(config, logger, metrics),
  );
  logger.info(
    {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      namespace: config.TEMPORAL_NAMESPACE,
      address: config.TEMPORAL_ADDRESS,
      metricsPort: config.WORKER_METRICS_PORT,
      metricsHost,
      pid: process.pid,
    },
    'worker started',
  );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () =>
      logger.info(
        { signal, graceSeconds: config.WORKER_SHUTDOWN_GRACE_SECONDS },
        'shutting down: running activities may finish within the grace period',
      ),
    );
  }
  try {
    // The Runtime turns SIGINT/SIGTERM into a graceful shutdown of every worker.
    await runWorkers(workers);
  } finally {
    await connection.close();
    metricsServer.close();
    logger.info('worker stopped');
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
