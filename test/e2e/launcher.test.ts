import { until } from '../support/until';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface LauncherState {
  api: string;
  temporalUi: string;
  temporalAddress: string;
  pids: Record<string, number>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm start (dev launcher)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ccfs-launcher-'));
  let env: NodeJS.ProcessEnv;
  let launcher: ChildProcess | undefined;
  let output = '';

  async function start(): Promise<LauncherState> {
    rmSync(join(dataDir, 'launcher.json'), { force: true });
    launcher = spawn(process.execPath, ['--import', 'tsx', 'dev/launcher.ts'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    launcher.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    return until(
      'launcher.json',
      () =>
        existsSync(join(dataDir, 'launcher.json'))
          ? (JSON.parse(readFileSync(join(dataDir, 'launcher.json'), 'utf8')) as LauncherState)
          : undefined,
      90_000,
    );
  }

  async function stop(signal: NodeJS.Signals, state: LauncherState): Promise<void> {
    const exited = new Promise<number | null>((r) => launcher!.once('exit', (code) => r(code)));
    launcher!.kill(signal);
    expect(await exited).toBe(0);
    for (const [name, pid] of Object.entries(state.pids))
      expect(alive(pid), `${name} (pid ${pid}) still running`).toBe(false);
  }

  afterAll(() => {
    if (launcher && launcher.exitCode === null) launcher.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('brings everything up, exports with the CLI as the README shows, and survives a restart', async () => {
    const ports = {
      temporal: await freePort(),
      ui: await freePort(),
      api: await freePort(),
      sim: await freePort(),
      metrics: await freePort(),
    };
    env = {
      ...process.env,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(ports.temporal),
      TEMPORAL_UI_PORT: String(ports.ui),
      API_PORT: String(ports.api),
      SIMULATOR_PORT: String(ports.sim),
      WORKER_METRICS_PORT: String(ports.metrics),
    };
    for (const key of [
      'TEMPORAL_ADDRESS',
      'CCFS_BASE_URL',
      'CCFS_AK',
      'CCFS_SK',
      'OUTPUT_DIR',
      'CALLBACK_BASE_URL',
      'API_TOKENS',
      'API_AUTH',
    ])
      delete env[key];

    const first = await start();
    const health = await fetch(`${first.api}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({
      status: 'ok',
      components: { api: 'ok', temporal: 'ok', worker: 'ok' },
    });
    expect((await fetch(first.temporalUi)).status).toBe(200);

    // Secure by default: management requests without the generated token are refused before any
    // validation (a body the API would refuse with 400 gets 401), with it they are served.
    const tokenFile = join(dataDir, 'api-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(output).toContain(tokenFile);
    const post = (headers: Record<string, string>) =>
      fetch(`${first.api}/exports`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{}',
      });
    expect((await post({})).status).toBe(401);
    expect((await post({ authorization: 'Bearer not-the-token' })).status).toBe(401);
    for (const path of ['/exports', '/schedules', '/coverage', '/metrics'])
      expect((await fetch(`${first.api}${path}`)).status, path).toBe(401);
    expect((await post({ authorization: `Bearer ${token}` })).status).toBe(400);
    expect(
      (await fetch(`${first.api}/exports`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    expect(output).not.toContain(token);

    // The command the launcher suggests, exactly as printed: on these non-default ports it carries the
    // Temporal address the CLI needs (a bare `npx ccfs-export` would look for localhost:7233).
    const suggested = /try: (.*)$/m.exec(output)?.[1] ?? '';
    expect(suggested).toContain(`TEMPORAL_ADDRESS=${first.temporalAddress}`);
    const cli = spawnSync('bash', ['-c', suggested.replace(' --wait', ' --export-id launcher-e2e --wait')], {
      cwd: ROOT,
      env: Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TEMPORAL_'))),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(cli.stderr).toContain('3/3 chunks');
    expect(cli.status).toBe(0);
    const manifestPath = cli.stdout.trim();
    expect(manifestPath).toBe(join(dataDir, 'exports', 'launcher-e2e', 'manifest.json'));
    expect(JSON.parse(readFileSync(manifestPath, 'utf8'))).toMatchObject({
      state: 'completed',
      totals: { verified: 3 },
    });

    await stop('SIGINT', first);

    const second = await start();
    const status = spawnSync(process.execPath, ['bin/ccfs-export.mjs', 'status', 'launcher-e2e', '--json'], {
      cwd: ROOT,
      env: { ...env, TEMPORAL_ADDRESS: second.temporalAddress },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(status.status).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      exportId: 'launcher-e2e',
      state: 'completed',
      status: 'COMPLETED',
    });
    // The token is the data directory's: a restart keeps it.
    expect(
      (await fetch(`${second.api}/exports`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    expect((await fetch(`${second.api}/exports`)).status).toBe(401);
    await stop('SIGTERM', second);
    expect(output).toContain('ready');
  }, 300_000);

  it('names the setting to change when a port is already taken, without a stack trace', async () => {
    const busy = createServer().listen(0, '0.0.0.0');
    await new Promise((r) => busy.once('listening', r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const result = spawnSync(process.execPath, ['--import', 'tsx', 'dev/launcher.ts'], {
        cwd: ROOT,
        env: { ...process.env, DATA_DIR: dataDir, TEMPORAL_ADDRESS: '', API_PORT: String(port) },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status).toBe(1);
      expect(result.stdout).toContain(`port ${port} (API_PORT) is already in use`);
      expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      busy.close();
    }
  }, 90_000);
});
