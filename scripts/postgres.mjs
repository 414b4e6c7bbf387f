// Debian's PostgreSQL server for the loader's tests and benchmark (issue 17): found under
// /usr/lib/postgresql/<major>/bin, installed with apt-get when missing (like chromium), and started as a
// private throw-away cluster (initdb + pg_ctl in a temporary folder, on a free loopback port). Never a
// mock, never an in-memory imitation. Node built-ins only: the bootstrap runs this before `npm ci`.
import { execFileSync, execSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DEBIAN_ROOT = '/usr/lib/postgresql';

/** The newest installed server's bin folder (`/usr/lib/postgresql/15/bin`), or undefined. */
export function findPostgresBin() {
  if (process.env.POSTGRES_BIN && existsSync(join(process.env.POSTGRES_BIN, 'initdb')))
    return process.env.POSTGRES_BIN;
  if (!existsSync(DEBIAN_ROOT)) return undefined;
  const majors = readdirSync(DEBIAN_ROOT)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(DEBIAN_ROOT, d, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors.length > 0 ? join(DEBIAN_ROOT, majors[0], 'bin') : undefined;
}

/** Installs Debian's `postgresql` when no server is found and apt-get can run; otherwise says what is missing. */
export function ensurePostgres(log = (line) => console.error(line)) {
  if (findPostgresBin()) return;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) {
    log(
      'bootstrap: no PostgreSQL server found (apt-get install postgresql); the loader tests will fail without it',
    );
    return;
  }
  log('bootstrap: installing Debian postgresql for the loader tests (apt-get)');
  // The package's own cluster is not needed: the tests start private ones, so no service is started.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execSync('apt-get install -y -qq postgresql', { stdio: 'ignore', env });
  } catch {
    execSync('apt-get update -qq && apt-get install -y -qq postgresql', { stdio: 'inherit', env });
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a private cluster: `{ url, port, dir, stop() }`. The server refuses to run as root, so as
 * root the cluster's folder is given to the `postgres` system user and the binaries run as that user.
 * Durability settings are off (fsync, full pages): the cluster is thrown away after the run.
 * Throws when no server is installed.
 */
export async function startPostgres(options = {}) {
  const bin = findPostgresBin();
  if (!bin)
    throw new Error('no PostgreSQL server installed (apt-get install postgresql, or npm test bootstraps it)');
  const dir = mkdtempSync(join(options.parent ?? tmpdir(), 'ccfs-pg-'));
  const data = join(dir, 'data');
  const port = options.port ?? (await freePort());
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const run = (cmd, args) => {
    const full = join(bin, cmd);
    if (asRoot) execFileSync('/usr/sbin/runuser', ['-u', 'postgres', '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  if (asRoot) {
    chmodSync(dir, 0o700);
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  run('initdb', ['-D', data, '-U', 'ccfs', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses='127.0.0.1'",
    '-c fsync=off',
    '-c full_page_writes=off',
    '-c synchronous_commit=off',
    '-c max_connections=60',
  ].join(' ');
  run('pg_ctl', ['-D', data, '-o', settings, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  const url = `postgres://ccfs@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    port,
    dir,
    bin,
    /** Creates a database (for one test) and returns its URL. */
    createDatabase(name) {
      run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'ccfs', name]);
      return `postgres://ccfs@127.0.0.1:${port}/${name}`;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
