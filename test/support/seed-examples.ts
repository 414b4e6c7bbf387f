import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The examples of the seed page (Huawei's queryBillData documentation, copied verbatim into
 * test/fixtures/seed/) and the fixtures extracted from it by hand. Readers here pull the examples
 * out of the page's text, so a test can check the fixtures still say what the page says.
 */

export const SEED_DIR = join(__dirname, '../fixtures/seed');
export const SEED_FILE = '000_96406ef5d30a352a.txt';

export function seedText(): string {
  return readFileSync(join(SEED_DIR, SEED_FILE), 'utf8');
}

export interface HttpExample {
  method?: string;
  path?: string;
  status?: number;
  callBackURL?: string;
  headers: Record<string, string>;
  authorization?: string;
  body: unknown;
}

export function fixture(name: 'query-request' | 'query-response' | 'callback'): HttpExample {
  return JSON.parse(readFileSync(join(SEED_DIR, `${name}.json`), 'utf8')) as HttpExample;
}

/** The JSON example that follows `label` in the page, as its exact text (indentation removed). */
export function seedJsonAfter(label: string): string {
  const text = seedText();
  const at = text.indexOf(label);
  if (at < 0) throw new Error(`label "${label}" not in the seed`);
  const open = text.indexOf('{', at + label.length);
  let depth = 0;
  let end = open;
  for (; end < text.length; end++) {
    if (text[end] === '{') depth++;
    if (text[end] === '}' && --depth === 0) break;
  }
  const lineStart = text.lastIndexOf('\n', open) + 1;
  const indent = text.slice(lineStart, open).length;
  return text
    .slice(open, end + 1)
    .split('\n')
    .map((line) => line.slice(Math.min(indent, line.length - line.trimStart().length)))
    .join('\n');
}

/**
 * The header block that follows `label`: its first line (request or status line) and its headers.
 * The page wraps the long Authorization value onto a line of its own starting with `/`.
 */
export function seedHeadersAfter(label: string): { firstLine: string; headers: Record<string, string> } {
  const text = seedText();
  const at = text.indexOf(label);
  if (at < 0) throw new Error(`label "${label}" not in the seed`);
  const lines = text
    .slice(at + label.length)
    .split('\n')
    .slice(1)
    .map((l) => l.trim());
  while (lines[0] === '') lines.shift();
  const firstLine = lines.shift()!;
  const headers: Record<string, string> = {};
  let last: string | undefined;
  for (const line of lines) {
    if (line === '' || line.startsWith('•')) break;
    if (line.startsWith('/') && last) headers[last] += line;
    else {
      const i = line.indexOf(':');
      last = line.slice(0, i);
      headers[last] = line.slice(i + 1).trim();
    }
  }
  return { firstLine, headers };
}
