import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { createCli } from '../../cli/main';

/**
 * The README's CLI table is what users type from: every option it names must exist on that command,
 * and every option a command's `--help` lists must be in its row — so the README cannot drift from
 * the CLI (it once said `--callee-no2` for `--callee-no-2` and left out half of `schedule create`).
 */

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** Rows of the table under `### CLI`: the command cell's code span (with `\|` unescaped). */
function readmeRows(): string[] {
  const section = README.slice(README.indexOf('### CLI'), README.indexOf('### API'));
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => /^\| `((?:[^`])+)`/.exec(l)![1]!.replaceAll('\\|', '|'));
}

/** `schedule pause|resume ID [--note TEXT]` → [['schedule', 'pause'], ['schedule', 'resume']]. */
function commandPaths(code: string): string[][] {
  const words: string[][] = [];
  for (const token of code.split(/\s+/)) {
    if (!/^[a-z][a-z-]*(\|[a-z][a-z-]*)*$/.test(token)) break;
    words.push(token.split('|'));
  }
  return words.reduce<string[][]>(
    (paths, alternatives) => paths.flatMap((p) => alternatives.map((a) => [...p, a])),
    [[]],
  );
}

function findCommand(program: Command, path: string[]): Command | undefined {
  let cmd: Command | undefined = program;
  for (const name of path) cmd = cmd?.commands.find((c) => c.name() === name);
  return cmd;
}

const longOptions = (cmd: Command) =>
  cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined && l !== '--help');

/** Every runnable command: leaves of the command tree, by path. */
function leafCommands(cmd: Command, path: string[] = []): string[][] {
  if (cmd.commands.length === 0) return [path];
  return cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => leafCommands(c, [...path, c.name()]));
}

describe("the README's CLI table against the CLI", () => {
  const program = createCli();
  const rows = readmeRows().map((code) => ({
    code,
    paths: commandPaths(code),
    options: code.match(/--[a-z0-9-]+/g) ?? [],
  }));

  it('has a row for every command', () => {
    const documented = new Set(rows.flatMap((r) => r.paths.map((p) => p.join(' '))));
    expect(rows.length).toBeGreaterThan(5);
    for (const path of leafCommands(program))
      expect(documented, `README has no row for \`${path.join(' ')}\``).toContain(path.join(' '));
  });

  it('names only options that exist, and every option of each command', () => {
    for (const row of rows) {
      for (const path of row.paths) {
        const cmd = findCommand(program, path);
        expect(cmd, `README names a command \`${path.join(' ')}\` the CLI does not have`).toBeDefined();
        const actual = longOptions(cmd!);
        for (const option of row.options)
          expect(actual, `\`${path.join(' ')}\` has no ${option} (README: ${row.code})`).toContain(option);
        // The simulator's many settings are documented in simulator/README.md and its --help.
        if (path[0] === 'simulator') continue;
        for (const option of actual)
          expect(row.options, `README's row for \`${path.join(' ')}\` lacks ${option}`).toContain(option);
      }
    }
  });
});
