import { resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityDeps, CcfsApi } from '../activities';
import { OutputStore } from '../activities/output-store';
import { CcfsClient } from '../ccfs/client';
import type { CcfsConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import type { OutputPublisher } from '../lib/storage/publisher';
import { createS3Publisher } from '../lib/storage/s3';
import { callbackKeyFromConfig, Tenants } from '../lib/tenants';
import { Loader, parseKeySetting } from '../lib/loader/loader';

/** The PostgreSQL loader when LOAD_DATABASE_URL is set (issue 17); the URL stays inside the pool. */
export function loaderFromConfig(config: CcfsConfig): Loader | undefined {
  if (!config.LOAD_DATABASE_URL) return undefined;
  const call = parseKeySetting(config.LOAD_CDR_KEY);
  const record = parseKeySetting(config.LOAD_RECORD_KEY);
  return new Loader({
    databaseUrl: config.LOAD_DATABASE_URL.reveal(),
    keys: { ...(call && { call }), ...(record && { record }) },
  });
}

/** The S3 copy of the output when OUTPUT_S3_BUCKET is set. */
export function publisherFromConfig(config: CcfsConfig, logger: Logger): OutputPublisher | undefined {
  if (!config.OUTPUT_S3_BUCKET) return undefined;
  return createS3Publisher(
    {
      bucket: config.OUTPUT_S3_BUCKET,
      prefix: config.OUTPUT_S3_PREFIX,
      endpoint: config.OUTPUT_S3_ENDPOINT,
      region: config.OUTPUT_S3_REGION,
      forcePathStyle: config.OUTPUT_S3_FORCE_PATH_STYLE,
      partSizeMb: config.OUTPUT_S3_PART_SIZE_MB,
      queueSize: config.OUTPUT_S3_QUEUE_SIZE,
    },
    logger.child({ component: 's3' }),
  );
}

/**
 * The activities' dependencies from configuration: the only place an SK meets a CC-FS client. One
 * client per tenant, made on first use; an export of a tenant that is not configured fails at once.
 */
export function activityDepsFromConfig(
  config: CcfsConfig,
  logger: Logger,
  metrics?: Metrics,
  tenants = Tenants.fromConfig(config),
): ActivityDeps & { loader?: Loader } {
  const clients = new Map<string, CcfsApi>();
  const ccfsFor = (tenantId: string): CcfsApi => {
    const tenant = tenants.get(tenantId);
    if (!tenant)
      throw ApplicationFailure.nonRetryable(
        `no tenant "${tenantId}" is configured in this worker (TENANTS_FILE)`,
        'UnknownTenant',
      );
    let client = clients.get(tenant.id);
    if (!client) {
      client = new CcfsClient({
        baseUrl: tenant.baseUrl ?? config.CCFS_BASE_URL,
        credentials: { ak: tenant.ak, sk: tenant.sk.reveal() },
        caFile: config.CCFS_CA_FILE,
        insecureTls: config.CCFS_INSECURE_TLS,
        signedHeaders: config.CCFS_SIGNED_HEADERS,
        requestTimeoutMs: config.CCFS_REQUEST_TIMEOUT_MS,
        logger: logger.child({ component: 'ccfs-client', tenant: tenant.id }),
      });
      clients.set(tenant.id, client);
    }
    return client;
  };
  return {
    ccfs: ccfsFor,
    output: new OutputStore(resolve(config.OUTPUT_DIR)),
    callback: {
      baseUrl: config.CALLBACK_BASE_URL,
      key: callbackKeyFromConfig(config),
      routing: config.CALLBACK_ROUTING,
      mode: config.CALLBACK_MODE,
    },
    logger,
    metrics,
    publish: publisherFromConfig(config, logger),
    loader: loaderFromConfig(config),
  };
}
