import { resolve } from 'node:path';
import type { ActivityDeps } from '../activities';
import { OutputStore } from '../activities/output-store';
import { CcfsClient } from '../ccfs/client';
import { callbackKey } from '../lib/callback-token';
import type { CcfsConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';

/** The activities' dependencies from configuration: the only place the SK meets the CC-FS client. */
export function activityDepsFromConfig(config: CcfsConfig, logger: Logger, metrics?: Metrics): ActivityDeps {
  return {
    ccfs: new CcfsClient({
      baseUrl: config.CCFS_BASE_URL,
      credentials: { ak: config.CCFS_AK, sk: config.CCFS_SK.reveal() },
      caFile: config.CCFS_CA_FILE,
      insecureTls: config.CCFS_INSECURE_TLS,
      signedHeaders: config.CCFS_SIGNED_HEADERS,
      requestTimeoutMs: config.CCFS_REQUEST_TIMEOUT_MS,
      logger: logger.child({ component: 'ccfs-client' }),
    }),
    output: new OutputStore(resolve(config.OUTPUT_DIR)),
    callback: { baseUrl: config.CALLBACK_BASE_URL, key: callbackKey(config.CALLBACK_SECRET?.reveal(), config.CCFS_SK.reveal()) },
    logger,
    metrics,
  };
}
