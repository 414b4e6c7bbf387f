import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';
import { ROOT, until } from './support/processes';

/**
 * Policy: one `npm start` per data directory. A second one on the same DATA_DIR — even with every
 * port changed as the port-in-use message advises — starts nothing, says the stack is already running
 * with its URLs, and exits 1, so two Temporal servers never share data/temporal.db. A lock left by a
 * launcher that died (its pid is gone) is taken over.
 */
describe('npm start on a data directory in use', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ccfs-lock-'));
  const launchers: ChildProcess[] = [];

  afterAll(() => {
    for (const l of launchers) if (l.exitCode === null && l.signalCode === null) l.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function envWithPorts(): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
      API_PORT: String(await freePort()),
      SIMULATOR_PORT: String(await freePort()),
      WORKER_METRICS_PORT: String(await freePort()),
    };
    for (const key of [
      'TEMPORAL_ADDRESS',
      'CCFS_BASE_URL',
      'CCFS_AK',
      'CCFS_SK',
      'OUTPUT_DIR',
      'CALLBACK_BASE_URL',
    ])
      delete env[key];
    return env;
  }

  function launch(env: NodeJS.ProcessEnv): {
    child: ChildProcess;
    output: () => string;
    exited: Promise<number | null>;
  } {
    const child = spawn(process.execPath, ['--import', 'tsx', 'dev/launcher.ts'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launchers.push(child);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    return { child, output: () => output, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
  }

  it('takes over a stale lock, refuses a second launcher naming the running URLs, and releases the lock on stop', async () => {
    // A lock of a launcher that is gone: a pid that has exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    writeFileSync(
      join(dataDir, 'launcher.lock'),
      JSON.stringify({ pid: Number(dead.stdout), startedAt: '2024-01-01T00:00:00Z', urls: {} }),
    );

    const firstEnv = await envWithPorts();
    const first = launch(firstEnv);
    await until(
      'the first launcher to be ready',
      () => (existsSync(join(dataDir, 'launcher.json')) ? true : undefined),
      120_000,
    );
    expect(first.output()).toContain(`took over the lock of ${dataDir} from launcher pid ${dead.stdout}`);
    const api = `http://localhost:${firstEnv.API_PORT}`;

    // Every port changed, as the port-in-use message advises: still the same data directory.
    const second = launch(await envWithPorts());
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain('already running');
    expect(second.output()).toContain(api);
    expect(second.output()).toContain(`http://localhost:${firstEnv.TEMPORAL_UI_PORT}`);
    expect(second.output()).not.toContain('starting Temporal dev server');
    expect(JSON.parse(readFileSync(join(dataDir, 'launcher.lock'), 'utf8'))).toMatchObject({
      pid: first.child.pid,
    });
    expect((await fetch(`${api}/healthz`)).status).toBe(200);

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(existsSync(join(dataDir, 'launcher.lock'))).toBe(false);
  });
});
