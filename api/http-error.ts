import type { ErrorRequestHandler } from 'express';
import { z } from 'zod';
import type { Logger } from '../lib/logger';
import { describeIssues } from '../lib/export-input';
import { WorkerUnavailableError } from '../lib/export-service';

/** An error a handler throws to answer with a status and a stable code; the message is shown as is. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** The one error middleware: typed errors become JSON, zod errors 400 with field paths, the rest 500 without internals. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (err instanceof HttpError) {
      res.status(err.status).json(err.body ?? { error: err.code, message: err.message });
      return;
    }
    if (err instanceof WorkerUnavailableError) {
      // Not the caller's fault and not ours to hide: the operator must start a worker.
      res.status(503).json({ error: 'no_worker', message: err.message });
      return;
    }
    if (err instanceof z.ZodError) {
      res
        .status(400)
        .json({ error: 'invalid_request', message: 'the request is not valid', issues: describeIssues(err) });
      return;
    }
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json({ error: 'payload_too_large', message: 'the request body is too large' });
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'invalid_json', message: 'the request body is not valid JSON' });
      return;
    }
    // Other body-parser refusals (unsupported encoding or charset, aborted upload) are the caller's.
    if (
      (err as { expose?: boolean }).expose === true &&
      typeof e.status === 'number' &&
      e.status >= 400 &&
      e.status < 500
    ) {
      res.status(e.status).json({ error: 'unreadable_body', message: 'the request body cannot be read' });
      return;
    }
    logger.error(
      { err: err instanceof Error ? { name: err.name, message: err.message } : String(err), path: req.path },
      'request failed',
    );
    res.status(500).json({ error: 'internal', message: 'internal error' });
  };
}
