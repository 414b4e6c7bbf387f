import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../dev/temporal-server';
// @ts-expect-error -- plain ESM helper shared with the bootstrap (Node built-ins only, no types)
import { VENV } from '../../scripts/temporal-cli.mjs';

/**
 * A real S3-compatible server for the storage tests: moto's standalone server (`moto_server`), a
 * Python implementation of the S3 REST API with multipart uploads and additional checksums. It is
 * installed on demand into the project venv, like the Temporal CLI; a failed install is an error,
 * never a skipped test.
 */

/** Pinned, so every machine tests against the same server. */
export const MOTO_REQUIREMENT = 'moto[server]==5.2.5';

const venv = VENV as string;
const bin = (name: string) =>
  join(
    venv,
    process.platform === 'win32' ? 'Scripts' : 'bin',
    process.platform === 'win32' ? `${name}.exe` : name,
  );

const INSTALL_HINT =
  `moto_server (${MOTO_REQUIREMENT}) was not found and could not be installed into ${venv}. ` +
  'Install Python 3 with venv and pip (Debian: apt-get install python3 python3-venv python3-pip) and run the tests again, ' +
  `or install it by hand: ${bin('python')} -m pip install '${MOTO_REQUIREMENT}'`;

/** Finds moto_server in the venv or installs the pinned version; throws with a hint when it cannot. */
export function ensureMotoServer(log: (line: string) => void = (l) => console.error(l)): string {
  const server = bin('moto_server');
  if (existsSync(server)) return server;
  try {
    if (!existsSync(bin('python'))) {
      log(`s3-server: creating ${venv}`);
      execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    }
    log(`s3-server: installing ${MOTO_REQUIREMENT} from PyPI into .venv`);
    execFileSync(
      bin('python'),
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', MOTO_REQUIREMENT],
      { stdio: 'inherit' },
    );
  } catch (error) {
    throw new Error(`${INSTALL_HINT}\n(${(error as Error).message})`);
  }
  if (!existsSync(server)) throw new Error(INSTALL_HINT);
  return server;
}

export interface S3Server {
  endpoint: string;
  /** Credentials the server accepts (moto accepts any; these are what the tests sign with). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  process: ChildProcess;
  close(): Promise<void>;
}

/** Starts moto_server on a free local port and waits until it answers. */
export async function startS3Server(): Promise<S3Server> {
  const server = ensureMotoServer();
  const port = await freePort();
  const output: string[] = [];
  const child = spawn(server, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = String(signal ?? code);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== undefined)
      throw new Error(`moto_server exited (${exited}) before it was ready:\n${output.join('').slice(-2000)}`);
    const ok = await fetch(`${endpoint}/moto-api/`).then(
      (r) => r.status < 500,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `moto_server did not answer on ${endpoint} within 30 s:\n${output.join('').slice(-2000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoint,
    credentials: { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key' },
    region: 'us-east-1',
    process: child,
    async close() {
      if (exited !== undefined) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    },
  };
}
