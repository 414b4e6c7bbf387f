import pino, { type Logger } from 'pino';
import { EXPORT_WORKFLOW_PREFIX } from '../workflows/definitions';

export type { Logger };

/**
 * Paths redacted wherever they appear in a log record, as a second line of defence: secrets are
 * kept out of log calls in the first place.
 */
const REDACT = [
  'sk',
  '*.sk',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'CCFS_SK',
  '*.CCFS_SK',
];

export interface LoggerOptions {
  level?: string;
  /** `pretty` for people at a terminal, `json` for log shippers. */
  format?: 'json' | 'pretty';
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    name: options.name,
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  const format = options.format ?? (process.env.LOG_FORMAT === 'pretty' ? 'pretty' : 'json');
  if (format === 'pretty') {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { colorize: process.stdout.isTTY, ignore: 'pid,hostname' },
      },
    });
  }
  // Asynchronous writes to stdout: a synchronous write per line cost the API a measurable share of
  // each callback (bench/results/README.md, callbacks). Lines still go out as soon as the event loop
  // is free (no minimum batch), and pino flushes what is pending synchronously when the process exits.
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything: for tests and library defaults. */
export const silentLogger: Logger = pino({ level: 'silent' });

const WORKFLOW_ID = new RegExp(`^${EXPORT_WORKFLOW_PREFIX}/([^/]+)(?:/chunk-(\\d+))?$`);

/**
 * The log fields of a workflow ID: `workflowId`, and the `exportId` and `chunk` it names
 * (`ccfs-export/<exportId>[/chunk-NNNN]`), so every line about an export or a chunk — the API's, the
 * activities', the SDK's own — can be found by the same fields.
 */
export function workflowLogFields(workflowId: unknown): {
  workflowId?: string;
  exportId?: string;
  chunk?: number;
} {
  if (typeof workflowId !== 'string') return {};
  const match = WORKFLOW_ID.exec(workflowId);
  if (!match) return { workflowId };
  return match[2] === undefined
    ? { workflowId, exportId: match[1] }
    : { workflowId, exportId: match[1], chunk: Number(match[2]) };
}
