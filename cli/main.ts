import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { connectClientServices, TemporalUnavailableError, type ClientServices } from '../lib/client-services';
import { issueLines, loadConfig, type Config } from '../lib/config';
import { StartExportInput } from '../lib/export-input';
import {
  EXPORT_STATES,
  ExportRequestError,
  ExportService,
  STATE_ALIASES,
  normalizeState,
  type ExportStatusView,
} from '../lib/export-service';
import { UnknownTenantError } from '../lib/tenants';
import { simulatorCommand } from '../simulator/main';
import { FILTER_KEYS } from '../ccfs/protocol';
import { formatBytes, formatInstant, ProgressReporter, table, waitingSummary } from './progress';
import { scheduleCommands } from './schedule';
import { resolve } from 'node:path';
import { ExportNotFoundError, loadExport } from '../lib/loader/load-export';
import { Loader } from '../lib/loader/loader';
import { loadExportAndWait } from '../lib/loader/load-service';
import type { LoadExportWorkflowResult } from '../workflows/definitions';

/** Exit codes: 0 all chunks verified or empty; 1 usage or input error; 2 export finished with failures or was cancelled; 3 cannot reach Temporal. */
export const EXIT = { ok: 0, usage: 1, failures: 2, unavailable: 3 } as const;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

const integer = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number`);
  return n;
};

const positive = (name: string, max: number) => (value: string) => {
  const n = integer(name)(value);
  if (n < 1 || n > max) throw new InvalidArgumentError(`${name} must be from 1 to ${max}`);
  return n;
};

const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

async function connect(config: Config): Promise<ClientServices> {
  try {
    return await connectClientServices(config);
  } catch (err) {
    if (err instanceof TemporalUnavailableError) throw new CliError(err.message, EXIT.unavailable);
    throw err;
  }
}

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Whether progress goes to a terminal (stderr): a redrawn bar there, plain lines elsewhere. */
  tty: boolean;
  /** Width of that terminal, when known. */
  columns?: number;
  /** Rewrites the current line (TTY only). */
  status: (line: string) => void;
  /** Time between two polls of a followed export. */
  pollMs?: number;
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  tty: Boolean(process.stderr.isTTY),
  columns: process.stderr.columns,
  status: (line) => process.stderr.write(`\r\x1b[2K${line}`),
};

/** Follows an export until it finishes; returns its final status. */
type FollowedStatus = NonNullable<Awaited<ReturnType<ExportService['status']>>>;

/** Exit code of a follow interrupted by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/**
 * What Ctrl-C while following leaves behind, said before exiting: the export runs in Temporal, not in
 * this process, so it goes on — and how to follow it again or cancel it.
 */
export function interruptedLines(exportId: string, links: { temporalUi: string }): string[] {
  return [
    `stopped following; export ${exportId} goes on in Temporal (this command only watched it).`,
    `  follow:  ccfs-export status ${exportId} --watch`,
    `  UI:      ${links.temporalUi}`,
    `  cancel:  ccfs-export cancel ${exportId}`,
  ];
}

async function follow(service: ExportService, exportId: string, io: Io): Promise<FollowedStatus> {
  let reporter: ProgressReporter | undefined;
  // Ctrl-C stops the watching, not the export: say so, then exit 130 once stderr is written.
  const onInterrupt = () => {
    reporter?.finish();
    reporter = undefined;
    io.err('');
    for (const line of interruptedLines(exportId, service.links(exportId))) io.err(line);
    process.stderr.write('', () => process.exit(EXIT_INTERRUPTED));
  };
  const interruptible = io === defaultIo;
  if (interruptible) process.once('SIGINT', onInterrupt);
  try {
    for (;;) {
      const status = await service.status(exportId);
      if (!status) throw new CliError(`no export with ID ${exportId}`);
      reporter ??= new ProgressReporter(io, { exportStartedAt: Date.parse(status.startTime) });
      reporter.update(status);
      if (status.status !== 'RUNNING') return status;
      await new Promise((r) => setTimeout(r, io.pollMs ?? 1000));
    }
  } finally {
    if (interruptible) process.removeListener('SIGINT', onInterrupt);
    reporter?.finish();
  }
}

async function finish(service: ExportService, exportId: string, io: Io, json: boolean): Promise<number> {
  let result;
  try {
    result = await service.result(exportId);
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const status = await service.status(exportId);
      const state = status?.state ?? 'failed';
      io.err(`export ${exportId} ${state}: ${err.cause?.message ?? err.message}`);
      // With --json stdout stays JSON whatever happened: the manifest, or what is known without one.
      if (json) {
        const manifest = status?.manifestPath
          ? await readFile(status.manifestPath, 'utf8').catch(() => undefined)
          : undefined;
        io.out(
          manifest ?? JSON.stringify({ exportId, state, error: err.cause?.message ?? err.message }, null, 2),
        );
      } else if (status?.manifestPath) io.out(status.manifestPath);
      return EXIT.failures;
    }
    throw err;
  }
  if (json) io.out(await readFile(result.manifestPath, 'utf8').catch(() => JSON.stringify(result, null, 2)));
  else io.out(result.manifestPath);
  for (const c of result.failedChunks)
    io.err(`failed chunk ${c.index} ${c.begin} → ${c.end}: ${c.error ?? ''}`);
  return result.state === 'completed' ? EXIT.ok : EXIT.failures;
}

/**
 * `7/12 chunks (58%), 1 failed, 4 cancelled, 2 running, 34,210 rows, 12.3 MB`: failed and cancelled
 * chunks each by their own name, so a cancelled export does not read as failed.
 */
export function statusCounts(status: Pick<ExportStatusView, 'counts' | 'totals'>): string {
  const c = status.counts;
  const done = c.verified + c.empty + c.failed + c.cancelled;
  const total = status.totals.chunks;
  return (
    `${done}/${total} chunks (${total === 0 ? 100 : Math.floor((done / total) * 100)}%)` +
    (c.failed > 0 ? `, ${c.failed} failed` : '') +
    (c.cancelled > 0 ? `, ${c.cancelled} cancelled` : '') +
    `, ${c.running} running, ${status.totals.rows.toLocaleString('en-US')} rows, ${formatBytes(status.totals.bytes)}`
  );
}

/** Builds the CLI. `config` is read lazily, so `--help` works without any environment. */
export function createCli(io: Io = defaultIo, getConfig: () => Config = () => loadConfig()): Command {
  let exitCode: number = EXIT.ok;
  const program = new Command('ccfs-export')
    .description('Durable export of CDRs and recording indexes from a Huawei AICC CC-FS, on Temporal')
    .showHelpAfterError()
    .exitOverride();

  const withService = async <T>(fn: (service: ExportService) => Promise<T>): Promise<T> => {
    const connected = await connect(getConfig());
    try {
      return await fn(connected.exports);
    } finally {
      await connected.close();
    }
  };

  const exportCmd = program
    .command('export')
    .description('start an export of a wall-clock range in the tenant time zone')
    .requiredOption('--from <time>', 'begin, "yyyy-MM-dd HH:mm:ss"')
    .requiredOption('--to <time>', 'end, "yyyy-MM-dd HH:mm:ss"')
    .addOption(
      new Option('--type <type>', 'what to export')
        .choices(['call', 'record', 'call_record'])
        .makeOptionMandatory(),
    )
    .option(
      '--time-zone <zone>',
      "IANA zone of the range (default: the tenant's zone in TENANTS_FILE, else TENANT_TIME_ZONE)",
    )
    .option('--export-id <id>', 'business ID; starting the same ID twice yields one export')
    .option('--chunk-hours <n>', 'largest chunk, at most 72', integer('--chunk-hours'))
    .option('--in-flight <n>', 'chunks in flight at once', integer('--in-flight'))
    .option(
      '--callback-timeout <seconds>',
      'wait this long for a callback before requesting again',
      integer('--callback-timeout'),
    )
    .option(
      '--probe-interval <seconds>',
      'while waiting, try the documented file names this often (callbacks may be lost); default 120, 30 with CALLBACK_MODE=none',
      number('--probe-interval'),
    )
    .option(
      '--allow-partial',
      'export a range that has not ended yet (marked partial); without it such a range is refused',
    )
    .option('--wait', 'follow progress; exit 0 only when every chunk is verified or empty')
    .option('--json', 'with --wait, print the manifest; otherwise print the start result as JSON');
  for (const key of FILTER_KEYS)
    exportCmd.option(
      `--${key.replace(/[A-Z0-9]+/g, (m) => `-${m.toLowerCase()}`)} <value>`,
      `filter: ${key}`,
    );
  exportCmd.action(async (opts: Record<string, string | number | boolean | undefined>) => {
    const config = getConfig();
    const filters = Object.fromEntries(
      FILTER_KEYS.filter((k) => opts[k] !== undefined).map((k) => [k, String(opts[k])]),
    );
    const options = Object.fromEntries(
      Object.entries({
        chunkHours: opts.chunkHours,
        maxChunksInFlight: opts.inFlight,
        callbackTimeoutSeconds: opts.callbackTimeout,
        probeIntervalSeconds: opts.probeInterval,
      }).filter(([, v]) => v !== undefined),
    );
    const parsed = StartExportInput.safeParse({
      exportId: opts.exportId,
      from: opts.from,
      to: opts.to,
      dataType: opts.type,
      timeZone: opts.timeZone,
      filters: Object.keys(filters).length > 0 ? filters : undefined,
      options: Object.keys(options).length > 0 ? options : undefined,
    });
    if (!parsed.success) {
      throw new CliError(`invalid export:\n${issueLines(parsed.error, '(body)')}`);
    }
    const connected = await connect(config);
    try {
      await startExport(connected, parsed.data, opts);
    } finally {
      await connected.close();
    }
  });
  const startExport = async (
    connected: ClientServices,
    input: StartExportInput,
    opts: Record<string, string | number | boolean | undefined>,
  ): Promise<void> => {
    const service = connected.exports;
    let request;
    try {
      // The tenant's zone (TENANTS_FILE) and its refusal, exactly as the API applies them.
      request = connected.exportRequest(input, 'cli');
    } catch (err) {
      if (err instanceof UnknownTenantError) throw new CliError(err.message);
      throw err;
    }
    let started;
    try {
      started = await service.start(request, {}, { allowPartial: Boolean(opts.allowPartial) });
    } catch (err) {
      if (err instanceof ExportRequestError) throw new CliError(err.message);
      throw err;
    }
    if (!opts.wait) {
      if (opts.json) io.out(JSON.stringify(started, null, 2));
      else
        io.out(
          `${started.created ? 'started' : 'already exists'}: ${started.exportId}\n${started.links.temporalUi}`,
        );
      return;
    }
    io.err(
      `${started.created ? 'started' : 'following existing'} export ${started.exportId}: ${started.links.temporalUi}`,
    );
    await follow(service, started.exportId, io);
    exitCode = await finish(service, started.exportId, io, Boolean(opts.json));
  };

  program
    .command('status <exportId>')
    .description('show the ledger of an export')
    .option('--watch', 'follow progress until the export finishes')
    .option('--json', 'print the status as JSON')
    .action(async (exportId: string, opts: { watch?: boolean; json?: boolean }) => {
      await withService(async (service) => {
        const status = opts.watch ? await follow(service, exportId, io) : await service.status(exportId);
        if (!status) throw new CliError(`no export with ID ${exportId}`);
        if (opts.json) {
          io.out(JSON.stringify(status, null, 2));
          return;
        }
        io.out(
          `${status.exportId}  ${status.state}  ${status.request.dataType} ${status.request.begin} → ${status.request.end} (${status.request.timeZone}), tenant ${status.request.tenant}`,
        );
        io.out(statusCounts(status));
        // What holds the export up, when a chunk does (the same words as the --wait progress line).
        const waiting = waitingSummary(status, Date.now());
        if (waiting) io.out(waiting);
        if (status.partial)
          io.out(
            `partial: ${(status.request as { partial?: { reason?: string } }).partial?.reason ?? 'the range had not ended when the export started'}`,
          );
        io.out('');
        io.out(
          table(
            status.chunks.map((c) => ({
              chunk: c.index,
              begin: c.begin,
              end: c.end,
              state: c.state,
              requests: c.requests,
              rows: c.rows,
              bytes: c.bytes === undefined ? undefined : formatBytes(c.bytes),
              error: c.error,
            })),
            ['chunk', 'begin', 'end', 'state', 'requests', 'rows', 'bytes', 'error'],
          ),
        );
        io.out('');
        if (status.manifestPath) io.out(`manifest:    ${status.manifestPath}`);
        io.out(`Temporal UI: ${status.links.temporalUi}`);
        io.out(`chunks:      ${status.links.temporalUiChunks}`);
      });
    });

  program
    .command('list')
    .description('list exports (from Temporal visibility)')
    .option('--tenant <tenant>')
    .addOption(
      new Option('--state <state>', `the export's state (canceled = cancelled)`)
        .choices([...EXPORT_STATES, ...Object.keys(STATE_ALIASES)])
        .argParser((v: string) => {
          if (![...EXPORT_STATES, ...Object.keys(STATE_ALIASES)].includes(v))
            throw new InvalidArgumentError(
              `Allowed choices are ${EXPORT_STATES.join(', ')} (canceled is read as cancelled).`,
            );
          return normalizeState(v);
        }),
    )
    .option('--type <type>')
    .option('--limit <n>', 'at most this many (1–1000)', positive('--limit', 1000), 50)
    .option('--json')
    .action(
      async (opts: { tenant?: string; state?: string; type?: string; limit: number; json?: boolean }) => {
        const zone = getConfig().TENANT_TIME_ZONE;
        await withService(async (service) => {
          const filters = { tenant: opts.tenant, state: opts.state, dataType: opts.type, limit: opts.limit };
          const rows = await service.list(filters);
          if (opts.json) {
            io.out(JSON.stringify(rows, null, 2));
            return;
          }
          const at = (iso: string | undefined) => formatInstant(iso, zone);
          const columns = ['export', 'state', 'tenant', 'type', `from (${zone})`, 'to', 'started', 'closed'];
          io.out(
            table(
              rows.map((r) => ({
                export: r.exportId,
                state: r.state,
                tenant: r.tenant,
                type: r.dataType,
                [columns[4]!]: at(r.rangeBegin),
                to: at(r.rangeEnd),
                started: at(r.startTime),
                closed: at(r.closeTime),
              })),
              columns,
            ),
          );
          io.out(`${rows.length} export(s); Temporal UI: ${service.uiListLink(service.listQuery(filters))}`);
        });
      },
    );

  program
    .command('cancel <exportId>')
    .description('stop an export; verified files and the manifest stay')
    .action(async (exportId: string) => {
      await withService(async (service) => {
        const outcome = await service.cancel(exportId);
        if (!outcome) throw new CliError(`no export with ID ${exportId}`);
        // Exit 0 either way: the export is not running afterwards, which is what was asked.
        if (!outcome.cancelRequested)
          io.out(
            `export ${exportId} already finished (${outcome.state}): nothing to cancel, nothing changed`,
          );
        else {
          io.out(`cancellation requested: ${exportId}`);
          io.err(
            `verified files and the manifest stay; \`ccfs-export status ${exportId}\` shows when it has stopped`,
          );
        }
      });
    });

  program
    .command('retry <exportId>')
    .description('run the failed chunks of a finished export again; verified chunks are not downloaded again')
    .option('--wait', 'follow progress until the export finishes')
    .option('--json')
    .action(async (exportId: string, opts: { wait?: boolean; json?: boolean }) => {
      await withService(async (service) => {
        const started = await service.retry(exportId);
        if ('error' in started) {
          if (started.error === 'nothing-to-retry') {
            io.out(
              `export ${exportId} ${started.state}: every chunk is verified or empty, nothing to retry; nothing started`,
            );
            return;
          }
          throw new CliError(
            started.error === 'running'
              ? `export ${exportId} is still running`
              : `no export with ID ${exportId}`,
          );
        }
        io.err(`retrying export ${exportId}: ${started.links.temporalUi}`);
        if (opts.wait) {
          await follow(service, exportId, io);
          exitCode = await finish(service, exportId, io, Boolean(opts.json));
        }
      });
    });

  program
    .command('load <exportId>')
    .description(
      "load an existing export into PostgreSQL, idempotently: through the workers (their LOAD_DATABASE_URL), or into this environment's LOAD_DATABASE_URL when set",
    )
    .option('--json')
    .action(async (exportId: string, opts: { json?: boolean }) => {
      const config = getConfig();
      let result: LoadExportWorkflowResult;
      try {
        if (config.LOAD_DATABASE_URL) {
          // Straight from OUTPUT_DIR into this environment's database (e.g. another one than the workers').
          const loader = new Loader({ databaseUrl: config.LOAD_DATABASE_URL.reveal() });
          try {
            result = await loadExport(loader, resolve(config.OUTPUT_DIR), exportId);
          } finally {
            await loader.close();
          }
        } else {
          result = await withService((service) =>
            loadExportAndWait(service.client, service.settings.taskQueue, exportId),
          );
        }
      } catch (err) {
        if (err instanceof ExportNotFoundError) throw new CliError(err.message);
        if (err instanceof WorkflowFailedError)
          throw new CliError(`load of ${exportId} failed: ${err.cause?.message ?? err.message}`);
        throw err;
      }
      if (opts.json) io.out(JSON.stringify(result, null, 2));
      else {
        for (const c of result.chunks) {
          const l = c.load;
          io.out(
            l
              ? `chunk ${c.index}: ${l.rowsInFiles} rows in files = ${l.rowsInserted} inserted + ${l.rowsAlreadyPresent} already present${l.ok ? '' : ` — MISMATCH: ${(l.mismatches ?? []).join('; ')}`}`
              : `chunk ${c.index}: not loaded: ${c.error ?? ''}`,
          );
        }
        const t = result.totals;
        io.out(
          `export ${exportId}: ${t.loaded}/${t.chunks} verified chunks loaded, ${t.rowsInFiles} rows in files = ${t.rowsInserted} inserted + ${t.rowsAlreadyPresent} already present`,
        );
      }
      if (!result.ok) exitCode = EXIT.failures;
    });

  program.addCommand(simulatorCommand());
  for (const command of scheduleCommands({
    io,
    getConfig,
    fail: (message, code) => new CliError(message, code),
  }))
    program.addCommand(command);
  program.hook('postAction', () => {
    process.exitCode = exitCode;
  });
  return program;
}

export async function runCli(argv: string[], io: Io = defaultIo): Promise<number> {
  const program = createCli(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.ok;
    if (e.code?.startsWith('commander.')) return EXIT.usage; // commander already printed the message
    if (err instanceof CliError) {
      io.err(`error: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof Error && err.name === 'ConfigError') {
      io.err(`error: ${err.message}`);
      return EXIT.usage;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.unavailable;
  }
}
