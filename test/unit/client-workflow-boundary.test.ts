import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const created: string[] = [];
afterEach(() => {
  for (const f of created.splice(0)) rmSync(f, { force: true });
});

/** Lints a real file in `dir` (the rule is scoped by path), then removes it; the restricted-import messages. */
async function restrictedImports(dir: string, source: string): Promise<string[]> {
  const file = `${dir}/lint-probe-${randomBytes(4).toString('hex')}.ts`;
  created.push(`${ROOT}${file}`);
  writeFileSync(`${ROOT}${file}`, source);
  const [result] = await new ESLint({ cwd: ROOT }).lintFiles([file]);
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

/** The same, for files that exist: what the rule says about the real modules. */
async function restrictedImportsIn(files: string[]): Promise<string[]> {
  const results = await new ESLint({ cwd: ROOT }).lintFiles(files);
  return results.flatMap((r) =>
    r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => `${r.filePath}: ${m.message}`),
  );
}

describe('outside workflows/: no values from workflow files', () => {
  it('lib/ importing a value from a *-workflow file is rejected, naming where the value belongs', async () => {
    const messages = await restrictedImports(
      'lib',
      "import { dailyExportWorkflow } from '../workflows/daily-export-workflow';\nexport const f = dailyExportWorkflow;\n",
    );
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('../workflows/daily-export-workflow');
    expect(messages[0]).toContain('workflows/definitions.ts');
  }, 60_000);

  it("the bundle's index is a workflow file too, from lib/ and from a test two levels down", async () => {
    expect(
      await restrictedImports(
        'lib',
        "import { exportWorkflow } from '../workflows';\nexport const f = exportWorkflow;\n",
      ),
    ).toHaveLength(1);
    expect(
      await restrictedImports(
        'test/unit',
        "import { chunkWorkflow } from '../../workflows/index';\nimport { loadExportWorkflow } from '../../workflows/load-export-workflow';\nexport const f = [chunkWorkflow, loadExportWorkflow];\n",
      ),
    ).toHaveLength(2);
  }, 60_000);

  it('domain/ may not reach into a workflow file either, and keeps its own sandbox rules', async () => {
    const messages = await restrictedImports(
      'domain',
      "import { dayExportWorkflow } from '../workflows/daily-export-workflow';\nimport { readFileSync } from 'node:fs';\nexport const f = [dayExportWorkflow, readFileSync];\n",
    );
    expect(messages).toHaveLength(2);
  }, 60_000);

  it('type imports of workflow functions, definitions and search attributes are allowed', async () => {
    const messages = await restrictedImports(
      'lib',
      [
        "import type { dayExportWorkflow } from '../workflows/daily-export-workflow';",
        "import { type exportWorkflow } from '../workflows/export-workflow';",
        "import { dayWorkflowId, WorkflowType } from '../workflows/definitions';",
        "import { DayKey } from '../workflows/search-attributes';",
        'export type W = [typeof dayExportWorkflow, typeof exportWorkflow];',
        'export const f = [dayWorkflowId, WorkflowType, DayKey];',
        '',
      ].join('\n'),
    );
    expect(messages).toEqual([]);
  }, 60_000);

  it('the services that used to import daily-export values hold the boundary', async () => {
    expect(
      await restrictedImportsIn([
        'lib/coverage.ts',
        'lib/schedule-service.ts',
        'lib/export-service.ts',
        'lib/export-records.ts',
        'lib/client-services.ts',
        'cli/schedule.ts',
      ]),
    ).toEqual([]);
  }, 120_000);
});
