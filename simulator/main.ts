import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../lib/logger';
import { type RunningSimulator, startSimulator } from './app';
import { CliOptionsPatch, FaultsPatch, type SimulatorOptions } from './options';

/**
 * `tsx simulator/main.ts --port 8480 --seed 1 --ak dev-ak --sk dev-sk` — the CC-FS simulator as a
 * standalone process, for local runs, benchmarks and end-to-end tests. Flags win over environment
 * variables, which win over defaults.
 */

function number(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('not a number');
  return n;
}

/** `--options` JSON: any further setting of `SimulatorOptions`, checked by the simulator's own schema. */
function optionsJson(value: string): Partial<SimulatorOptions> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('not JSON');
  }
  const result = CliOptionsPatch.safeParse(parsed);
  if (!result.success) {
    throw new InvalidArgumentError(
      result.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '),
    );
  }
  return result.data;
}

function faultsJson(value: string): SimulatorOptions['faults'] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('not JSON');
  }
  const result = FaultsPatch.safeParse(parsed);
  if (!result.success) {
    throw new InvalidArgumentError(
      result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  }
  return result.data;
}

interface CliOptions {
  port: number;
  host: string;
  seed: string;
  ak: string;
  sk: string;
  accountId?: string;
  developer?: string;
  timeZone: string;
  callbackDelayMs?: number;
  callbackRetryIntervalMs?: number;
  callbackMaxAttempts?: number;
  signCallbacks: boolean;
  callbackCa?: string;
  headerRow: boolean;
  filesPerKind?: number;
  callsPerHour?: number;
  endExclusive?: boolean;
  maxSpanSeconds?: number;
  maxOutstandingQueries?: number;
  fileTtlMs?: number;
  padCallFileToBytes?: number;
  extraCdrColumns?: boolean;
  responseIdHyphens?: boolean;
  skewSeconds?: number;
  lockAfterFailures?: number;
  faults?: SimulatorOptions['faults'];
  options?: Partial<SimulatorOptions>;
}

export interface SimulatorCliHooks {
  /** Called once the simulator listens. */
  onStarted?: (running: RunningSimulator) => void;
  /** Install SIGINT/SIGTERM handlers that close and exit. Default true. */
  handleSignals?: boolean;
}

