import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../lib/config';
// @ts-expect-error -- plain ESM helper shared with the bootstrap (Node built-ins only, no types)
import { ensureTemporalCli } from '../scripts/temporal-cli.mjs';
import { Connection } from '@temporalio/client';
import { registerSearchAttributes } from '../scripts/register-search-attributes';
import { portIsFree, startDevServer, type DevServer } from './temporal-server';
import { lockDataDir, pidAlive, type LockOwner } from './data-dir-lock';
import { WORKER_MEMORY_ENV, workerNodeOptions } from '../worker/memory-settings';

/**
 * `npm start`: the whole service on one machine. A Temporal dev server with a SQLite file and its
 * UI, the worker, the API, and — when no real CC-FS is configured — the CC-FS simulator. Logs are
 * prefixed per component; Ctrl-C or SIGTERM stops every child before the launcher exits.
 */

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const env = process.env;
const DATA_DIR = resolve(env.DATA_DIR ?? join(ROOT, 'data'));
const int = (name: string, fallback: number) => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new ConfigError(`invalid configuration:\n  ${name}: must be a port number, got "${v}"`);
  return n;
};

const COLORS: Record<string, string> = {
  temporal: '35',
  simulator: '36',
  worker: '32',
  api: '34',
  launcher: '33',
};
const tty = Boolean(process.stdout.isTTY);
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

