import { Client, Connection } from '@temporalio/client';
import { callbackKey } from '../lib/callback-token';
import { loadConfig, requireCcfs } from '../lib/config';
import { ExportService } from '../lib/export-service';
import { createLogger } from '../lib/logger';
import { Metrics } from '../lib/metrics';
import { temporalConnectionOptions } from '../lib/temporal';
import { createApp } from './app';

/** The API process: management API and CC-FS callback endpoint, until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = requireCcfs(loadConfig());
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  // Lazy: the API starts (and answers 503 to callbacks) even while Temporal is down.
  const connection = Connection.lazy(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const sk = config.CCFS_SK.reveal();
  if (config.API_TOKENS.length === 0) logger.warn('API_TOKENS is not set: the management API accepts unauthenticated requests');
  const app = createApp({
    client,
    exports: new ExportService(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE, uiUrl: config.TEMPORAL_UI_URL }),
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    tenantTimeZone: config.TENANT_TIME_ZONE,
    apiTokens: config.API_TOKENS.map((t) => t.reveal()),
    callback: {
      tokenKey: callbackKey(config.CALLBACK_SECRET?.reveal(), sk),
      verifySignature: config.CCFS_VERIFY_CALLBACK_SIGNATURE,
      secretFor: (ak) => (ak === config.CCFS_AK ? sk : undefined),
      maxSkewSeconds: config.CCFS_CALLBACK_MAX_SKEW_SECONDS,
    },
    logger,
    metrics: new Metrics(),
  });
  const server = app.listen(config.API_PORT, config.API_HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`API_PORT ${config.API_PORT} is already in use; set API_PORT to a free port`) : err),
    );
  });
  logger.info({ port: config.API_PORT }, 'api listening');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('api shutting down: draining in-flight requests');
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
  await connection.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
