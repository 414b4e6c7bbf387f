import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/processes';

/**
 * Policy: the first `npm start` of a fresh clone installs what the committed package-lock.json says
 * and leaves every tracked file as it was; a second start installs nothing. Runs the bootstrap in a
 * real clone of this repository's HEAD (npm packages from the registry or npm's cache).
 */
describe('bootstrap of a fresh clone', () => {
  const clone = mkdtempSync(join(tmpdir(), 'ccfs-clone-'));
  afterAll(() => rmSync(clone, { recursive: true, force: true }));

  it(
    'installs from the committed lock without changing it, and installs nothing the second time',
    { timeout: 900_000 },
    () => {
      execFileSync('git', ['clone', '--quiet', ROOT, clone]);
      const bootstrap = () =>
        spawnSync(process.execPath, ['scripts/bootstrap.mjs'], {
          cwd: clone,
          encoding: 'utf8',
          timeout: 600_000,
        });

      const first = bootstrap();
      expect(first.status, first.stderr).toBe(0);
      expect(first.stderr).toContain('installing npm dependencies');
      expect(existsSync(join(clone, 'node_modules', '@temporalio', 'client'))).toBe(true);
      const diff = spawnSync('git', ['diff', '--stat', '--exit-code'], { cwd: clone, encoding: 'utf8' });
      expect(diff.stdout, 'tracked files changed by the bootstrap').toBe('');
      expect(diff.status).toBe(0);

      const second = bootstrap();
      expect(second.status, second.stderr).toBe(0);
      expect(second.stderr).not.toContain('installing npm dependencies');
      expect(second.stderr).not.toContain('installing temporal');
      expect(
        spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: clone, encoding: 'utf8' })
          .stdout,
      ).toBe('');
    },
  );
});
