import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { ConfigError } from '../lib/config';

/**
 * The API's listener. CC-FS calls an https callback URL, so the API can terminate TLS itself with a
 * certificate and key file (API_TLS_CERT_FILE, API_TLS_KEY_FILE); without them it serves plain
 * HTTP, for development or behind a TLS-terminating proxy.
 */

export interface ApiTlsFiles {
  certFile?: string;
  keyFile?: string;
}

export interface ApiServer {
  server: Server;
  protocol: 'http' | 'https';
}

function read(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    // The path is configuration, not a secret; the file's content never appears in a message.
    throw new ConfigError(
      `invalid configuration:\n  ${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** An HTTPS server when both files are set, HTTP when neither is; one without the other is a configuration error. */
export function createApiServer(app: RequestListener, tls: ApiTlsFiles): ApiServer {
  if (!tls.certFile && !tls.keyFile) return { server: createHttpServer(app), protocol: 'http' };
  if (!tls.certFile || !tls.keyFile) {
    const missing = tls.certFile ? 'API_TLS_KEY_FILE' : 'API_TLS_CERT_FILE';
    throw new ConfigError(
      `invalid configuration:\n  ${missing}: is required when ${missing === 'API_TLS_KEY_FILE' ? 'API_TLS_CERT_FILE' : 'API_TLS_KEY_FILE'} is set`,
    );
  }
  const cert = read('API_TLS_CERT_FILE', tls.certFile);
  const key = read('API_TLS_KEY_FILE', tls.keyFile);
  try {
    const server: Server = createHttpsServer({ cert, key, minVersion: 'TLSv1.2' }, app);
    return { server, protocol: 'https' };
  } catch (err) {
    // e.g. a key that does not match the certificate; OpenSSL's reason names no key material.
    throw new ConfigError(
      `invalid configuration:\n  API_TLS_CERT_FILE / API_TLS_KEY_FILE: ${(err as Error).message}`,
    );
  }
}
