import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { createApp, type AppDeps } from '../../api/app';
import { runCli } from '../../cli/main';
import { createCallbackToken } from '../../lib/callback-token';
import { ExportService } from '../../lib/export-service';
import { chunkWorkflowId } from '../../workflows/definitions';

/**
 * The management API's and the callback endpoint's defences over real HTTP, in-process on a random
 * port. Temporal is down on purpose (a lazy connection to a closed port, without gRPC retries):
 * every check here answers before Temporal is needed, and where it is needed the failure must not
 * leak. Exports against a running Temporal are in test/integration/api.test.ts.
 */

const TOKEN = 'api-token-7c1f0e9b4a';
const TOKEN_KEY = 'callback-key-for-the-component-test';

interface Running {
  url: string;
  logs: string[];
  close(): Promise<void>;
}

async function startApi(overrides: Partial<AppDeps> = {}): Promise<Running> {
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  );
  const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [], connectTimeout: 1000 });
  const client = new Client({ connection });
  const app = createApp({
    client,
    exports: new ExportService(client, {
      taskQueue: 'api-test',
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    }),
    taskQueue: 'api-test',
    tenantTimeZone: 'Asia/Shanghai',
    apiTokens: [TOKEN, 'second-token'],
    callback: { tokenKey: TOKEN_KEY, verifySignature: true, secretFor: () => undefined, maxSkewSeconds: 900 },
    logger,
    ...overrides,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    logs,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await connection.close().catch(() => undefined);
    },
  };
}

const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });
const json = (token?: string) => ({
  'content-type': 'application/json',
  ...(token === undefined ? {} : auth(token)),
});

/** No stack frame, file path, exception name or gRPC detail in what a caller sees. */
function expectNoInternals(body: string): void {
  expect(body).not.toMatch(
    /\bat .+:\d+:\d+|node_modules|\.ts\b|\.js\b|Error:|ServiceError|UNAVAILABLE|ECONNREFUSED|127\.0\.0\.1:1\b|stack/i,
  );
}

