import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TLSConfig } from '@temporalio/client';
import { ConfigError, type Config } from './config';

type TemporalSettings = Pick<
  Config,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_TLS'
  | 'TEMPORAL_TLS_CLIENT_CERT_PATH'
  | 'TEMPORAL_TLS_CLIENT_CERT_DATA'
  | 'TEMPORAL_TLS_CLIENT_KEY_PATH'
  | 'TEMPORAL_TLS_CLIENT_KEY_DATA'
  | 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'
  | 'TEMPORAL_TLS_SERVER_CA_CERT_DATA'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_API_KEY'
>;

/**
 * Connection settings shared by the worker's NativeConnection and the API's client Connection, from
 * the variables Temporal's own environment configuration uses:
 * - self-hosted without TLS: TEMPORAL_ADDRESS only;
 * - mTLS (self-hosted or Temporal Cloud): TEMPORAL_TLS_CLIENT_CERT_PATH + TEMPORAL_TLS_CLIENT_KEY_PATH
 *   (or the `_DATA` variants holding the PEM), optionally TEMPORAL_TLS_SERVER_CA_CERT_PATH and
 *   TEMPORAL_TLS_SERVER_NAME;
 * - Temporal Cloud with an API key: TEMPORAL_API_KEY (TLS with the system's CAs is implied).
 *
 * Why not `@temporalio/envconfig` (1.24.0 exists and reads these very names): it maps them without
 * checking them — a client certificate without its key silently drops mTLS, an unreadable `_PATH`
 * surfaces as a bare ENOENT, TEMPORAL_TLS=false beside certificates is accepted, `yes`/`no` read as
 * false, and an empty variable (compose passes `${NAME:-}`) counts as set — and it also reads
 * `~/.config/temporalio/temporal.toml` by default, so a developer's profile would silently change the
 * cluster or TLS of a process. Each of those is a ConfigError naming the key here; the resulting
 * options are the ones envconfig's `toClientOptions` builds (API key ⇒ TLS unless TEMPORAL_TLS=false).
 */
export function temporalConnectionOptions(
  config: TemporalSettings,
  readFile: (path: string) => Buffer = (p) => readFileSync(p),
): Pick<ConnectionOptions, 'address' | 'tls'> & { apiKey?: string } {
  const pem = (data: string | undefined, path: string | undefined, key: string): Buffer | undefined => {
    if (data !== undefined && path !== undefined)
      throw new ConfigError(`invalid configuration:\n  ${key}_PATH, ${key}_DATA: set one, not both`);
    if (data !== undefined) return Buffer.from(data);
    if (path === undefined) return undefined;
    try {
      return readFile(path);
    } catch (err) {
      throw new ConfigError(
        `invalid configuration:\n  ${key}_PATH: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  };
  const crt = pem(
    config.TEMPORAL_TLS_CLIENT_CERT_DATA,
    config.TEMPORAL_TLS_CLIENT_CERT_PATH,
    'TEMPORAL_TLS_CLIENT_CERT',
  );
  const key = pem(
    config.TEMPORAL_TLS_CLIENT_KEY_DATA?.reveal(),
    config.TEMPORAL_TLS_CLIENT_KEY_PATH,
    'TEMPORAL_TLS_CLIENT_KEY',
  );
  if ((crt === undefined) !== (key === undefined)) {
    throw new ConfigError(
      'invalid configuration:\n  TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH: mTLS needs both the client certificate and its key',
    );
  }
  const ca = pem(
    config.TEMPORAL_TLS_SERVER_CA_CERT_DATA,
    config.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
    'TEMPORAL_TLS_SERVER_CA_CERT',
  );
  const apiKey = config.TEMPORAL_API_KEY?.reveal();

  const anyTls =
    crt !== undefined ||
    ca !== undefined ||
    config.TEMPORAL_TLS_SERVER_NAME !== undefined ||
    apiKey !== undefined;
  const enabled = config.TEMPORAL_TLS ?? anyTls;
  if (!enabled && (crt !== undefined || ca !== undefined)) {
    throw new ConfigError(
      'invalid configuration:\n  TEMPORAL_TLS: is false, but TLS certificates are configured',
    );
  }
  const withKey = apiKey !== undefined ? { apiKey } : {};
  // TEMPORAL_TLS=false with an API key is for a local plaintext proxy: the SDK would turn TLS on by itself.
  if (!enabled)
    return { address: config.TEMPORAL_ADDRESS, tls: apiKey !== undefined ? false : undefined, ...withKey };
  const tls: TLSConfig = {};
  if (config.TEMPORAL_TLS_SERVER_NAME) tls.serverNameOverride = config.TEMPORAL_TLS_SERVER_NAME;
  if (ca) tls.serverRootCACertificate = ca;
  if (crt && key) tls.clientCertPair = { crt, key };
  return { address: config.TEMPORAL_ADDRESS, tls, ...withKey };
}
