import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One `npm start` per data directory. Two Temporal dev servers on one SQLite file fight over shard
 * ownership and corrupt each other's view, so the launcher takes `DATA_DIR/launcher.lock` — created
 * with O_EXCL, holding the owner's pid and URLs — before it starts anything, and removes it when it
 * stops. A lock whose pid is gone (a launcher killed with SIGKILL, a reboot) is stale and taken over.
 */

export const LOCK_FILE = 'launcher.lock';

/** What the lock file holds: who runs the stack and where it answers. */
export interface LockOwner {
  pid: number;
  startedAt: string;
  /** URLs of the running stack, for the "already running" message. */
  urls: Record<string, string | undefined>;
}

export type LockResult =
  { acquired: true; release: () => void; tookOverFrom?: number } | { acquired: false; owner: LockOwner };

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    return typeof parsed.pid === 'number'
      ? { pid: parsed.pid, startedAt: String(parsed.startedAt ?? ''), urls: parsed.urls ?? {} }
      : undefined;
  } catch {
    // Unreadable or half-written (the owner died between open and write): treated as stale.
    return undefined;
  }
}

/**
 * Takes the lock of `dataDir` for this process. Returns the live owner when another process holds it;
 * takes over a lock whose owner is dead. `release` removes the lock only while it is still ours.
 */
export function lockDataDir(dataDir: string, urls: LockOwner['urls']): LockResult {
  const file = join(dataDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, startedAt: new Date().toISOString(), urls };
  let tookOverFrom: number | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      try {
        writeSync(fd, JSON.stringify(me, null, 2));
      } finally {
        closeSync(fd);
      }
      return {
        acquired: true,
        tookOverFrom,
        release: () => {
          if (readOwner(file)?.pid === process.pid) unlinkSync(file);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(file);
    if (owner && owner.pid !== process.pid && pidAlive(owner.pid)) return { acquired: false, owner };
    tookOverFrom = owner?.pid;
    if (existsSync(file)) unlinkSync(file);
  }
  throw new Error(`could not take ${file}: another launcher keeps creating it`);
}
