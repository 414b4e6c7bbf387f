import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { History } from '@temporalio/common/lib/proto-utils';
import { historyFromJson } from './proto-json';

/** Where the recorded histories live (test/replay/README.md says where each came from). */
export const HISTORIES_DIR = fileURLToPath(new URL('./histories/', import.meta.url));

export interface RecordedHistory {
  /** Path below `HISTORIES_DIR` without `.json`, e.g. `chunk-late-callback`. */
  name: string;
  workflowType: string;
  history: History;
  /** The file as parsed JSON (payloads still base64). */
  json: unknown;
}

/** Every `*.json` below `dir` (subdirectories included, so older recordings can be kept side by side), sorted by name. */
export function loadHistories(dir = HISTORIES_DIR): RecordedHistory[] {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((file) => {
    const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
    const history = historyFromJson(json);
    const workflowType = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
    if (!workflowType) throw new Error(`${file}: the first event is not WorkflowExecutionStarted`);
    return { name: relative(dir, join(dir, file)).replace(/\.json$/, ''), workflowType, history, json };
  });
}

/** The text of every payload in a history's JSON: proto JSON carries payload data as base64 in `data`. */
export function decodedPayloads(json: unknown): string[] {
  const out: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        if (key === 'data' && typeof v === 'string') out.push(Buffer.from(v, 'base64').toString('utf8'));
        else walk(v);
      }
    }
  };
  walk(json);
  return out;
}

/**
 * Secrets that must never reach a history: the given literal secrets (the test SK), and what would
 * betray one: a callback routing token (`/callbacks/ccfs/<token>`), an auth-v2 Authorization value,
 * or an SK in the tests' `sk-<uuid>` form. Returns one line per finding; empty when clean.
 */
export function secretFindings(json: unknown, secrets: readonly string[] = []): string[] {
  const texts = [JSON.stringify(json), ...decodedPayloads(json)];
  const findings: string[] = [];
  const patterns: Array<[string, RegExp]> = [
    ['callback routing token', /\/callbacks\/ccfs\/[A-Za-z0-9_-]{8,}/],
    ['auth-v2 Authorization value', /auth-v2\/[^/\s]+\/\d{4}-\d{2}-\d{2}T/],
    ['test SK', /(?<![A-Za-z0-9])sk-[0-9a-f]{8}-[0-9a-f]{4}-/],
  ];
  for (const text of texts) {
    for (const [i, secret] of secrets.entries())
      if (secret && text.includes(secret)) findings.push(`secret #${i}`);
    for (const [what, pattern] of patterns) if (pattern.test(text)) findings.push(what);
  }
  return [...new Set(findings)];
}
