import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, requireCcfs } from '../../lib/config';
import { tenantTimeZones, Tenants } from '../../lib/tenants';

/**
 * The CLI reads tenant zones without any SK (tenantTimeZones); the API has the tenants with their
 * secrets (Tenants.fromConfig). For every tenant label they must give the same zone, or both none.
 */

const dir = mkdtempSync(join(tmpdir(), 'ccfs-tenant-zones-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const withDefault = write(
  'with-default.yaml',
  'tenants:\n  acc0001: { ak: AK1, skEnv: SK_1, timeZone: Asia/Shanghai }\n  acc0002: { ak: AK2, sk: s2, timeZone: America/New_York }\ndefault: acc0002\n',
);
const withoutDefault = write(
  'without-default.json',
  JSON.stringify({ tenants: { acc0001: { ak: 'AK1', skEnv: 'SK_1', timeZone: 'Asia/Shanghai' } } }),
);
const labels = ['acc0001', 'acc0002', 'default', 'acc0009', '__proto__', 'constructor', 'toString'];

describe('tenantTimeZones', () => {
  it.each([
    ['a file with a default tenant', withDefault, {}],
    ['a file without one', withoutDefault, {}],
    ['a file without one, beside CCFS_AK/CCFS_SK', withoutDefault, { CCFS_AK: 'AK0', CCFS_SK: 'sk0' }],
    ['a file with a default, beside CCFS_AK/CCFS_SK', withDefault, { CCFS_AK: 'AK0', CCFS_SK: 'sk0' }],
  ])('gives every label the zone the API would use, with %s', (_what, path, legacy) => {
    const config = loadConfig(
      {
        TENANTS_FILE: path,
        TENANT_TIME_ZONE: 'Europe/Berlin',
        CALLBACK_SECRET: 'x'.repeat(16),
        CCFS_BASE_URL: 'https://h:1',
        ...legacy,
      },
      '',
    );
    const api = Tenants.fromConfig(requireCcfs(config), { SK_1: 'sk-1' });
    // No SK in this environment at all: the CLI's situation.
    const cli = tenantTimeZones(config);
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...labels), fc.string()), (label) => {
        expect(cli(label)).toBe(api.timeZoneOf(label));
      }),
    );
    for (const label of labels) expect(cli(label)).toBe(api.timeZoneOf(label));
  });

  it('gives every tenant TENANT_TIME_ZONE without a tenants file', () => {
    const zone = tenantTimeZones(loadConfig({ TENANT_TIME_ZONE: 'Asia/Tokyo' }, ''));
    expect([zone('default'), zone('acc0009')]).toEqual(['Asia/Tokyo', 'Asia/Tokyo']);
  });

  it('names the tenants file and the bad entry when the file is invalid', () => {
    const bad = write('bad.yaml', 'tenants:\n  acc0001: { ak: AK1, sk: s, timeZone: Mars/Base }\n');
    expect(() => tenantTimeZones(loadConfig({ TENANTS_FILE: bad }, ''))).toThrow(
      /invalid tenants in .*bad\.yaml:\n {2}tenants\.acc0001\.timeZone: must be an IANA time zone/,
    );
  });
});
