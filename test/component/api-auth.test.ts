import { spawnSync } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { createApp, type AppDeps } from '../../api/app';
import { ExportService } from '../../lib/export-service';

/**
 * Secure by default: an API given no bearer tokens refuses every management request (401) unless it
 * was opened explicitly (`apiAuth: 'none'`, API_AUTH=none); `/healthz` and the CC-FS callbacks keep
 * their own rules. Temporal is down on purpose: authentication answers before Temporal is asked.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let close: (() => Promise<void>) | undefined;

afterEach(async () => {
  await close?.();
  close = undefined;
});

async function startApi(overrides: Partial<AppDeps>): Promise<string> {
  const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [], connectTimeout: 1000 });
  const client = new Client({ connection });
  const app = createApp({
    client,
    exports: new ExportService(client, {
      taskQueue: 'auth-test',
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    }),
    taskQueue: 'auth-test',
    tenantTimeZone: 'Asia/Shanghai',
    apiTokens: [],
    callback: {
      tokenKey: 'callback-key-of-the-auth-test',
      verifySignature: true,
      secretFor: () => undefined,
      maxSkewSeconds: 900,
    },
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  close = async () => {
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
    await connection.close().catch(() => undefined);
  };
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const MANAGEMENT: Array<[string, string, string?]> = [
  ['POST', '/exports', '{}'],
  ['GET', '/exports'],
  ['GET', '/exports/some-export'],
  ['POST', '/exports/some-export/cancel'],
  ['POST', '/exports/some-export/retry'],
  ['GET', '/schedules'],
  ['POST', '/schedules', '{}'],
  ['GET', '/coverage'],
  ['GET', '/metrics'],
];

describe('management API without tokens', () => {
  it.each(MANAGEMENT)('answers 401 to %s %s unless opened explicitly', async (method, path, body) => {
    const url = await startApi({});
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: 'Bearer anything' },
      body,
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'unauthorized' });
  });

  it('serves management requests when opened with apiAuth none (a bad body gets 400, past auth)', async () => {
    const url = await startApi({ apiAuth: 'none' });
    const res = await fetch(`${url}/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(400);
  });

  it('keeps /healthz and the callback route outside management auth', async () => {
    const url = await startApi({});
    // Health answers (503: Temporal is down), never 401.
    expect((await fetch(`${url}/healthz`)).status).toBe(503);
    // A callback with a forged token is refused by the callback's own check, not by the bearer check.
    const res = await fetch(`${url}/callbacks/ccfs/forged-token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).not.toBe(401);
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('api/main.ts refuses to start with API_AUTH=none and API_TOKENS together, naming both', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        TEMPORAL_ADDRESS: '127.0.0.1:1',
        CCFS_BASE_URL: 'http://127.0.0.1:1',
        CCFS_AK: 'ak',
        CCFS_SK: 'sk-of-the-auth-test',
        API_PORT: '0',
        API_AUTH: 'none',
        API_TOKENS: 'a-token',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('API_AUTH, API_TOKENS');
    expect(result.stderr + result.stdout).not.toContain('a-token');
  }, 70_000);
});
