import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { workflowLogFields, type Logger } from './logger';

/** Sends the Temporal SDK's own logs (worker, core, workflow `log`) to the product's pino logger. */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const method =
      ({ TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const)[level] ??
      'info';
    // Workflow and activity logs carry workflowId in their metadata; exportId and chunk come from it.
    this.pino[method]({ ...workflowLogFields(meta?.workflowId), ...(meta ?? {}), sdk: true }, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
