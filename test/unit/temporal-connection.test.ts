import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal';

const files: Record<string, string> = {
  '/certs/client.pem': 'CERT',
  '/certs/client.key': 'KEY',
  '/certs/ca.pem': 'CA',
};
const readFile = (path: string): Buffer => {
  const text = files[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  return Buffer.from(text);
};
const options = (env: Record<string, string>) => temporalConnectionOptions(loadConfig(env, ''), readFile);
const text = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString() : undefined);

describe('Temporal connection options from TEMPORAL_* variables', () => {
  it('connects in plaintext to a self-hosted cluster given only TEMPORAL_ADDRESS', () => {
    expect(options({ TEMPORAL_ADDRESS: 'temporal:7233' })).toEqual({
      address: 'temporal:7233',
      tls: undefined,
    });
  });

  it('connects to Temporal Cloud with an API key over TLS with the system CAs', () => {
    const o = options({
      TEMPORAL_ADDRESS: 'us-east-1.aws.api.temporal.io:7233',
      TEMPORAL_API_KEY: 'key-123',
    });
    expect(o).toEqual({ address: 'us-east-1.aws.api.temporal.io:7233', tls: {}, apiKey: 'key-123' });
  });

  it('connects with mTLS from certificate files, a private CA and a server name', () => {
    const o = options({
      TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem',
      TEMPORAL_TLS_CLIENT_KEY_PATH: '/certs/client.key',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/certs/ca.pem',
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
    });
    const tls = o.tls as {
      clientCertPair?: { crt: Uint8Array; key: Uint8Array };
      serverRootCACertificate?: Uint8Array;
      serverNameOverride?: string;
    };
    expect(text(tls.clientCertPair?.crt)).toBe('CERT');
    expect(text(tls.clientCertPair?.key)).toBe('KEY');
    expect(text(tls.serverRootCACertificate)).toBe('CA');
    expect(tls.serverNameOverride).toBe('temporal.internal');
    expect(o).not.toHaveProperty('apiKey');
  });

  it('takes the PEM itself from the _DATA variables', () => {
    const o = options({
      TEMPORAL_TLS_CLIENT_CERT_DATA: 'CERT-DATA',
      TEMPORAL_TLS_CLIENT_KEY_DATA: 'KEY-DATA',
    });
    const tls = o.tls as { clientCertPair?: { crt: Uint8Array; key: Uint8Array } };
    expect(text(tls.clientCertPair?.crt)).toBe('CERT-DATA');
    expect(text(tls.clientCertPair?.key)).toBe('KEY-DATA');
  });

  it('turns TLS on with TEMPORAL_TLS=true alone, and off with TEMPORAL_TLS=false even with an API key', () => {
    expect(options({ TEMPORAL_TLS: 'true' }).tls).toEqual({});
    expect(options({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'k' })).toEqual({
      address: 'localhost:7233',
      tls: false,
      apiKey: 'k',
    });
  });

  it('names the variables of an incomplete or contradictory TLS setup', () => {
    expect(() => options({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem' })).toThrow(
      /TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH: mTLS needs both/,
    );
    expect(() =>
      options({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem', TEMPORAL_TLS_CLIENT_CERT_DATA: 'x' }),
    ).toThrow(/TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_DATA: set one, not both/);
    expect(() => options({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/certs/missing.pem' })).toThrow(
      /TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read \/certs\/missing\.pem \(ENOENT\)/,
    );
    expect(() =>
      options({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/certs/ca.pem' }),
    ).toThrow(/TEMPORAL_TLS: is false/);
  });

  it('treats variables that compose passes as empty strings as unset', () => {
    const config = loadConfig(
      { TEMPORAL_TLS: '', TEMPORAL_API_KEY: '', API_PORT: '', OUTPUT_S3_ENDPOINT: '', CCFS_AK: '' },
      '',
    );
    expect(config.API_PORT).toBe(3000);
    expect([config.TEMPORAL_TLS, config.TEMPORAL_API_KEY, config.OUTPUT_S3_ENDPOINT, config.CCFS_AK]).toEqual(
      [undefined, undefined, undefined, undefined],
    );
    expect(temporalConnectionOptions(config, readFile).tls).toBeUndefined();
  });

  it('keeps the client key and the API key out of the parsed configuration’s JSON', () => {
    const dump = JSON.stringify(
      loadConfig({ TEMPORAL_TLS_CLIENT_KEY_DATA: 'PRIVATE-KEY-PEM', TEMPORAL_API_KEY: 'api-key-xyz' }, ''),
    );
    expect(dump).not.toContain('PRIVATE-KEY-PEM');
    expect(dump).not.toContain('api-key-xyz');
  });
});