describe('management API', () => {
  let api: Running;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  describe('bearer-token authentication', () => {
    const routes: Array<[string, string]> = [
      ['GET', '/exports'],
      ['GET', '/exports/some-export'],
      ['POST', '/exports'],
      ['POST', '/exports/some-export/cancel'],
      ['POST', '/exports/some-export/retry'],
      ['GET', '/metrics'],
    ];

    it.each(routes)('%s %s answers 401 without a token', async (method, path) => {
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: 'unauthorized',
        message: 'a valid bearer token is required',
      });
    });

    it.each(routes)('%s %s answers 401 with a wrong token', async (method, path) => {
      for (const headers of [
        auth(`${TOKEN}x`),
        auth(TOKEN.slice(0, -1)),
        auth(''),
        { authorization: `Basic ${TOKEN}` },
        { authorization: TOKEN },
      ]) {
        const res = await fetch(`${api.url}${path}`, { method, headers });
        expect(res.status, JSON.stringify(headers)).toBe(401);
      }
    });

    it('lets a request with either configured token through', async () => {
      for (const token of [TOKEN, 'second-token']) {
        // A 400 from validation: the request got past authentication (and never needed Temporal).
        const res = await fetch(`${api.url}/exports`, { method: 'POST', headers: json(token), body: '{}' });
        expect(res.status).toBe(400);
      }
    });

    it('answers /healthz without a token', async () => {
      const res = await fetch(`${api.url}/healthz`);
      // Temporal is down here, so the health is degraded — but it is not withheld.
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'degraded',
        components: { api: 'ok', temporal: 'unreachable', worker: 'unknown' },
      });
    });

    it('serves /metrics with a token', async () => {
      const withMetrics = await startApi({
        metrics: new (await import('../../lib/metrics')).Metrics({ defaultMetrics: false }),
      });
      try {
        const res = await fetch(`${withMetrics.url}/metrics`, { headers: auth() });
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('# TYPE');
      } finally {
        await withMetrics.close();
      }
    });
  });

  it('sends security headers on API, health, callback and error answers', async () => {
    const answers = await Promise.all([
      fetch(`${api.url}/healthz`),
      fetch(`${api.url}/exports`),
      fetch(`${api.url}/exports`, { method: 'POST', headers: json(TOKEN), body: '{}' }),
      fetch(`${api.url}/callbacks/ccfs/forged`, { method: 'POST', body: '{}' }),
      fetch(`${api.url}/no-such-route`),
    ]);
    for (const res of answers) {
      expect(res.headers.get('x-powered-by')).toBeNull();
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  describe('request size limits', () => {
    it('answers 413 to an export request body over 32 kB', async () => {
      const body = JSON.stringify({
        from: '2024-03-01 00:00:00',
        to: '2024-03-02 00:00:00',
        dataType: 'call',
        pad: 'x'.repeat(40_000),
      });
      const res = await fetch(`${api.url}/exports`, { method: 'POST', headers: json(TOKEN), body });
      expect(res.status).toBe(413);
      expect(await res.json()).toEqual({
        error: 'payload_too_large',
        message: 'the request body is too large',
      });
    });

    it('answers 413 to a callback body over 16 kB, before looking at the token', async () => {
      const token = createCallbackToken(TOKEN_KEY, chunkWorkflowId('e1', 0));
      for (const path of [`/callbacks/ccfs/${token}`, '/callbacks/ccfs/forged']) {
        const res = await fetch(`${api.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: 'x'.repeat(17_000),
        });
        expect(res.status, path).toBe(413);
      }
    });

    it('answers 413 to a callback whose compressed body inflates past the limit', async () => {
      const { gzipSync } = await import('node:zlib');
      const token = createCallbackToken(TOKEN_KEY, chunkWorkflowId('e1', 0));
      const res = await fetch(`${api.url}/callbacks/ccfs/${token}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync(Buffer.alloc(10_000_000, 0x20)),
      });
      expect(res.status).toBe(413);
    });
  });

  it('answers 429 once a client exceeds the per-minute limit, authenticated or not', async () => {
    const limited = await startApi({ rateLimitPerMinute: 5 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await fetch(`${limited.url}/exports`, { headers: i % 2 ? auth() : auth('wrong') });
        statuses.push(res.status);
        if (res.status === 429) {
          expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
          expectNoInternals(await res.text());
        } else await res.text();
      }
      // Requests 1-5 reach authentication (401 or, with the right token, Temporal — down here: 500).
      expect(statuses.slice(0, 5).every((s) => s !== 429)).toBe(true);
      expect(statuses.slice(5)).toEqual([429, 429]);
      // Health and callbacks are not behind the API's limiter: CC-FS retries and probes must not be starved.
      expect((await fetch(`${limited.url}/healthz`)).status).toBe(503);
      expect(
        (await fetch(`${limited.url}/callbacks/ccfs/forged`, { method: 'POST', body: '{}' })).status,
      ).toBe(404);
    } finally {
      await limited.close();
    }
  });

  describe('answers without internals', () => {
    it('hides why Temporal failed behind a plain 500, and logs it for the operator', async () => {
      const res = await fetch(`${api.url}/exports/some-export`, { headers: auth() });
      expect(res.status).toBe(500);
      const body = await res.text();
      expect(JSON.parse(body)).toEqual({ error: 'internal', message: 'internal error' });
      expectNoInternals(body);
      const logged = api.logs.map(
        (l) => JSON.parse(l) as { msg: string; path?: string; err?: { name: string } },
      );
      const failure = logged.find((l) => l.msg === 'request failed' && l.path === '/exports/some-export');
      expect(failure?.err?.name).toBe('ServiceError');
    });

    it('answers malformed JSON with 400 and no parser message', async () => {
      const res = await fetch(`${api.url}/exports`, {
        method: 'POST',
        headers: json(TOKEN),
        body: '{"from": "2024-',
      });
      expect(res.status).toBe(400);
      const body = await res.text();
      expect(JSON.parse(body)).toEqual({
        error: 'invalid_json',
        message: 'the request body is not valid JSON',
      });
      expectNoInternals(body);
    });

    it('answers 415 naming JSON when an export comes as another content type', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
        const res = await fetch(`${api.url}/exports`, {
          method: 'POST',
          headers: { ...json(TOKEN), 'content-type': type },
          body: '{"from":"2024-01-01 00:00:00"}',
        });
        expect(res.status, type).toBe(415);
        const answer = (await res.json()) as { error: string; message: string };
        expect(answer.error).toBe('unsupported_media_type');
        expect(answer.message).toContain('application/json');
      }
    });

    it('answers a body encoding it cannot read with a 4xx, not a 500', async () => {
      for (const [path, headers] of [
        ['/exports', { ...json(TOKEN), 'content-encoding': 'br-x' }],
        ['/exports', { ...json(TOKEN), 'content-type': 'application/json; charset=utf-7' }],
        [
          `/callbacks/ccfs/${createCallbackToken(TOKEN_KEY, 'w')}`,
          { 'content-type': 'application/json', 'content-encoding': 'br-x' },
        ],
      ] as const) {
        const res = await fetch(`${api.url}${path}`, { method: 'POST', headers, body: '{}' });
        expect(res.status, JSON.stringify(headers)).toBeGreaterThanOrEqual(400);
        expect(res.status, JSON.stringify(headers)).toBeLessThan(500);
        expectNoInternals(await res.text());
      }
    });

    it('answers an unsafe export ID with 400', async () => {
      for (const id of ['..%2F..%2Fetc', '%00', 'a'.repeat(101), '-leading-dash']) {
        const res = await fetch(`${api.url}/exports/${id}`, { headers: auth() });
        expect(res.status, id).toBe(400);
        expect(await res.json()).toEqual({
          error: 'invalid_export_id',
          message: 'export ID has characters that are not allowed',
        });
      }
    });
  });

  describe('POST /exports validation', () => {
    const valid = { from: '2024-03-01 00:00:00', to: '2024-03-02 00:00:00', dataType: 'call_record' };
    async function issuesFor(body: unknown): Promise<Array<{ path: string; message: string }>> {
      const res = await fetch(`${api.url}/exports`, {
        method: 'POST',
        headers: json(TOKEN),
        body: JSON.stringify(body),
      });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expectNoInternals(text);
      const parsed = JSON.parse(text) as { error: string; issues: Array<{ path: string; message: string }> };
      expect(parsed.error).toBe('invalid_request');
      return parsed.issues;
    }

    it.each([
      [
        'a calendar-invalid from',
        { ...valid, from: '2023-02-29 00:00:00' },
        'from',
        /not a valid calendar date/,
      ],
      ['a calendar-invalid to', { ...valid, to: '2024-04-31 00:00:00' }, 'to', /not a valid calendar date/],
      ['an hour of 24', { ...valid, to: '2024-03-01 24:00:00' }, 'to', /not a valid calendar date/],
      ['a wrong format', { ...valid, from: '2024-03-01T00:00:00Z' }, 'from', /yyyy-MM-dd HH:mm:ss/],
      ['to equal to from', { ...valid, to: valid.from }, 'to', /must be later than from/],
      ['to before from', { ...valid, from: '2024-03-05 00:00:00' }, 'to', /must be later than from/],
      ['a bad dataType', { ...valid, dataType: 'calls' }, 'dataType', /call.*record.*call_record/],
      ['an unknown IANA zone', { ...valid, timeZone: 'Mars/Olympus' }, 'timeZone', /IANA time zone/],
      ['an offset instead of a zone', { ...valid, timeZone: '+08:00 ; DROP' }, 'timeZone', /IANA time zone/],
      [
        'an accountId over 20 characters',
        { ...valid, filters: { accountId: 'a'.repeat(21) } },
        'filters.accountId',
        /20/,
      ],
      [
        'an agentId over 20 characters',
        { ...valid, filters: { agentId: '1'.repeat(21) } },
        'filters.agentId',
        /20/,
      ],
      [
        'a callId over 25 characters',
        { ...valid, filters: { callId: '1'.repeat(26) } },
        'filters.callId',
        /25/,
      ],
      [
        'a callerNo over 25 characters',
        { ...valid, filters: { callerNo: '1'.repeat(26) } },
        'filters.callerNo',
        /25/,
      ],
      [
        'a calleeNo2 over 25 characters',
        { ...valid, filters: { calleeNo2: '1'.repeat(26) } },
        'filters.calleeNo2',
        /25/,
      ],
      ['an empty filter', { ...valid, filters: { calleeNo: '' } }, 'filters.calleeNo', /1/],
      ['an unknown filter', { ...valid, filters: { sk: 'x' } }, 'filters', /sk/],
      ['an unknown top-level field', { ...valid, callBackURL: 'http://evil/' }, '(body)', /callBackURL/],
      ['an unknown option', { ...valid, options: { chunkDays: 9 } }, 'options', /chunkDays/],
      [
        'a chunk longer than three days',
        { ...valid, options: { chunkHours: 73 } },
        'options.chunkHours',
        /72/,
      ],
      ['an unsafe exportId', { ...valid, exportId: '../../etc' }, 'exportId', /letters, digits/],
      ['a year before 1970', { ...valid, from: '1969-12-31 00:00:00' }, 'from', /not a valid calendar date/],
    ])('answers 400 naming the field for %s', async (_name, body, path, message) => {
      const issues = await issuesFor(body);
      const issue = issues.find((i) => i.path === path);
      expect(issue, JSON.stringify(issues)).toBeDefined();
      expect(issue!.message).toMatch(message);
    });

    it('names every bad field at once', async () => {
      const issues = await issuesFor({
        from: '2024-02-30 00:00:00',
        to: 'tomorrow',
        dataType: 'x',
        timeZone: 'Nowhere',
      });
      expect(issues.map((i) => i.path).sort()).toEqual(['dataType', 'from', 'timeZone', 'to']);
    });

    it('gives the same field messages as the CLI', async () => {
      const cases: Array<[Record<string, unknown>, string[]]> = [
        [
          {
            from: '2024-02-30 00:00:00',
            to: '2024-03-01 00:00:00',
            dataType: 'call',
            timeZone: 'Mars/Olympus',
          },
          [
            '--from',
            '2024-02-30 00:00:00',
            '--to',
            '2024-03-01 00:00:00',
            '--type',
            'call',
            '--time-zone',
            'Mars/Olympus',
          ],
        ],
        [
          {
            from: '2024-03-05 00:00:00',
            to: '2024-03-01 00:00:00',
            dataType: 'record',
            filters: { callerNo: '1'.repeat(26) },
          },
          [
            '--from',
            '2024-03-05 00:00:00',
            '--to',
            '2024-03-01 00:00:00',
            '--type',
            'record',
            '--caller-no',
            '1'.repeat(26),
          ],
        ],
      ];
      for (const [body, argv] of cases) {
        const issues = await issuesFor(body);
        const err: string[] = [];
        const code = await runCli(['export', ...argv], {
          out: () => undefined,
          err: (l) => err.push(l),
          tty: false,
          status: () => undefined,
        });
        expect(code).not.toBe(0);
        const printed = err.join('\n');
        for (const i of issues) expect(printed).toContain(`  ${i.path}: ${i.message}`);
      }
    });

    it('answers an empty or non-object body with 400', async () => {
      for (const body of [{}, []]) {
        const issues = await issuesFor(body);
        expect(
          issues.map((i) => i.path),
          JSON.stringify(body),
        ).toEqual(Array.isArray(body) ? ['(body)'] : ['from', 'to', 'dataType']);
      }
      for (const body of ['"a string"', '42', 'null']) {
        const res = await fetch(`${api.url}/exports`, { method: 'POST', headers: json(TOKEN), body });
        expect(res.status, body).toBe(400);
        expect(await res.json()).toEqual({
          error: 'invalid_json',
          message: 'the request body is not valid JSON',
        });
      }
    });
  });
});
