import { connectClientServices } from '../lib/client-services';
import { ConfigError, loadConfig, requireCcfs } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { Metrics } from '../lib/metrics';
import { requireSearchAttributes, SearchAttributesMissingError } from '../lib/search-attribute-check';
import { callbackKeyFromConfig, Tenants } from '../lib/tenants';
import { createApp } from './app';
import { createApiServer } from './tls';

/**
 * The management API's authentication: API_TOKENS, or — only with API_AUTH=none said explicitly — none.
 * Both at once contradict each other and stop the API with both names.
 */
function managementAuth(
  config: { API_TOKENS: Array<{ reveal(): string }>; API_AUTH: 'token' | 'none' },
  logger: Logger,
): { apiTokens: string[]; apiAuth: 'token' | 'none' } {
  const apiTokens = config.API_TOKENS.map((t) => t.reveal());
  if (config.API_AUTH === 'none' && apiTokens.length > 0)
    throw new ConfigError(
      'invalid configuration:\n  API_AUTH, API_TOKENS: API_AUTH=none opens the management API, yet API_TOKENS is set; unset one',
    );
  if (config.API_AUTH === 'none')
    logger.warn('API_AUTH=none: the management API accepts unauthenticated requests (development only)');
  else if (apiTokens.length === 0)
    logger.warn(
      'API_TOKENS is not set: every management request is refused (401); set API_TOKENS, or API_AUTH=none for an open development API',
    );
  return { apiTokens, apiAuth: config.API_AUTH };
}

/**
 * Checks the namespace's search attributes once Temporal answers: missing ones stop the API (exit 1)
 * with their names and the command that registers them. While Temporal is down the API keeps serving
 * (callbacks answer 503 so CC-FS retries) and the check waits for it.
 */
async function checkSearchAttributes(
  connection: Parameters<typeof requireSearchAttributes>[0],
  namespace: string,
  logger: Logger,
  stopped: () => boolean,
): Promise<void> {
  for (let attempt = 0; !stopped(); attempt++) {
    try {
      const result = await requireSearchAttributes(connection, namespace);
      if (!result.checked)
        logger.warn(
          { reason: result.reason },
          'the server does not let this client list search attributes: not checked (npm run register-search-attributes registers them)',
        );
      return;
    } catch (err) {
      if (err instanceof SearchAttributesMissingError) throw err;
      if (attempt === 0)
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'cannot check the namespace search attributes yet (Temporal unreachable?); checking again until it answers',
        );
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** The API process: management API and CC-FS callback endpoint, until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = requireCcfs(loadConfig());
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  // Lazy: the API starts (and answers 503 to callbacks) even while Temporal is down.
  const services = await connectClientServices(config, { lazy: true });
  const { client, connection } = services;
  const tenants = Tenants.fromConfig(config);
  const app = createApp({
    client,
    exports: services.exports,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    // The composition root's zones: one tenant (TENANT_TIME_ZONE) or each tenant's own, as the CLI.
    tenantTimeZone: services.tenantTimeZone,
    ...managementAuth(config, logger),
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
  // Refuse to start when Temporal answers at once and the namespace lacks attributes; when it does not
  // answer within a few seconds, serve anyway and let the check finish in the background.
  let stopping = false;
  const checked = checkSearchAttributes(connection, config.TEMPORAL_NAMESPACE, logger, () => stopping);
  const early = await Promise.race([
    checked.then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    ),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), 3000).unref()),
  ]);
  if (early instanceof Error) {
    await connection.close();
    throw early;
  }
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
  let refusal: Error | undefined;
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    checked.catch((err: unknown) => {
      refusal = err instanceof Error ? err : new Error(String(err));
      resolve();
    });
  });
  stopping = true;
  if (refusal) {
    server.close();
    server.closeAllConnections();
    await connection.close();
    throw refusal;
  }
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
