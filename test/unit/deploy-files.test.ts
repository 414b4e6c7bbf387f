import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EnvSchema, loadConfig } from '../../lib/config';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

/** The deployment files say what the code does: same variables, same search attributes, real entry points. */

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${root}/${path}`, 'utf8');

interface Compose {
  'x-app': { environment: Record<string, string> };
  services: Record<string, { environment?: Record<string, string | number>; command?: string[] }>;
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const exampleEnv = Object.fromEntries(
  read('deploy/compose.env.example')
    .split('\n')
    .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);
const settings = new Set(Object.keys(EnvSchema.shape));
const AWS = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

describe('deployment files', () => {
  it('creates exactly the search attributes the workflows write', () => {
    const line = /^SEARCH_ATTRIBUTES="([^"]*)"/m.exec(read('deploy/temporal/create-namespace.sh'))?.[1] ?? '';
    const pairs = Object.fromEntries(line.split(/\s+/).map((p) => p.split('=') as [string, string]));
    expect(pairs).toEqual(SEARCH_ATTRIBUTES);
  });

  it('passes only settings the API and the worker know to their containers', () => {
    for (const service of ['api', 'worker']) {
      const env = compose.services[service]?.environment ?? {};
      expect(Object.keys(env).length).toBeGreaterThan(20);
      for (const key of Object.keys(env))
        expect(settings.has(key) || AWS.has(key), `${service}: ${key}`).toBe(true);
    }
  });

  it('gives every ${VARIABLE} of the compose file a value in the example env file', () => {
    const used = new Set(
      [...read('docker-compose.yml').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!),
    );
    for (const key of used) expect(exampleEnv, key).toHaveProperty(key);
  });

  it('has an example env file that the configuration schema accepts', () => {
    const env = Object.fromEntries(Object.entries(exampleEnv).filter(([k]) => settings.has(k)));
    expect(() => loadConfig(env, '')).not.toThrow();
  });

  it('starts each role of the image from a file that exists', () => {
    const entrypoint = read('deploy/docker-entrypoint.sh');
    const roles: Array<[string, string]> = [
      ['worker', 'worker/main.ts'],
      ['api', 'api/main.ts'],
      ['simulator', 'simulator/main.ts'],
      ['cli', 'bin/ccfs-export.mjs'],
    ];
    for (const [role, file] of roles) {
      expect(entrypoint).toMatch(new RegExp(`${role}[^)]*\\) exec node [^;]*${file.replace('.', '\\.')}`));
      expect(existsSync(`${root}/${file}`), file).toBe(true);
    }
    for (const service of ['api', 'worker', 'simulator'])
      expect(compose.services[service]?.command).toEqual([service]);
    expect(read('Dockerfile')).toMatch(
      /ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/app\/deploy\/docker-entrypoint\.sh"\]/,
    );
  });
});
