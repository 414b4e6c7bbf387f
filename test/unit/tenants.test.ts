import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, requireCcfs } from '../../lib/config';
import { callbackKeyFromConfig, Tenants } from '../../lib/tenants';

const dir = mkdtempSync(join(tmpdir(), 'ccfs-tenants-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const skFile = file('acc2.sk', 'sk-from-file-2\n');
const yaml = `
tenants:
  acc0001:
    ak: AK1
    sk: sk-inline-1
    timeZone: Asia/Shanghai
  acc0002:
    ak: AK2
    skFile: ${skFile}
    timeZone: Europe/Berlin
    baseUrl: https://ccfs-eu.example:28080/
  acc0003:
    ak: AK3
    skEnv: ACC3_SK
    timeZone: UTC
default: acc0001
`;

describe('tenants file', () => {
  it('maps each tenant to its AK, SK (inline, file or environment), zone and base URL', () => {
    const tenants = Tenants.load(file('tenants.yaml', yaml), { ACC3_SK: 'sk-from-env-3' });
    expect(tenants.ids()).toEqual(['acc0001', 'acc0002', 'acc0003']);
    expect(tenants.require('acc0002')).toMatchObject({
      ak: 'AK2',
      timeZone: 'Europe/Berlin',
      baseUrl: 'https://ccfs-eu.example:28080',
    });
    expect(tenants.require('acc0001').sk.reveal()).toBe('sk-inline-1');
    expect(tenants.require('acc0002').sk.reveal()).toBe('sk-from-file-2');
    expect(tenants.require('acc0003').sk.reveal()).toBe('sk-from-env-3');
    expect(tenants.timeZoneOf('acc0003')).toBe('UTC');
  });

  it('verifies callbacks by AK with that tenant’s SK only', () => {
    const tenants = Tenants.load(file('tenants-ak.yaml', yaml), { ACC3_SK: 'sk-from-env-3' });
    expect(tenants.secretForAk('AK2')).toBe('sk-from-file-2');
    expect(tenants.secretForAk('AK3')).toBe('sk-from-env-3');
    expect(tenants.secretForAk('AK9')).toBeUndefined();
  });

  it('gives exports without an accountId the tenant named by `default`', () => {
    const tenants = Tenants.load(file('tenants-default.yaml', yaml), { ACC3_SK: 'x' });
    expect(tenants.get('default')?.id).toBe('acc0001');
    expect(tenants.get('acc9999')).toBeUndefined();
    expect(() => tenants.require('acc9999')).toThrow('no tenant "acc9999" is configured');
  });

  it('reads the same structure from JSON', () => {
    const path = file(
      'tenants.json',
      JSON.stringify({ tenants: { acc1: { ak: 'A', sk: 's', timeZone: 'Asia/Tokyo' } } }),
    );
    expect(Tenants.load(path).timeZoneOf('acc1')).toBe('Asia/Tokyo');
  });

  it('names every bad field of the file', () => {
    const path = file(
      'bad.yaml',
      `tenants:
  acc1: { ak: A, timeZone: Mars/Olympus }
  acc2: { ak: B, sk: x, skEnv: B_SK, timeZone: UTC }
  "bad id": { ak: C, sk: y, timeZone: UTC }
  acc4: { ak: D, sk: z, timeZone: UTC, password: nope }
`,
    );
    let message = '';
    try {
      Tenants.load(path);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('tenants.acc1.timeZone: must be an IANA time zone');
    expect(message).toMatch(/tenants\.acc1: needs exactly one of sk, skFile, skEnv/);
    expect(message).toMatch(/tenants\.acc2: needs exactly one of sk, skFile, skEnv/);
    expect(message).toContain('tenants.bad id: Invalid key');
    expect(message).toMatch(/tenants\.acc4: .*password/);
    expect(() =>
      Tenants.load(
        file('bad-default.yaml', 'tenants:\n  acc1: { ak: A, sk: s, timeZone: UTC }\ndefault: acc9\n'),
      ),
    ).toThrow('default: names no tenant of this file ("acc9")');
  });

  it('refuses one AK with two different SKs, and says which SK source is missing without showing any SK', () => {
    const path = file(
      'clash.yaml',
      `tenants:
  acc1: { ak: SAME, sk: secret-one, timeZone: UTC }
  acc2: { ak: SAME, sk: secret-two, timeZone: UTC }
  acc3: { ak: C, skEnv: NOT_SET_ANYWHERE, timeZone: UTC }
  acc4: { ak: D, skFile: ${join(dir, 'missing.sk')}, timeZone: UTC }
`,
    );
    let message = '';
    try {
      Tenants.load(path, {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('tenants.acc2.ak: tenant acc1 has the same AK with another SK');
    expect(message).toContain('tenants.acc3.skEnv: environment variable NOT_SET_ANYWHERE is not set');
    expect(message).toContain('tenants.acc4.skFile: cannot read');
    expect(message).not.toContain('secret-one');
    expect(message).not.toContain('secret-two');
  });

  it('keeps every SK out of JSON and inspect output', () => {
    const tenants = Tenants.load(file('tenants-dump.yaml', yaml), { ACC3_SK: 'sk-from-env-3' });
    for (const dump of [
      JSON.stringify(tenants),
      inspect(tenants, { depth: 6 }),
      JSON.stringify(tenants.require('acc0002')),
    ]) {
      expect(dump).not.toMatch(/sk-inline-1|sk-from-file-2|sk-from-env-3/);
    }
  });
});

describe('tenants from the configuration', () => {
  const base = { CCFS_BASE_URL: 'https://ccfs:28080' };

  it('uses CCFS_AK/CCFS_SK for every export when there is no tenants file', () => {
    const tenants = Tenants.fromConfig(
      loadConfig({ ...base, CCFS_AK: 'AK', CCFS_SK: 'SK', TENANT_TIME_ZONE: 'Asia/Shanghai' }, ''),
    );
    expect(tenants.get('acc-anything')).toMatchObject({ id: 'default', ak: 'AK', timeZone: 'Asia/Shanghai' });
    expect(tenants.get('default')?.sk.reveal()).toBe('SK');
  });

  it('adds CCFS_AK/CCFS_SK as tenant `default` beside a file that names no default', () => {
    const path = file('no-default.yaml', 'tenants:\n  acc1: { ak: A1, sk: s1, timeZone: UTC }\n');
    const tenants = Tenants.fromConfig(
      loadConfig({ ...base, TENANTS_FILE: path, CCFS_AK: 'AK', CCFS_SK: 'SK' }, ''),
    );
    expect(tenants.ids().sort()).toEqual(['acc1', 'default']);
    expect(tenants.get('acc2')).toBeUndefined();
  });

  it('needs CALLBACK_SECRET with a tenants file and no CCFS_SK, since the callback key cannot come from an SK', () => {
    const path = file('t.yaml', 'tenants:\n  acc1: { ak: A1, sk: s1, timeZone: UTC }\n');
    expect(() => requireCcfs(loadConfig({ ...base, TENANTS_FILE: path }, ''))).toThrow(
      /CALLBACK_SECRET: is required but not set/,
    );
    const config = requireCcfs(
      loadConfig({ ...base, TENANTS_FILE: path, CALLBACK_SECRET: 'a-callback-secret-of-32-chars-xx' }, ''),
    );
    expect(callbackKeyFromConfig(config)).toBe('a-callback-secret-of-32-chars-xx');
  });

  it('fails fast with the path when TENANTS_FILE does not exist', () => {
    expect(() =>
      Tenants.fromConfig(loadConfig({ ...base, TENANTS_FILE: join(dir, 'nope.yaml') }, '')),
    ).toThrow(/TENANTS_FILE: .*nope\.yaml does not exist/);
  });
});
