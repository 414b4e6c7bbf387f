import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { loadConfig, type Config } from '../lib/config';
import { buildExportRequest, describeIssues, StartExportInput } from '../lib/export-input';
import { ExportService } from '../lib/export-service';
import { temporalConnectionOptions } from '../lib/temporal';
import { simulatorCommand } from '../simulator/main';
import { FILTER_KEYS } from '../ccfs/protocol';
import { formatBytes, formatInstant, progressSummary, ProgressReporter, table } from './progress';
import { scheduleCommands } from './schedule';

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

async function connect(config: Config): Promise<{ service: ExportService; close(): Promise<void> }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: 5000 });
  } catch (err) {
    throw new CliError(
      `cannot reach Temporal at ${config.TEMPORAL_ADDRESS} (${err instanceof Error ? err.message : String(err)}); is \`npm start\` running, or TEMPORAL_ADDRESS set?`,
      EXIT.unavailable,
    );
  }
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const service = new ExportService(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE, uiUrl: config.TEMPORAL_UI_URL });
  return { service, close: () => connection.close() };
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

async function follow(service: ExportService, exportId: string, io: Io): Promise<FollowedStatus> {
  let reporter: ProgressReporter | undefined;
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
      io.err(`export ${exportId} ${status?.state ?? 'failed'}: ${err.cause?.message ?? err.message}`);
      if (status?.manifestPath) io.out(status.manifestPath);
      return EXIT.failures;
    }
    throw err;
  }
  if (json) io.out(await readFile(result.manifestPath, 'utf8').catch(() => JSON.stringify(result, null, 2)));
  else io.out(result.manifestPath);
  for (const c of result.failedChunks) io.err(`failed chunk ${c.index} ${c.begin} → ${c.end}: ${c.error ?? ''}`);
  return result.state === 'completed' ? EXIT.ok : EXIT.failures;
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
      return await fn(connected.service);
    } finally {
      await connected.close();
    }
  };

  const exportCmd = program
    .command('export')
    .description('start an export of a wall-clock range in the tenant time zone')
    .requiredOption('--from <time>', 'begin, "yyyy-MM-dd HH:mm:ss"')
    .requiredOption('--to <time>', 'end, "yyyy-MM-dd HH:mm:ss"')
    .addOption(new Option('--type <type>', 'what to export').choices(['call', 'record', 'call_record']).makeOptionMandatory())
    .option('--time-zone <zone>', 'IANA zone of the tenant (default: TENANT_TIME_ZONE)')
    .option('--export-id <id>', 'business ID; starting the same ID twice yields one export')
    .option('--chunk-hours <n>', 'largest chunk, at most 72', integer('--chunk-hours'))
    .option('--in-flight <n>', 'chunks in flight at once', integer('--in-flight'))
    .option('--callback-timeout <seconds>', 'wait this long for a callback before requesting again', integer('--callback-timeout'))
    .option('--wait', 'follow progress; exit 0 only when every chunk is verified or empty')
    .option('--json', 'with --wait, print the manifest; otherwise print the start result as JSON');
  for (const key of FILTER_KEYS) exportCmd.option(`--${key.replace(/[A-Z0-9]+/g, (m) => `-${m.toLowerCase()}`)} <value>`, `filter: ${key}`);
  exportCmd.action(async (opts: Record<string, string | number | boolean | undefined>) => {
    const config = getConfig();
    const filters = Object.fromEntries(FILTER_KEYS.filter((k) => opts[k] !== undefined).map((k) => [k, String(opts[k])]));
    const options = Object.fromEntries(
      Object.entries({ chunkHours: opts.chunkHours, maxChunksInFlight: opts.inFlight, callbackTimeoutSeconds: opts.callbackTimeout }).filter(
        ([, v]) => v !== undefined,
      ),
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
      throw new CliError(`invalid export:\n${describeIssues(parsed.error).map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    }
    const request = buildExportRequest(parsed.data, { timeZone: config.TENANT_TIME_ZONE, origin: 'cli' });
    await withService(async (service) => {
      const started = await service.start(request);
      if (!opts.wait) {
        if (opts.json) io.out(JSON.stringify(started, null, 2));
        else io.out(`${started.created ? 'started' : 'already exists'}: ${started.exportId}\n${started.links.temporalUi}`);
        return;
      }
      io.err(`${started.created ? 'started' : 'following existing'} export ${started.exportId}: ${started.links.temporalUi}`);
      await follow(service, started.exportId, io);
      exitCode = await finish(service, started.exportId, io, Boolean(opts.json));
    });
  });

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
        io.out(`${status.exportId}  ${status.state}  ${status.request.dataType} ${status.request.begin} → ${status.request.end} (${status.request.timeZone}), tenant ${status.request.tenant}`);
        io.out(progressSummary(status));
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
    .option('--state <state>', 'running | completed | completed_with_failures | cancelled')
    .option('--type <type>')
    .option('--limit <n>', 'at most this many', integer('--limit'), 50)
    .option('--json')
    .action(async (opts: { tenant?: string; state?: string; type?: string; limit: number; json?: boolean }) => {
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
              state: r.state ?? r.status.toLowerCase(),
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
    });

  program
    .command('cancel <exportId>')
    .description('stop an export; verified files and the manifest stay')
    .action(async (exportId: string) => {
      await withService(async (service) => {
        if (!(await service.cancel(exportId))) throw new CliError(`no export with ID ${exportId}`);
        io.out(`cancellation requested: ${exportId}`);
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
        if ('error' in started) throw new CliError(started.error === 'running' ? `export ${exportId} is still running` : `no export with ID ${exportId}`);
        io.err(`retrying export ${exportId}: ${started.links.temporalUi}`);
        if (opts.wait) {
          await follow(service, exportId, io);
          exitCode = await finish(service, exportId, io, Boolean(opts.json));
        }
      });
    });

  program.addCommand(simulatorCommand());
  for (const command of scheduleCommands({ io, getConfig, fail: (message, code) => new CliError(message, code) })) program.addCommand(command);
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
