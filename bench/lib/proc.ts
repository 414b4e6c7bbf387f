import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Resident set of a process from /proc: current and high-water mark, in bytes. */
export function readRss(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** Polls a process's RSS; `peak` is the largest sample since the last `reset`. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  peak = 0;
  last = 0;
  samples = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): number {
    const r = readRss(this.pid);
    if (r && Number.isFinite(r.rss)) {
      this.last = r.rss;
      this.peak = Math.max(this.peak, r.rss);
      this.samples++;
    }
    return this.last;
  }

  reset(): void {
    this.peak = this.sample();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Every child still running, so an interrupted bench can stop them all. */
export const liveProcesses = new Set<TsProcess>();

export interface TsProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves with the first stdout/stderr line that matches, rejects when the process exits first. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Every stdout line so far. */
  stdout: string[];
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Runs a TypeScript file with `node --import tsx`, as `npm start` runs the worker and the API. */
export function spawnTs(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
  nodeArgs: string[] = [],
): TsProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const stdout: string[] = [];
  const watchers = new Set<(line: string) => void>();
  for (const [stream, keep] of [
    [child.stdout, true],
    [child.stderr, false],
  ] as const) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      log.write(`${line}\n`);
      if (keep) stdout.push(line);
      for (const w of watchers) w(line);
    });
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => {
      exitCode = code;
      liveProcesses.delete(proc);
      resolveExit(code);
    }),
  );
  const proc: TsProcess = {
    name,
    child,
    pid: child.pid,
    logFile,
    stdout,
    exited,
    waitForLine(match, timeoutMs = 120_000) {
      return new Promise<string>((resolveLine, reject) => {
        const found = stdout.find(match);
        if (found) return resolveLine(found);
        const timer = setTimeout(
          () => done(new Error(`${name}: no matching output within ${timeoutMs} ms (see ${logFile})`)),
          timeoutMs,
        );
        const watcher = (line: string) => {
          if (match(line)) done(undefined, line);
        };
        const done = (err?: Error, line?: string) => {
          clearTimeout(timer);
          watchers.delete(watcher);
          if (err) reject(err);
          else resolveLine(line!);
        };
        watchers.add(watcher);
        void exited.then((code) =>
          done(new Error(`${name} exited with ${code} before it was ready (see ${logFile})`)),
        );
      });
    },
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      log.end();
    },
  };
  liveProcesses.add(proc);
  return proc;
}