function say(component: string, line: string): void {
  const tag = component.padEnd(9);
  process.stdout.write(`${tty ? `\x1b[${COLORS[component] ?? '0'}m${tag}\x1b[0m` : tag} | ${line}\n`);
}

/** Structured JSON logs of the children, shown as one readable line each. */
function humanize(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const {
      level,
      time,
      msg,
      pid: _p,
      hostname: _h,
      name: _n,
      ...rest
    } = JSON.parse(line) as Record<string, unknown>;
    const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 19) : '';
    const fields = Object.entries(rest)
      .filter(([k]) => k !== 'sdk' && k !== 'component')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${at} ${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${typeof msg === 'string' ? msg : JSON.stringify(msg ?? '')}${fields ? `  ${fields}` : ''}`;
  } catch {
    return line;
  }
}

function devCredentials(): { ak: string; sk: string } {
  const file = join(DATA_DIR, 'dev-credentials.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as { ak: string; sk: string };
  const creds = { ak: 'dev-ak', sk: randomBytes(24).toString('base64url') };
  writeFileSync(file, JSON.stringify(creds), { mode: 0o600 });
  return creds;
}

/**
 * The management API's bearer token of this data directory: `DATA_DIR/api-token` (mode 0600), made
 * once and kept across restarts, so scripts and the UI's users can read it from the file. The CLI needs
 * none: it talks to Temporal, not to the API.
 */
function apiToken(): { token: string; file: string; created: boolean } {
  const file = join(DATA_DIR, 'api-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, file, created: false };
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file, created: true };
}

const children: Array<{ name: string; child: ChildProcess }> = [];

function run(name: string, script: string, childEnv: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...env, ...childEnv, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (l) => say(name, humanize(l)));
  }
  child.once('exit', (code, signal) => {
    if (!stopping) {
      say('launcher', `${name} exited unexpectedly (${signal ?? code}); stopping everything`);
      void shutdown(1);
    }
  });
  children.push({ name, child });
  return child;
}

let stopping = false;
let temporal: DevServer | undefined;
let releaseLock: (() => void) | undefined;

async function shutdown(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  say('launcher', 'stopping…');
  // Worker, API and simulator first, so nothing talks to Temporal while it stops; then Temporal,
  // whose SIGTERM closes the SQLite file cleanly.
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
        }),
    ),
  );
  await temporal?.stop();
  releaseLock?.();
  say('launcher', 'stopped');
  process.exit(code);
}

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (stopping) return;
    try {
      const res = await fetch(url);
      if (res.ok) return;
      last = await res.text();
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the API did not become healthy within ${timeoutMs / 1000} s (${last})`);
}

/** A second launcher on a data directory in use: says where the running one answers, starts nothing, exits 1. */
class AlreadyRunning extends Error {}

const STATE_FILE = () => join(DATA_DIR, 'launcher.json');

function readState(): { pids?: Record<string, number | undefined> } & LockOwner['urls'] {
  try {
    return JSON.parse(readFileSync(STATE_FILE(), 'utf8')) as {
      pids?: Record<string, number | undefined>;
    } & LockOwner['urls'];
  } catch {
    return {};
  }
}

/** Whether `pid` is a Temporal server (Linux /proc; elsewhere any live pid counts, erring on the safe side). */
function isTemporalProcess(pid: number | undefined): pid is number {
  if (pid === undefined || !pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('temporal');
  } catch {
    return !existsSync('/proc');
  }
}

function takeDataDirLock(urls: LockOwner['urls']): void {
  const lock = lockDataDir(DATA_DIR, urls);
  if (!lock.acquired) {
    // launcher.json has the URLs once the stack is up; the lock has them from the start.
    const state = readState();
    const shown = Object.entries({
      ...lock.owner.urls,
      ...Object.fromEntries(Object.entries(state).filter(([k]) => k !== 'pids' && k !== 'outputDir')),
    })
      .filter((e): e is [string, string] => typeof e[1] === 'string')
      .map(([k, v]) => `  ${k.padEnd(16)} ${v}`);
    throw new AlreadyRunning(
      [
        `ccfs-export is already running on ${DATA_DIR} (launcher pid ${lock.owner.pid}, since ${lock.owner.startedAt}); use it:`,
        ...shown,
        `To run a second, separate stack, give it its own DATA_DIR (and ports); stop this one with Ctrl-C in its terminal or \`kill ${lock.owner.pid}\`.`,
      ].join('\n'),
    );
  }
  // A launcher killed with SIGKILL leaves its Temporal server behind, still holding the SQLite file.
  const orphan = readState().pids?.temporal;
  if (lock.tookOverFrom !== undefined && isTemporalProcess(orphan)) {
    lock.release();
    throw new AlreadyRunning(
      `a Temporal server (pid ${orphan}) left by a stopped launcher (pid ${lock.tookOverFrom}) still uses ${join(DATA_DIR, 'temporal.db')}: stop it (\`kill ${orphan}\`), then run npm start again`,
    );
  }
  if (lock.tookOverFrom !== undefined)
    say(
      'launcher',
      `took over the lock of ${DATA_DIR} from launcher pid ${lock.tookOverFrom}, which is gone`,
    );
  releaseLock = () => {
    // launcher.json describes a running stack: it goes with the lock.
    rmSync(STATE_FILE(), { force: true });
    lock.release();
  };
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  // `npm start` runs us under `sh -c`, which dies on SIGTERM without passing it on: when our parent
  // goes away, stop everything rather than leave orphans behind.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void shutdown(0);
  }, 500).unref();
  mkdirSync(DATA_DIR, { recursive: true });

  const external = Boolean(env.TEMPORAL_ADDRESS);
  const ports = {
    TEMPORAL_PORT: int('TEMPORAL_PORT', 7233),
    TEMPORAL_UI_PORT: int('TEMPORAL_UI_PORT', 8233),
    API_PORT: int('API_PORT', 3000),
    SIMULATOR_PORT: int('SIMULATOR_PORT', 8480),
    WORKER_METRICS_PORT: int('WORKER_METRICS_PORT', 9464),
  };
  const useSimulator = !env.CCFS_BASE_URL;
  // Before the port checks: their advice ("set API_PORT to a free port") would otherwise lead to a
  // second stack on the same data/temporal.db.
  takeDataDirLock({
    api: `http://localhost:${ports.API_PORT}`,
    temporalUi: external ? undefined : `http://localhost:${ports.TEMPORAL_UI_PORT}`,
    temporalAddress: external ? env.TEMPORAL_ADDRESS : `localhost:${ports.TEMPORAL_PORT}`,
    simulator: useSimulator ? `http://127.0.0.1:${ports.SIMULATOR_PORT}` : undefined,
  });
  const needed = Object.entries(ports).filter(
    ([k]) => (external ? !k.startsWith('TEMPORAL') : true) && (useSimulator || k !== 'SIMULATOR_PORT'),
  );
  if (needed.some(([k]) => k === 'WORKER_METRICS_PORT'))
    needed.push(['WORKER_METRICS_PORT + 1', ports.WORKER_METRICS_PORT + 1]);
  for (const [name, port] of needed) {
    if (!(await portIsFree(port))) {
      throw new ConfigError(
        `port ${port} (${name}) is already in use: stop what uses it, or set ${name.split(' ')[0]} to a free port`,
      );
    }
  }

  const childEnv: NodeJS.ProcessEnv = {
    API_PORT: String(ports.API_PORT),
    WORKER_METRICS_PORT: String(ports.WORKER_METRICS_PORT),
    OUTPUT_DIR: env.OUTPUT_DIR ?? join(DATA_DIR, 'exports'),
    CALLBACK_BASE_URL: env.CALLBACK_BASE_URL ?? `http://127.0.0.1:${ports.API_PORT}`,
  };
  if (!external) {
    const cli = (ensureTemporalCli as (log?: (l: string) => void) => string)((l: string) =>
      say('launcher', l),
    );
    say('temporal', `starting Temporal dev server (SQLite ${join(DATA_DIR, 'temporal.db')})`);
    temporal = await startDevServer({
      cli,
      port: ports.TEMPORAL_PORT,
      uiPort: ports.TEMPORAL_UI_PORT,
      dbFile: join(DATA_DIR, 'temporal.db'),
      logFile: join(DATA_DIR, 'logs', 'temporal.log'),
      readyTimeoutMs: 90_000,
    });
    temporal.process.once('exit', (code, signal) => {
      if (!stopping) {
        say(
          'launcher',
          `Temporal exited unexpectedly (${signal ?? code}); see ${join(DATA_DIR, 'logs', 'temporal.log')}`,
        );
        void shutdown(1);
      }
    });
    // `--search-attribute` registers attributes only in a new SQLite file: a data/ from an older
    // version would lack attributes added since, and the workflows that set them would be stuck.
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const { added } = await registerSearchAttributes(connection, 'default');
      if (added.length > 0) say('temporal', `registered search attributes ${added.join(', ')}`);
    } finally {
      await connection.close();
    }
    childEnv.TEMPORAL_ADDRESS = temporal.address;
    childEnv.TEMPORAL_UI_URL = temporal.uiUrl;
  }
  if (useSimulator) {
    const creds = devCredentials();
    Object.assign(childEnv, {
      CCFS_BASE_URL: `http://127.0.0.1:${ports.SIMULATOR_PORT}`,
      CCFS_AK: creds.ak,
      CCFS_SK: creds.sk,
      SIMULATOR_PORT: String(ports.SIMULATOR_PORT),
      SIMULATOR_TIME_ZONE: env.SIMULATOR_TIME_ZONE ?? env.TENANT_TIME_ZONE ?? 'UTC',
    });
    say('launcher', 'CCFS_BASE_URL is not set: starting the CC-FS simulator with development credentials');
    run('simulator', 'simulator/main.ts', childEnv);
  }
  // Secure by default: the API gets a token unless the operator gave tokens or opened it explicitly.
  let tokenFile: string | undefined;
  if (!env.API_TOKENS && env.API_AUTH !== 'none') {
    const { token, file, created } = apiToken();
    childEnv.API_TOKENS = token;
    tokenFile = file;
    if (created) say('launcher', `generated the management API's bearer token into ${file}`);
  }
  // Fail here, with the key named, rather than in two children at once.
  loadConfig({ ...env, ...childEnv }, '');
  // The worker starts with the product's memory settings (worker/memory-settings.ts); the operator's
  // own NODE_OPTIONS come after them, so they win, and an operator's MALLOC_ARENA_MAX is kept.
  run('worker', 'worker/main.ts', {
    ...childEnv,
    MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? WORKER_MEMORY_ENV.MALLOC_ARENA_MAX,
    NODE_OPTIONS: [workerNodeOptions(), env.NODE_OPTIONS].filter(Boolean).join(' '),
  });
  run('api', 'api/main.ts', childEnv);

  const api = `http://localhost:${ports.API_PORT}`;
  await waitForHealth(`${api}/healthz`, 90_000);
  if (stopping) return;
  const state = {
    api,
    temporalUi: temporal?.uiUrl,
    temporalAddress: childEnv.TEMPORAL_ADDRESS ?? env.TEMPORAL_ADDRESS,
    simulator: useSimulator ? childEnv.CCFS_BASE_URL : undefined,
    outputDir: childEnv.OUTPUT_DIR,
    pids: Object.fromEntries<number | undefined>([
      ...children.map(({ name, child }): [string, number | undefined] => [name, child.pid]),
      ['temporal', temporal?.process.pid],
    ]),
  };
  writeFileSync(STATE_FILE(), JSON.stringify(state, null, 2));
  say('launcher', 'ready');
  say('launcher', `  API          ${api}  (GET /healthz, POST /exports)`);
  if (temporal?.uiUrl) say('launcher', `  Temporal UI  ${temporal.uiUrl}`);
  if (useSimulator) say('launcher', `  simulator    ${childEnv.CCFS_BASE_URL}`);
  say('launcher', `  output       ${childEnv.OUTPUT_DIR}`);
  if (tokenFile)
    say(
      'launcher',
      `  API token    ${tokenFile}  (curl -H "Authorization: Bearer $(cat ${tokenFile})" ${api}/exports)`,
    );
  else if (env.API_AUTH === 'none')
    say('launcher', '  API token    none: API_AUTH=none leaves the management API open');
  // The CLI talks to Temporal itself: with other than the default ports it must be told where.
  const cliEnv = Object.entries({
    TEMPORAL_ADDRESS: childEnv.TEMPORAL_ADDRESS ?? env.TEMPORAL_ADDRESS,
    TEMPORAL_UI_URL: temporal?.uiUrl,
    TEMPORAL_TASK_QUEUE: env.TEMPORAL_TASK_QUEUE,
    // coverage, status and list read the output too: a CLI run in another folder or with another
    // DATA_DIR would look in its own ./data/exports and call verified days missing.
    OUTPUT_DIR: childEnv.OUTPUT_DIR ? resolve(childEnv.OUTPUT_DIR) : undefined,
  })
    .filter(([k, v]) => v !== undefined && v.replace('127.0.0.1', 'localhost') !== CLI_DEFAULTS[k])
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  say(
    'launcher',
    `  try: ${cliEnv}npx ccfs-export export --from "2024-03-01 00:00:00" --to "2024-03-10 00:00:00" --type call_record --wait`,
  );
}

/** What the CLI assumes when a variable is unset (lib/config.ts): no need to print these. */
const CLI_DEFAULTS: Record<string, string> = {
  TEMPORAL_ADDRESS: 'localhost:7233',
  TEMPORAL_UI_URL: 'http://localhost:8233',
  TEMPORAL_TASK_QUEUE: 'ccfs-export',
  OUTPUT_DIR: resolve('data/exports'),
};

main().catch(async (err: unknown) => {
  if (err instanceof AlreadyRunning) {
    // Nothing of ours is running and the lock is not ours: exit without the stopping/stopped lines.
    for (const line of err.message.split('\n')) say('launcher', line);
    process.exit(1);
  }
  say('launcher', err instanceof Error ? err.message : String(err));
  await shutdown(1);
});
