import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { freePort, portIsFree } from '../../dev/temporal-server';
import { WORKFLOWS_PATH } from '../../worker/create-workers';

/**
 * The worker and the API as separate processes, started the way an operator starts them
 * (`node --import tsx worker/main.ts` with settings in the environment), for tests where several
 * processes share one Temporal server and where processes are killed.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHORT_TIMEOUTS = fileURLToPath(new URL('./short-activity-timeouts.ts', import.meta.url));

/** Bundles the workflows once into `dir`, for WORKFLOW_BUNDLE_PATH (each worker would take seconds to bundle). */
export async function writeWorkflowBundle(
  dir: string,
  options: { shortActivityTimeouts?: boolean } = {},
): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: options.shortActivityTimeouts ? [SHORT_TIMEOUTS] : [],
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  const path = join(dir, 'workflow-bundle.js');
  writeFileSync(path, code);
  return path;
}

/** A free port whose next port is free too (the worker serves SDK metrics on WORKER_METRICS_PORT + 1). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    if (port < 65535 && (await portIsFree(port + 1, '127.0.0.1'))) return port;
  }
  throw new Error('no two adjacent free ports');
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The Temporal worker identity the SDK gives this process by default. */
  identity: string;
  /** Every line it printed (pino JSON). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first parsed log line whose `msg` is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal and waits for the exit (SIGKILL after `timeoutMs`). */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `worker/main.ts` or `api/main.ts` with exactly `env` (plus PATH, and API_AUTH=none unless `env`
 * gives API_TOKENS: the API refuses management requests without either) and waits for its ready line.
 */
export async function startService(
  kind: 'worker' | 'api',
  env: Record<string, string>,
  name: string = kind,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `${kind}/main.ts`], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      ...(env.API_TOKENS ? {} : { API_AUTH: 'none' }),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ msg: string; resolve: (v: Record<string, unknown>) => void }> = [];
  const onLine = (line: string) => {
    if (!line.trim()) return;
    lines.push(line);
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const w of [...waiters]) {
      if (parsed.msg === w.msg) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop() ?? '';
      parts.forEach(onLine);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));

  const waitForLog = (msg: string, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = lines.map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      });
      const found = seen.find((l) => l?.msg === msg);
      if (found) return resolve(found);
      const timer = setTimeout(
        () =>
          reject(
            new Error(`${name}: no "${msg}" within ${timeoutMs} ms; output:\n${lines.slice(-30).join('\n')}`),
          ),
        timeoutMs,
      );
      void exited.then((e) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${name} exited (${e.signal ?? e.code}) before "${msg}"; output:\n${lines.slice(-30).join('\n')}`,
          ),
        );
      });
      waiters.push({
        msg,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      });
    });

  const service: ServiceProcess = {
    name,
    child,
    pid: child.pid!,
    identity: `${child.pid}@${hostname()}`,
    lines,
    exited,
    waitForLog,
    async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
      if (!gone) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
  await waitForLog(kind === 'worker' ? 'worker started' : 'api listening');
  return service;
}
