import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../../api/app';
import { ExportService } from '../../lib/export-service';
import { runCli } from '../../cli/main';
import { coverageLines } from '../../cli/schedule';
import { summarise } from '../../lib/coverage';

/**
 * The schedule and coverage commands and routes as a user reaches them, without Temporal: arguments
 * are checked before any connection (exit 1 / HTTP 400, every bad field named), the routes sit
 * behind the API's bearer token, and an unreachable Temporal is exit 3 / a 500 without internals.
 * Schedules against a running Temporal are in test/integration/schedules.test.ts.
 */

let closedPort: number;
const saved = {
  TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS,
  TENANT_TIME_ZONE: process.env.TENANT_TIME_ZONE,
};

beforeAll(async () => {
  // A port that was free a moment ago and has nothing listening: connections are refused at once.
  const server: Server = createServer();
  closedPort = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
  await new Promise((r) => server.close(r));
  process.env.TEMPORAL_ADDRESS = `127.0.0.1:${closedPort}`;
  process.env.TENANT_TIME_ZONE = 'Asia/Shanghai';
});
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    tty: false,
    status: () => undefined,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('ccfs-export schedule', () => {
  it('names every bad field of a schedule and exits 1 before connecting to Temporal', async () => {
    const r = await run(
      'schedule',
      'create',
      '--type',
      'call',
      '--at',
      '25:00',
      '--time-zone',
      'Mars/Base',
      '--catchup',
      'a week',
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain('invalid schedule:');
    expect(r.err).toMatch(/at: expected HH:MM/);
    expect(r.err).toMatch(/timeZone: must be an IANA time zone/);
    expect(r.err).toMatch(/catchup: expected a duration such as 30m, 12h or 7d/);
    expect(r.err).not.toContain('cannot reach Temporal');
  });

  it('refuses a tenant name that cannot be part of an export ID', async () => {
    const r = await run('schedule', 'create', '--type', 'call', '--at', '01:30', '--account-id', 'a b');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/filters\.accountId: must be letters, digits/);
  });

  it('refuses a backfill whose end is before its start, or whose days are not calendar days', async () => {
    const inverted = await run(
      'schedule',
      'backfill',
      'ccfs-daily-default-call',
      '--from',
      '2024-03-12',
      '--to',
      '2024-03-08',
    );
    expect(inverted.code).toBe(1);
    expect(inverted.err).toMatch(/to: must not be before from/);
    const bad = await run(
      'schedule',
      'backfill',
      'ccfs-daily-default-call',
      '--from',
      '2024-02-30',
      '--to',
      '2024-03-01',
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/from: is not a valid calendar date/);
  });

  it('requires --type and --at', async () => {
    const r = await run('schedule', 'create', '--at', '01:30');
    expect(r.code).toBe(1);
    const s = await run('schedule', 'create', '--type', 'call');
    expect(s.code).toBe(1);
    const t = await run('schedule', 'create', '--type', 'sms', '--at', '01:30');
    expect(t.code).toBe(1);
  });

  it('exits 3 and names TEMPORAL_ADDRESS when Temporal cannot be reached', async () => {
    const r = await run('schedule', 'create', '--type', 'call', '--at', '01:30');
    expect(r.code).toBe(3);
    expect(r.err).toContain(`cannot reach Temporal at 127.0.0.1:${closedPort}`);
  });

  it('refuses a coverage window day that is not yyyy-MM-dd', async () => {
    const r = await run('coverage', '--from', '8.3.2024');
    expect(r.code).toBe(1);
    expect(r.err).toContain('--from must be a day as yyyy-MM-dd');
  });

  it('prints coverage as ranges of days, the complete-through day and the failed days with their error', () => {
    const run = (day: string, status: string, state?: string, error?: string) => ({
      tenant: 'acc1',
      dataType: 'call',
      day,
      workflowId: `ccfs-day/acc1/call/${day}`,
      runId: day,
      status,
      state,
      startTime: `${day}T20:00:00.000Z`,
      error,
    });
    const lines = coverageLines(
      summarise({
        tenant: 'acc1',
        dataType: 'call',
        timeZone: 'Asia/Shanghai',
        from: '2024-03-08',
        to: '2024-03-12',
        runs: [
          run('2024-03-08', 'COMPLETED', 'verified'),
          run('2024-03-09', 'COMPLETED', 'verified'),
          run('2024-03-10', 'FAILED', 'failed', 'HTTP 500'),
          run('2024-03-11', 'COMPLETED', 'empty'),
        ],
      }),
    );
    expect(lines).toEqual([
      'acc1 / call (Asia/Shanghai): complete through 2024-03-09; window 2024-03-08 … 2024-03-12',
      '  2 verified, 1 empty, 1 failed, 1 missing',
      '  2024-03-08 … 2024-03-09  verified (2 days)',
      '  2024-03-10               failed',
      '  2024-03-11               empty',
      '  2024-03-12               missing',
      '  ! 2024-03-10 failed: HTTP 500  [ccfs-day/acc1/call/2024-03-10]',
    ]);
  });
});

