import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig, requireCcfs } from '../../lib/config';

const minimal = { CCFS_BASE_URL: 'https://10.0.0.1:28080/', CCFS_AK: 'ak', CCFS_SK: 'super-secret-sk' };

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(minimal, '');
    expect(config).toMatchObject({
      TEMPORAL_ADDRESS: 'localhost:7233',
      TEMPORAL_NAMESPACE: 'default',
      CCFS_BASE_URL: 'https://10.0.0.1:28080',
      API_PORT: 3000,
      OUTPUT_DIR: 'data/exports',
      TENANT_TIME_ZONE: 'UTC',
      CCFS_SIGNED_HEADERS: ['content-length', 'content-type', 'host'],
    });
  });

  it('names every missing and bad key', () => {
    expect(() =>
      loadConfig({ CCFS_BASE_URL: 'not a url', API_PORT: 'x', TENANT_TIME_ZONE: 'Mars/Olympus' }, ''),
    ).toThrow(/CCFS_BASE_URL: .*\n.*API_PORT: .*\n.*TENANT_TIME_ZONE: must be an IANA time zone/s);
    expect(() => requireCcfs(loadConfig({ CCFS_BASE_URL: 'https://h:1' }, ''))).toThrow(
      /CCFS_AK: is required but not set\n.*CCFS_SK: is required but not set/,
    );
  });

  it('keeps secrets out of JSON, string and inspect output', () => {
    const config = loadConfig({ ...minimal, API_TOKENS: 'tok-1,tok-2' }, '');
    const dumps = [JSON.stringify(config), String(config.CCFS_SK), inspect(config, { depth: 5 })];
    for (const dump of dumps) {
      expect(dump).not.toContain('super-secret-sk');
      expect(dump).not.toContain('tok-1');
    }
    expect(config.CCFS_SK?.reveal()).toBe('super-secret-sk');
  });
});
