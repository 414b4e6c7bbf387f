import { Client, Connection } from '@temporalio/client';
import { loadConfig, requireCcfs } from '../lib/config';
import { ExportService } from '../lib/export-service';
import { createLogger } from '../lib/logger';
import { Metrics } from '../lib/metrics';
import { temporalConnectionOptions } from '../lib/temporal';
import { callbackKeyFromConfig, Tenants } from '../lib/tenants';
import { createApp } from './app';
import { createApiServer } from './tls';

/** The API process: management API and CC-FS callback endpoint, until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = requireCcfs(loadConfig());
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  // Lazy: the API starts (and answers 503 to callbacks) even while Temporal is down.
  const connection = Connection.lazy(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const tenants = Tenants.fromConfig(config);
  if (config.API_TOKENS.length === 0)
    logger.warn('API_TOKENS is not set: the management API accepts unauthenticated requests');
  const app = createApp({
    client,
    exports: new ExportService(client, {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      namespace: config.TEMPORAL_NAMESPACE,
      uiUrl: config.TEMPORAL_UI_URL,
    }),
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    // One tenant: every export uses it (TENANT_TIME_ZONE); a tenants file: each tenant's own zone.
    tenantTimeZone: config.TENANTS_FILE ? (tenant) => tenants.timeZoneOf(tenant) : config.TENANT_TIME_ZONE,
    apiTokens: config.API_TOKENS.map((t) => t.reveal()),
    callback: {
      tokenKey: callbackKeyFromConfig(config),
      verifySignature: config.CCFS_VERIFY_CALLBACK_SIGNATURE,
      // Each tenant's CC-FS signs its callbacks with that tenant's AK/SK.
      secretFor: (ak) => tenants.secretForAk(ak),
      maxSkewSeconds: config.CCFS_CALLBACK_MAX_SKEW_SECONDS,
      // What CC-FS was told: signatures are also checked against it (gateways), and the fixed route lives on its path.
      publicBaseUrl: config.CALLBACK_BASE_URL,
      routing: config.CALLBACK_ROUTING,
    },
    logger,
    metrics: new Metrics(),
  });
  const { server, protocol } = createApiServer(app, {
    certFile: config.API_TLS_CERT_FILE,
    keyFile: config.API_TLS_KEY_FILE,
  });
  server.listen(config.API_PORT, config.API_HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`API_PORT ${config.API_PORT} is already in use; set API_PORT to a free port`)
          : err,
      ),
    );
  });
  logger.info({ port: config.API_PORT, protocol, tenants: tenants.ids() }, 'api listening');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info(
    { graceSeconds: config.API_SHUTDOWN_GRACE_SECONDS },
    'api shutting down: draining in-flight requests',
  );
  await new Promise<void>((resolve) => {
    // No new connections; idle keep-alive ones close now, busy ones after their response.
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), config.API_SHUTDOWN_GRACE_SECONDS * 1000).unref();
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