describe('schedule routes over HTTP', () => {
  const TOKEN = 'schedule-api-token-3b9d';
  let url: string;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [], connectTimeout: 1000 });
    const client = new Client({ connection });
    const app = createApp({
      client,
      exports: new ExportService(client, {
        taskQueue: 'q',
        namespace: 'default',
        uiUrl: 'http://localhost:8233',
      }),
      taskQueue: 'q',
      tenantTimeZone: 'Asia/Shanghai',
      apiTokens: [TOKEN],
      callback: {
        tokenKey: 'callback-key-for-the-schedule-test',
        verifySignature: true,
        secretFor: () => undefined,
        maxSkewSeconds: 900,
      },
      logger: pino({ level: 'silent' }),
    });
    const server: HttpServer = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await connection.close().catch(() => undefined);
    };
  });
  afterAll(async () => {
    await close();
  });

  const call = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  it('answers 401 on every schedule and coverage route without a valid bearer token', async () => {
    for (const [method, path] of [
      ['POST', '/schedules'],
      ['GET', '/schedules'],
      ['GET', '/schedules/x'],
      ['POST', '/schedules/x/pause'],
      ['POST', '/schedules/x/resume'],
      ['POST', '/schedules/x/trigger'],
      ['POST', '/schedules/x/backfill'],
      ['DELETE', '/schedules/x'],
      ['GET', '/coverage'],
    ] as const) {
      expect((await call(method, path, undefined, null)).status, `${method} ${path}`).toBe(401);
      expect((await call(method, path, undefined, 'wrong')).status, `${method} ${path}`).toBe(401);
    }
  });

  it('names every bad field of a schedule, a backfill and a coverage query with 400', async () => {
    const created = await call('POST', '/schedules', { dataType: 'sms', at: '7am', catchup: '1s', extra: 1 });
    expect(created.status).toBe(400);
    const issues = (JSON.parse(created.text) as { issues: Array<{ path: string }> }).issues.map(
      (i) => i.path,
    );
    expect(issues).toEqual(expect.arrayContaining(['dataType', 'at', 'catchup']));
    const backfill = await call('POST', '/schedules/x/backfill', { from: '2024-03-12', to: '2024-03-08' });
    expect(backfill.status).toBe(400);
    expect(backfill.text).toContain('must not be before from');
    expect((await call('GET', '/coverage?from=yesterday')).status).toBe(400);
    expect((await call('GET', '/schedules/bad%20id')).status).toBe(400);
  });

  it('answers 500 without internals when Temporal cannot be reached', async () => {
    const res = await call('GET', '/schedules/ccfs-daily-default-call');
    expect(res.status).toBe(500);
    expect(res.text).not.toMatch(/ServiceError|UNAVAILABLE|127\.0\.0\.1:1\b|node_modules|\bat .+:\d+:\d+/);
  });
});
