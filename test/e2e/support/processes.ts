export { until } from '../../support/until';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, portIsFree } from '../../../dev/temporal-server';

/** The product's processes started as a user starts them (`node --import tsx <script>`), for killing and restarting. */

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export interface NodeProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Every line the process wrote (stdout and stderr). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line (past or future) that matches. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends the signal and waits for the exit; SIGKILL after `graceMs` for other signals. */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  alive(): boolean;
}

export function spawnNode(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  options: { logFile?: string; args?: string[] } = {},
): NodeProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...(options.args ?? [])], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      if (options.logFile) appendFileSync(options.logFile, `${name} | ${line}\n`);
      for (const w of waiters) {
        if (w.pattern.test(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    });
  }
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (options.logFile) appendFileSync(options.logFile, `${name} | exited (${signal ?? code})\n`);
      resolve(exitInfo);
    }),
  );
  return {
    name,
    child,
    pid: child.pid ?? -1,
    lines,
    exited,
    alive: () => exitInfo === undefined,
    waitForLine(pattern, timeoutMs = 60_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const waiter = { pattern, resolve: (l: string) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `${name}: no line matching ${pattern} within ${timeoutMs} ms${exitInfo ? ` (exited with ${exitInfo.signal ?? exitInfo.code})` : ''}; last lines:\n${lines.slice(-15).join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(() => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(
            new Error(
              `${name} exited (${exitInfo?.signal ?? exitInfo?.code}) before a line matched ${pattern}; last lines:\n${lines.slice(-15).join('\n')}`,
            ),
          );
        });
      });
    },
    async kill(signal = 'SIGTERM', graceMs = 15_000) {
      if (exitInfo) return;
      child.kill(signal);
      const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      if (timer) clearTimeout(timer);
    },
  };
}

/** A free port whose next port is free too (the worker serves the SDK's metrics on WORKER_METRICS_PORT + 1). */
export async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 65535 && (await portIsFree(port + 1, '127.0.0.1'))) return port;
  }
}

/** `npx ccfs-export <args>` as a child process (asynchronously: a worker in this process may have to answer it). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['bin/ccfs-export.mjs', ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (err && code === null)
          reject(new Error(`ccfs-export ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
