import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Lints a real file inside workflows/ (the rule is scoped by path), then removes it. */
async function lintWorkflowSource(source: string): Promise<string[]> {
  const file = `workflows/lint-probe-${randomBytes(4).toString('hex')}.ts`;
  created.push(`${ROOT}${file}`);
  writeFileSync(`${ROOT}${file}`, source);
  const [result] = await new ESLint({ cwd: ROOT }).lintFiles([file]);
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

const created: string[] = [];
afterEach(() => {
  for (const f of created.splice(0)) rmSync(f, { force: true });
});

describe('workflow import boundary', () => {
  it('rejects a Node built-in imported inside workflows/', async () => {
    const messages = await lintWorkflowSource(
      "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
    );
    expect(messages.some((m) => m.startsWith('no-restricted-imports') && m.includes('node:fs'))).toBe(true);
  }, 60_000);

  it('rejects activity code and the client SDK, but allows type-only activity imports', async () => {
    const bad = await lintWorkflowSource(
      "import { createActivities } from '../activities';\nimport { Client } from '@temporalio/client';\nexport const y = [createActivities, Client];\n",
    );
    expect(bad.filter((m) => m.startsWith('no-restricted-imports'))).toHaveLength(2);
    const ok = await lintWorkflowSource(
      "import type { Activities } from '../activities';\nexport type A = Activities;\n",
    );
    expect(ok.filter((m) => m.startsWith('no-restricted-imports'))).toEqual([]);
  }, 60_000);
});