/** The `simulator` command, to run alone or to mount in the product CLI (`ccfs-export simulator …`). */
export function simulatorCommand(hooks: SimulatorCliHooks = {}): Command {
  return new Command('simulator')
    .description('Run the CC-FS simulator (queryBillData / downloadBillFile) on a port')
    .addOption(
      new Option('--port <n>', 'port to listen on (0 = any)')
        .env('SIMULATOR_PORT')
        .argParser(number)
        .default(8480),
    )
    .addOption(new Option('--host <host>', 'address to bind').env('SIMULATOR_HOST').default('127.0.0.1'))
    .addOption(
      new Option('--seed <seed>', 'seed of all synthetic data and fault decisions')
        .env('SIMULATOR_SEED')
        .default('1'),
    )
    .addOption(new Option('--ak <ak>', 'access key accepted').env('CCFS_AK').makeOptionMandatory())
    .addOption(new Option('--sk <sk>', 'secret key of the access key').env('CCFS_SK').makeOptionMandatory())
    .addOption(new Option('--account-id <id>', 'tenant space id of the account').env('SIMULATOR_ACCOUNT_ID'))
    .addOption(new Option('--developer <id>', 'value of the developer column'))
    .addOption(
      new Option('--time-zone <zone>', 'IANA zone of the tenant').env('SIMULATOR_TIME_ZONE').default('UTC'),
    )
    .addOption(
      new Option('--callback-delay-ms <ms>', 'query to generated file and first callback')
        .env('SIMULATOR_CALLBACK_DELAY_MS')
        .argParser(number),
    )
    .addOption(
      new Option('--callback-retry-interval-ms <ms>', 'between callback attempts')
        .env('SIMULATOR_CALLBACK_RETRY_INTERVAL_MS')
        .argParser(number),
    )
    .addOption(
      new Option('--callback-max-attempts <n>', 'callback attempts before giving up').argParser(number),
    )
    .addOption(new Option('--no-sign-callbacks', 'send callbacks without an Authorization header'))
    .addOption(new Option('--callback-ca <file>', 'PEM CA file to trust for https callbacks'))
    .addOption(new Option('--no-header-row', 'CSV files without a header row'))
    .addOption(new Option('--files-per-kind <n>', 'CSV files per kind in each ZIP').argParser(number))
    .addOption(
      new Option('--calls-per-hour <n>', 'data density').env('SIMULATOR_CALLS_PER_HOUR').argParser(number),
    )
    .addOption(new Option('--end-exclusive', 'a call beginning exactly at endTime is not in range'))
    .addOption(new Option('--max-span-seconds <s>', 'largest endTime - beginTime accepted').argParser(number))
    .addOption(
      new Option('--max-outstanding-queries <n>', 'queries not yet generated before 0300009').argParser(
        number,
      ),
    )
    .addOption(new Option('--file-ttl-ms <ms>', 'generated files expire after this').argParser(number))
    .addOption(
      new Option('--pad-call-file-to-bytes <n>', 'pad the call CSV to at least this size')
        .env('SIMULATOR_PAD_CALL_FILE_TO_BYTES')
        .argParser(number),
    )
    .addOption(new Option('--extra-cdr-columns', 'two undocumented trailing CDR columns'))
    .addOption(new Option('--response-id-hyphens', 'hyphenated responseId'))
    .addOption(new Option('--skew-seconds <s>', 'accepted signature timestamp skew').argParser(number))
    .addOption(
      new Option('--lock-after-failures <n>', 'bad signatures before an IP is locked').argParser(number),
    )
    .addOption(
      new Option('--faults <json>', 'initial faults, e.g. {"dropCallback":0.1}')
        .env('SIMULATOR_FAULTS')
        .argParser(faultsJson),
    )
    .addOption(
      new Option(
        '--options <json>',
        'further settings as JSON (the names of SimulatorOptions), e.g. {"emptyRange":"download-0300012","callbackHost":"no-port","csv":{"bom":true}}; flags win',
      )
        .env('SIMULATOR_OPTIONS')
        .argParser(optionsJson),
    )
    .action(async (cli: CliOptions) => {
      const logger = createLogger({ name: 'ccfs-simulator' });
      const options: SimulatorOptions & { port: number; host: string } = {
        port: cli.port,
        host: cli.host,
        seed: /^-?\d+$/.test(cli.seed) ? Number(cli.seed) : cli.seed,
        accounts: [{ ak: cli.ak, sk: cli.sk, accountId: cli.accountId, developer: cli.developer }],
        timeZone: cli.timeZone,
        callbackDelayMs: cli.callbackDelayMs,
        callbackRetryIntervalMs: cli.callbackRetryIntervalMs,
        callbackMaxAttempts: cli.callbackMaxAttempts,
        signCallbacks: cli.signCallbacks,
        callbackCa: cli.callbackCa === undefined ? undefined : readFileSync(cli.callbackCa, 'utf8'),
        headerRow: cli.headerRow,
        filesPerKind: cli.filesPerKind,
        callsPerHour: cli.callsPerHour,
        endInclusive: cli.endExclusive ? false : undefined,
        maxSpanSeconds: cli.maxSpanSeconds,
        maxOutstandingQueries: cli.maxOutstandingQueries,
        fileTtlMs: cli.fileTtlMs,
        padCallFileToBytes: cli.padCallFileToBytes,
        extraCdrColumns: cli.extraCdrColumns,
        responseIdHyphens: cli.responseIdHyphens,
        skewSeconds: cli.skewSeconds,
        lockAfterFailures: cli.lockAfterFailures,
        faults: cli.faults,
        logger,
      };
      // Flags that were given win over --options; the ones left unset fall back to it, then to the defaults.
      for (const [key, value] of Object.entries(cli.options ?? {})) {
        const k = key as keyof SimulatorOptions;
        if (options[k] === undefined) (options as unknown as Record<string, unknown>)[k] = value;
      }
      const running = await startSimulator(options);
      logger.info(
        {
          url: running.url,
          ak: cli.ak,
          seed: options.seed,
          timeZone: cli.timeZone,
          faults: cli.faults ?? {},
        },
        'CC-FS simulator listening',
      );
      if (hooks.handleSignals !== false) {
        const stop = (signal: NodeJS.Signals): void => {
          logger.info({ signal }, 'CC-FS simulator stopping');
          running.close().then(
            () => process.exit(0),
            (err: unknown) => {
              logger.error({ err }, 'CC-FS simulator did not close cleanly');
              process.exit(1);
            },
          );
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      hooks.onStarted?.(running);
    });
}

/** Parses `argv` (the arguments only, without node and script) and starts the simulator. */
export async function runSimulatorCli(
  argv: string[],
  hooks: SimulatorCliHooks = {},
): Promise<RunningSimulator> {
  let running: RunningSimulator | undefined;
  await simulatorCommand({
    ...hooks,
    onStarted: (r) => {
      running = r;
      hooks.onStarted?.(r);
    },
  }).parseAsync(argv, { from: 'user' });
  if (!running) throw new Error('simulator did not start');
  return running;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  runSimulatorCli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
