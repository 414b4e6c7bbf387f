import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { loadHistories, secretFindings, type RecordedHistory } from './history-files';

/**
 * Replay safety (issue 15): every history recorded from real runs of an earlier release
 * (test/replay/histories, see its README) must replay against the workflow code of this checkout.
 * A failure names the history; the fix is a `patched()` branch, never a re-recording (README,
 * "Changing workflow code").
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const histories = loadHistories();

// Replay workers log every start and stop, and Core logs each failed replay at WARN; a failure
// still surfaces as the test's own error, naming the history.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const bundle = (workflowsPath: string): Promise<WorkflowBundle> =>
  bundleWorkflowCode({ workflowsPath, logger: quiet });

/** Replays one history; undefined when it replays, otherwise the error, its message prefixed with the history's name. */
async function replay(workflowBundle: WorkflowBundle, recorded: RecordedHistory): Promise<Error | undefined> {
  try {
    await Worker.runReplayHistory(
      { workflowBundle, replayName: 'ccfs-replay' },
      recorded.history,
      recorded.name,
    );
    return undefined;
  } catch (err) {
    if (err instanceof Error) {
      err.message = `${recorded.name} (${recorded.workflowType}): ${err.message}`;
      return err;
    }
    return new Error(`${recorded.name} (${recorded.workflowType}): ${String(err)}`);
  }
}

describe('recorded histories', () => {
  it('cover every workflow type and the paths that matter', () => {
    expect(new Set(histories.map((h) => h.workflowType))).toEqual(
      new Set(['exportWorkflow', 'chunkWorkflow', 'dailyExportWorkflow', 'dayExportWorkflow']),
    );
    const names = histories.map((h) => h.name.split('/').at(-1));
    expect(names).toEqual(
      expect.arrayContaining([
        'export-continued-as-new-first',
        'export-continued-as-new-last',
        'chunk-late-callback',
        'export-cancelled',
        'chunk-cancelled',
        'daily-run',
        'daily-day',
        'daily-export',
        'chunk-verified',
        'chunk-empty',
      ]),
    );
  });

  it.each(histories.map((h) => [h.name, h] as const))('%s carries no secret', (_name, recorded) => {
    expect(secretFindings(recorded.json)).toEqual([]);
  });
});

describe('replay against the current workflow code', () => {
  let current: WorkflowBundle;
  beforeAll(async () => {
    current = await bundle(join(ROOT, 'workflows', 'index.ts'));
  });

  it.each(histories.map((h) => [h.name, h] as const))('replays %s', async (_name, recorded) => {
    const error = await replay(current, recorded);
    expect(error, error?.message).toBeUndefined();
  });
});

/**
 * The test above means something only if it fails on a real non-deterministic edit: a copy of
 * `workflows/` whose chunk workflow sleeps before its first activity must fail the replay of every
 * recorded chunk history with a DeterminismViolationError.
 */
describe('a non-deterministic edit to a copy of the workflows', () => {
  let dir: string;
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails the replay of every chunk history with a DeterminismViolationError', async () => {
    // The copy's siblings (domain/, node_modules/, …) are links to the real ones, so its imports
    // resolve as they do in the repository.
    dir = mkdtempSync(join(tmpdir(), 'ccfs-replay-edit-'));
    cpSync(join(ROOT, 'workflows'), join(dir, 'workflows'), { recursive: true });
    for (const entry of readdirSync(ROOT, { withFileTypes: true })) {
      if (entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== 'workflows') {
        symlinkSync(join(ROOT, entry.name), join(dir, entry.name), 'dir');
      }
    }
    const file = join(dir, 'workflows', 'chunk-workflow.ts');
    const source = readFileSync(file, 'utf8');
    const opening = /export async function chunkWorkflow\([^)]*\)[^{]*\{/;
    expect(source, 'the chunk workflow is no longer declared as this test expects').toMatch(opening);
    writeFileSync(
      file,
      `import { sleep as nonDeterministicSleep } from '@temporalio/workflow';\n${source.replace(
        opening,
        (head) => `${head}\n  await nonDeterministicSleep('1 second');`,
      )}`,
    );
    const edited = await bundle(join(dir, 'workflows', 'index.ts'));

    const chunks = histories.filter((h) => h.workflowType === 'chunkWorkflow');
    expect(chunks.length).toBeGreaterThan(0);
    for (const recorded of chunks) {
      const error = await replay(edited, recorded);
      expect(error, `${recorded.name} replayed despite the edit`).toBeInstanceOf(DeterminismViolationError);
    }
  });
});
