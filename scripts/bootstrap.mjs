#!/usr/bin/env node
// Makes a fresh clone runnable: installs npm dependencies when missing or stale, and the Temporal
// CLI when none is found. Idempotent; when everything is in place it only compares a hash and runs
// `temporal --version`. Node built-ins only, since it runs before `npm ci`. It never writes a tracked
// file: package-lock.json is installed from, not updated.
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureTemporalCli } from './temporal-cli.mjs';
import { ensurePostgres } from './postgres.mjs';

const log = (line) => console.error(line);

function lockHash(lock) {
  return createHash('sha256').update(readFileSync(lock)).update(process.version).digest('hex');
}

function ensureNodeModules() {
  const lock = join(ROOT, 'package-lock.json');
  const stamp = join(ROOT, 'node_modules', '.ccfs-export-lock-hash');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === lockHash(lock)) return;
  // `npm ci` installs exactly the committed lock file and never rewrites it, so a fresh clone stays
  // clean (`git status`) after its first start. The lock holds the platform packages of @swc/core
  // for every platform, which older lock files lacked and `npm ci` refused. Should the lock not match
  // package.json (an edit without `npm install`), `npm install --no-save` installs without writing it.
  log('bootstrap: installing npm dependencies (npm ci)');
  try {
    execSync('npm ci --no-audit --no-fund --loglevel=error', { cwd: ROOT, stdio: 'inherit' });
  } catch {
    log(
      'bootstrap: npm ci failed (package-lock.json does not match package.json?); trying npm install --no-save',
    );
    execSync('npm install --no-save --no-audit --no-fund --loglevel=error', { cwd: ROOT, stdio: 'inherit' });
  }
  // Stamped from the lock as it is now, so the next start compares against what was installed.
  writeFileSync(stamp, lockHash(lock));
}

// `npm test` also needs a browser for the Temporal UI test: Debian's chromium (never a downloaded
// one). Installed with apt-get when missing and possible; otherwise the test names what to install.
function ensureChromium() {
  if (existsSync('/usr/bin/chromium')) return;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = existsSync('/usr/bin/apt-get');
  if (!root || !apt) {
    log(
      'bootstrap: /usr/bin/chromium is missing (apt-get install chromium); the Temporal UI test will fail without it',
    );
    return;
  }
  log('bootstrap: installing Debian chromium for the Temporal UI test (apt-get)');
  try {
    execSync('apt-get install -y -qq chromium', { stdio: 'ignore' });
  } catch {
    execSync('apt-get update -qq && apt-get install -y -qq chromium', { stdio: 'inherit' });
  }
}

try {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 15))
    throw new Error(`Node ${process.version} is too old: ccfs-export needs Node >= 20.15`);
  ensureNodeModules();
  ensureTemporalCli(log);
  if (process.argv.includes('--test')) {
    ensureChromium();
    // The loader's tests start private clusters of Debian's PostgreSQL server (scripts/postgres.mjs).
    ensurePostgres(log);
  }
} catch (error) {
  log(`bootstrap failed: ${error.message}`);
  process.exit(1);
}
