import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from '@temporalio/client';
import type { Config } from './config';

/** Connection settings shared by the worker's NativeConnection and the API's client Connection. */
export function temporalConnectionOptions(config: Config): Pick<ConnectionOptions, 'address' | 'tls'> & { apiKey?: string } {
  const mtls = config.TEMPORAL_TLS_CERT_PATH && config.TEMPORAL_TLS_KEY_PATH;
  const tls =
    mtls || config.TEMPORAL_TLS_CA_PATH || config.TEMPORAL_API_KEY
      ? {
          serverNameOverride: config.TEMPORAL_TLS_SERVER_NAME,
          serverRootCACertificate: config.TEMPORAL_TLS_CA_PATH ? readFileSync(config.TEMPORAL_TLS_CA_PATH) : undefined,
          clientCertPair: mtls
            ? { crt: readFileSync(config.TEMPORAL_TLS_CERT_PATH!), key: readFileSync(config.TEMPORAL_TLS_KEY_PATH!) }
            : undefined,
        }
      : undefined;
  return {
    address: config.TEMPORAL_ADDRESS,
    tls,
    apiKey: config.TEMPORAL_API_KEY?.reveal(),
  };
}
