import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import type { ExportStatus } from '../../workflows/definitions';

/**
 * The API process serves HTTPS itself (API_TLS_CERT_FILE / API_TLS_KEY_FILE), and the simulated
 * CC-FS calls the https callback URL, trusting a private CA, in a real export run by the worker
 * process. The certificate is a throwaway one made with openssl for this run.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AK = 'tls-ak';
const SK = `tls-sk-${randomUUID()}`;
const TOKEN = `tls-token-${randomUUID()}`;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function run(
  script: string,
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('HTTPS callback listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ccfs-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  let sim: RunningSimulator;
  let api: ReturnType<typeof run> | undefined;
  let worker: ReturnType<typeof run> | undefined;
  let apiUrl: string;
  let trusting: Agent;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    const cert = readFileSync(certFile, 'utf8');
    trusting = new Agent({ connect: { ca: cert } });

    sim = await startSimulator({
      port: 0,
      accounts: [{ ak: AK, sk: SK }],
      seed: 11,
      callbackDelayMs: 50,
      callbackRetryIntervalMs: 500,
      callbackCa: cert,
      timeZone: 'Asia/Shanghai',
    });
    const apiPort = await freePort();
    const metricsPort = await freePort();
    apiUrl = `https://localhost:${apiPort}`;
    env = { ...process.env };
    for (const key of Object.keys(env))
      if (/^(CCFS_|TEMPORAL_|API_|CALLBACK_|OUTPUT_|TENANT|WORKER_|WORKFLOW_)/.test(key)) delete env[key];
    Object.assign(env, {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: `tls-${randomUUID()}`,
      CCFS_BASE_URL: sim.url,
      CCFS_AK: AK,
      CCFS_SK: SK,
      CALLBACK_BASE_URL: apiUrl,
      OUTPUT_DIR: join(dir, 'exports'),
      TENANT_TIME_ZONE: 'Asia/Shanghai',
      API_PORT: String(apiPort),
      API_HOST: '127.0.0.1',
      API_TOKENS: TOKEN,
      API_TLS_CERT_FILE: certFile,
      API_TLS_KEY_FILE: keyFile,
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_SHUTDOWN_GRACE_SECONDS: '1',
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
    });
    api = run('api/main.ts', env);
    worker = run('worker/main.ts', env);
    await until(
      'the API over https with a worker polling',
      async () => {
        const res = await request(`${apiUrl}/healthz`, { dispatcher: trusting });
        const body = (await res.body.json()) as { status: string };
        return body.status === 'ok' ? body : undefined;
      },
      90_000,
    );
  });

  afterAll(async () => {
    for (const p of [api, worker]) {
      if (p && p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await Promise.race([p.exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (p.child.exitCode === null) p.child.kill('SIGKILL');
      }
    }
    await trusting?.close();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs an export whose callbacks CC-FS delivers over https', async () => {
    const exportId = `tls-${Date.now().toString(36)}`;
    const started = await request(`${apiUrl}/exports`, {
      method: 'POST',
      dispatcher: trusting,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        exportId,
        from: '2024-03-01 00:00:00',
        to: '2024-03-05 00:00:00',
        dataType: 'call_record',
        options: {
          callbackTimeoutSeconds: 30,
          retryInitialIntervalSeconds: 0.2,
          retryMaximumIntervalSeconds: 1,
        },
      }),
    });
    expect(started.statusCode, await started.body.text()).toBe(201);

    const status = await until(
      'the export to finish',
      async () => {
        const res = await request(`${apiUrl}/exports/${exportId}`, {
          dispatcher: trusting,
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const s = (await res.body.json()) as ExportStatus & { status: string };
        // Closed, not only 'completed' in the ledger: the final manifest is written in between.
        return s.state === 'running' || s.status === 'RUNNING' ? undefined : s;
      },
      60_000,
    );
    expect(status.state).toBe('completed');
    expect(status.counts.verified).toBe(2);

    const { callbacks, queries } = sim.simulator.inspect();
    expect(queries).toHaveLength(2);
    expect(callbacks).toHaveLength(2);
    for (const cb of callbacks) {
      expect(cb.url.startsWith(`${apiUrl}/callbacks/ccfs/`)).toBe(true);
      expect(cb.delivered).toBe(true);
      expect(cb.statuses).toEqual([200]);
    }
    const manifest = JSON.parse(readFileSync(join(dir, 'exports', exportId, 'manifest.json'), 'utf8')) as {
      chunks: Array<{ state: string }>;
    };
    expect(manifest.chunks.map((c) => c.state)).toEqual(['verified', 'verified']);
  });

  it('speaks only TLS on the API port, with the configured certificate', async () => {
    // Plain HTTP to the TLS port gets no HTTP answer.
    await expect(
      request(`${apiUrl.replace('https:', 'http:')}/healthz`, { headersTimeout: 5_000 }),
    ).rejects.toThrow();
    // A client that does not trust the throwaway CA refuses the certificate.
    const untrusting = new Agent();
    try {
      await expect(request(`${apiUrl}/healthz`, { dispatcher: untrusting })).rejects.toThrow(
        /self[- ]signed|certificate/i,
      );
    } finally {
      await untrusting.close();
    }
  });

  it('keeps the SK and the API token out of both processes\u2019 output', () => {
    const output = `${api!.output()}\n${worker!.output()}`;
    expect(output).toContain('api listening');
    expect(output).toMatch(/"protocol":"https"/);
    expect(output).not.toContain(SK);
    expect(output).not.toContain(TOKEN);
  });

  it('refuses to start with a certificate but no key, naming the missing setting', async () => {
    const partial = run('api/main.ts', { ...env, API_PORT: String(await freePort()), API_TLS_KEY_FILE: '' });
    expect(await partial.exited).toBe(1);
    expect(partial.output()).toContain('API_TLS_KEY_FILE: is required when API_TLS_CERT_FILE is set');
    expect(partial.output()).not.toMatch(/\bat .+:\d+:\d+/);
  });
});
