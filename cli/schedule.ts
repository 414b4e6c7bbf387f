import { Command, InvalidArgumentError, Option } from 'commander';
import type { Client } from '@temporalio/client';
import { connectClientServices, TemporalUnavailableError, type ClientServices } from '../lib/client-services';
import type { z } from 'zod';
import { FILTER_KEYS } from '../ccfs/protocol';
import type { Config } from '../lib/config';
import { join, resolve } from 'node:path';
import { writeJsonAtomic } from '../activities/output-store';
import { loadCoverage, type PairCoverage } from '../lib/coverage';
import { ExportRecords, LocalRecordSource } from '../lib/export-records';
import { describeIssues } from '../lib/export-input';
import {
  BackfillInput,
  CreateScheduleInput,
  Day,
  ScheduleError,
  type ScheduleService,
  type ScheduleView,
} from '../lib/schedule-service';
import { table } from './progress';

/** What the schedule commands need from the CLI around them (cli/main.ts). */
export interface ScheduleCliContext {
  io: { out: (line: string) => void; err: (line: string) => void };
  getConfig: () => Config;
  /** Builds the CLI's own error (printed as `error: …`, exit code 1 by default, 3 = Temporal unreachable). */
  fail: (message: string, exitCode?: number) => Error;
}

const UNAVAILABLE = 3;

const integer = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number`);
  return n;
};

const flag = (key: string) => `--${key.replace(/[A-Z0-9]+/g, (m) => `-${m.toLowerCase()}`)}`;

function scheduleLines(s: ScheduleView): string[] {
  const filters = Object.entries(s.filters)
    .filter(([k]) => k !== 'accountId')
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return [
    `${s.scheduleId}  ${s.paused ? 'PAUSED' : 'active'}  ${s.dataType} of tenant ${s.tenant}${filters ? ` (${filters})` : ''}`,
    `  runs daily at ${s.at} ${s.timeZone}, exporting the local day before; catch-up window ${s.catchupWindow}, overlap ${s.overlap}`,
    ...(s.note ? [`  note: ${s.note}`] : []),
    `  actions taken: ${s.actionsTaken}${s.actionsMissedCatchupWindow ? `, missed (outside the catch-up window): ${s.actionsMissedCatchupWindow}` : ''}`,
    ...s.nextRuns.map((r) => `  next: ${r.scheduledAt} → day ${r.day}`),
    ...s.recentRuns.slice(-5).map((r) => `  ran:  ${r.scheduledAt} → day ${r.day}  ${r.workflowId ?? ''}`),
    ...s.runningWorkflowIds.map((id) => `  running: ${id}`),
    `  Temporal UI: ${s.links.temporalUi}`,
  ];
}

/** Coverage as a few lines per tenant and data type: ranges of days by state, then the days that need attention. */
export function coverageLines(c: PairCoverage): string[] {
  const lines = [
    `${c.tenant} / ${c.dataType}${c.timeZone ? ` (${c.timeZone})` : ''}: complete through ${c.completeThrough ?? '— (first day not exported)'}` +
      (c.from && c.to ? `; window ${c.from} … ${c.to}` : '; nothing due yet'),
    `  ${
      Object.entries(c.counts)
        .filter(([, n]) => n > 0)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ') || 'no days'
    }`,
  ];
  for (const r of c.ranges)
    lines.push(
      `  ${r.from === r.to ? r.from.padEnd(23) : `${r.from} … ${r.to}`}  ${r.state}${r.days > 1 ? ` (${r.days} days)` : ''}`,
    );
  for (const d of c.attention)
    lines.push(
      `  ! ${d.day} ${d.state}${d.error ? `: ${d.error}` : ''}${d.workflowId ? `  [${d.workflowId}]` : ''}`,
    );
  return lines;
}

/** `ccfs-export schedule …` and `ccfs-export coverage`. */
export function scheduleCommands(ctx: ScheduleCliContext): Command[] {
  const { io } = ctx;
  const invalid = (what: string, error: z.ZodError) =>
    ctx.fail(
      `invalid ${what}:\n${describeIssues(error)
        .map((i) => `  ${i.path}: ${i.message}`)
        .join('\n')}`,
    );

  const withService = async <T>(fn: (service: ScheduleService, client: Client) => Promise<T>): Promise<T> => {
    // The client side's one composition root: the tenant's zone and the refusal of an unknown tenant
    // are the API's (lib/client-services.ts).
    let services: ClientServices;
    try {
      services = await connectClientServices(ctx.getConfig());
    } catch (err) {
      if (err instanceof TemporalUnavailableError) throw ctx.fail(err.message, UNAVAILABLE);
      throw err;
    }
    const { schedules: service, client, connection } = services;
    try {
      return await fn(service, client);
    } catch (err) {
      if (err instanceof ScheduleError) throw ctx.fail(err.message);
      throw err;
    } finally {
      await connection.close();
    }
  };
  const print = (json: boolean | undefined, value: unknown, lines: () => string[]) => {
    if (json) io.out(JSON.stringify(value, null, 2));
    else for (const line of lines()) io.out(line);
  };

  // Added with addCommand, these do not inherit the program's settings: the CLI reports usage errors
  // itself (runCli), so commander must throw instead of exiting. Subcommands inherit from these.
  const schedule = new Command('schedule')
    .description('daily exports of the previous local day, run by a Temporal Schedule')
    .showHelpAfterError()
    .exitOverride();

  const create = schedule
    .command('create')
    .description(
      'create a schedule that exports [D 00:00, D+1 00:00) of the tenant zone every day for the day D before',
    )
    .addOption(
      new Option('--type <type>', 'what to export')
        .choices(['call', 'record', 'call_record'])
        .makeOptionMandatory(),
    )
    .requiredOption('--at <HH:MM>', 'local time of the daily run in the time zone (not inside a DST change)')
    .option('--time-zone <zone>', 'IANA zone of the tenant (default: TENANT_TIME_ZONE)')
    .option(
      '--catchup <duration>',
      'after an outage, run the missed days of this window (e.g. 12h, 7d)',
      '7d',
    )
    .option('--id <scheduleId>', 'schedule ID (default: ccfs-daily-<tenant>-<type>)')
    .option('--paused', 'create it paused')
    .option('--note <text>', 'note shown with the schedule')
    .option('--in-flight <n>', 'chunks in flight at once', integer('--in-flight'))
    .option(
      '--callback-timeout <seconds>',
      'wait this long for a callback before requesting again',
      integer('--callback-timeout'),
    )
    .option(
      '--probe-interval <seconds>',
      'while waiting, try the documented file names this often (callbacks may be lost); default 120, 30 with CALLBACK_MODE=none',
      (value: string) => {
        const n = Number(value);
        if (value.trim() === '' || !Number.isFinite(n))
          throw new InvalidArgumentError('--probe-interval must be a number');
        return n;
      },
    )
    .option('--json', 'print the schedule as JSON');
  for (const key of FILTER_KEYS)
    create.option(
      `${flag(key)} <value>`,
      `filter: ${key}${key === 'accountId' ? ' (names the tenant)' : ''}`,
    );
  create.action(async (opts: Record<string, string | number | boolean | undefined>) => {
    const filters = Object.fromEntries(
      FILTER_KEYS.filter((k) => opts[k] !== undefined).map((k) => [k, String(opts[k])]),
    );
    const options = Object.fromEntries(
      Object.entries({
        maxChunksInFlight: opts.inFlight,
        callbackTimeoutSeconds: opts.callbackTimeout,
        probeIntervalSeconds: opts.probeInterval,
      }).filter(([, v]) => v !== undefined),
    );
    const parsed = CreateScheduleInput.safeParse({
      scheduleId: opts.id,
      dataType: opts.type,
      filters: Object.keys(filters).length > 0 ? filters : undefined,
      at: opts.at,
      timeZone: opts.timeZone,
      catchup: opts.catchup,
      options: Object.keys(options).length > 0 ? options : undefined,
      paused: opts.paused === true ? true : undefined,
      note: opts.note,
    });
    if (!parsed.success) throw invalid('schedule', parsed.error);
    await withService(async (service) => {
      const created = await service.create(parsed.data, 'cli');
      print(Boolean(opts.json), created, () => ['created', ...scheduleLines(created)]);
    });
  });

  schedule
    .command('list')
    .description('list the daily export schedules')
    .option('--json')
    .action(async (opts: { json?: boolean }) => {
      await withService(async (service) => {
        const rows = await service.list();
        print(opts.json, rows, () => [
          table(
            rows.map((s) => ({
              schedule: s.scheduleId,
              state: s.paused ? 'paused' : 'active',
              tenant: s.tenant,
              type: s.dataType,
              at: s.at && s.timeZone ? `${s.at} ${s.timeZone}` : undefined,
              next: s.nextRun ? `${s.nextRun.scheduledAt} (day ${s.nextRun.day})` : undefined,
              last: s.lastRun ? `day ${s.lastRun.day}` : undefined,
            })),
            ['schedule', 'state', 'tenant', 'type', 'at', 'next', 'last'],
          ),
        ]);
      });
    });

  schedule
    .command('describe <scheduleId>')
    .description('show a schedule: time, zone, policies, next and recent runs')
    .option('--json')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withService(async (service) => {
        const s = await service.describe(id);
        print(opts.json, s, () => scheduleLines(s));
      });
    });

  schedule
    .command('pause <scheduleId>')
    .description('stop new runs (scheduled, triggered and backfilled) until resumed; running exports go on')
    .option('--note <text>', 'why, shown with the schedule')
    .action(async (id: string, opts: { note?: string }) => {
      await withService(async (service) => {
        await service.pause(id, opts.note);
        io.out(`paused: ${id}`);
      });
    });

  schedule
    .command('resume <scheduleId>')
    .description('run again from the next scheduled time (paused times are not caught up: backfill them)')
    .option('--note <text>')
    .action(async (id: string, opts: { note?: string }) => {
      await withService(async (service) => {
        await service.resume(id, opts.note);
        io.out(`resumed: ${id}`);
      });
    });

  schedule
    .command('trigger <scheduleId>')
    .description("run now: exports yesterday in the schedule's zone (skipped when already verified)")
    .action(async (id: string) => {
      await withService(async (service) => {
        const t = await service.trigger(id);
        io.out(`triggered ${id}: exports day ${t.day} (${t.dayWorkflowId})`);
      });
    });

  schedule
    .command('delete <scheduleId>')
    .description('delete a schedule; exports already running go on, exported days stay')
    .action(async (id: string) => {
      await withService(async (service) => {
        await service.delete(id);
        io.out(`deleted: ${id}`);
      });
    });

  schedule
    .command('backfill <scheduleId>')
    .description('export the days --from … --to (inclusive); verified days are skipped unless --force')
    .requiredOption('--from <day>', 'first day, yyyy-MM-dd')
    .requiredOption('--to <day>', 'last day, yyyy-MM-dd')
    .option('--force', 'export verified days again, into new export directories')
    .option('--json')
    .action(async (id: string, opts: { from: string; to: string; force?: boolean; json?: boolean }) => {
      const parsed = BackfillInput.safeParse({ from: opts.from, to: opts.to, force: opts.force });
      if (!parsed.success) throw invalid('backfill', parsed.error);
      await withService(async (service) => {
        const result = await service.backfill(id, parsed.data, 'cli');
        print(opts.json, result, () => [
          result.mode === 'force'
            ? `forced re-export of ${result.days.length} day(s), ${result.from} … ${result.to}:`
            : `backfill of ${result.days.length} day(s), ${result.from} … ${result.to}, through schedule ${id}: ${result.counts.started} started, ${result.counts.skipped} skipped, ${result.counts.not_started} not started`,
          ...result.days.map((d) =>
            d.outcome === 'started'
              ? `  ${d.day}  started  ${d.dayWorkflowId}`
              : `  ${d.day}  ${d.outcome === 'skipped' ? 'skipped' : 'NOT STARTED'}: ${d.reason}`,
          ),
          'follow with: ccfs-export coverage',
        ]);
        // A day that did not start is not done: exit 2, as an export that finished with failures does.
        if (result.counts.not_started > 0)
          throw ctx.fail(`${result.counts.not_started} day(s) did not start; run the backfill again`, 2);
      });
    });

  const coverage = new Command('coverage')
    .showHelpAfterError()
    .exitOverride()
    .description(
      'which days are verified, empty, running, failed or missing per tenant and type, and the "complete through" day',
    )
    .option('--tenant <tenant>')
    .addOption(new Option('--type <type>').choices(['call', 'record', 'call_record']))
    .option('--from <day>', 'first day of the window (default: the first day ever scheduled or run)')
    .option('--to <day>', 'last day of the window (default: the last day whose run is due)')
    .option('--json')
    .option(
      '--rebuild-index',
      'first write the index entries missing from OUTPUT_DIR/.index from the manifests there (exports finished before the index existed)',
    )
    .action(
      async (opts: {
        tenant?: string;
        type?: string;
        from?: string;
        to?: string;
        json?: boolean;
        rebuildIndex?: boolean;
      }) => {
        for (const [name, value] of [
          ['--from', opts.from],
          ['--to', opts.to],
        ] as const) {
          if (value !== undefined && !Day.safeParse(value).success)
            throw ctx.fail(`${name} must be a day as yyyy-MM-dd`);
        }
        if (opts.rebuildIndex) {
          const root = resolve(ctx.getConfig().OUTPUT_DIR);
          const written = await new ExportRecords([new LocalRecordSource(root)]).rebuild((rel, entry) =>
            writeJsonAtomic(join(root, rel), entry),
          );
          io.err(
            `index: ${written} entr${written === 1 ? 'y' : 'ies'} written under ${join(root, '.index')}`,
          );
        }
        await withService(async (service, client) => {
          const rows = await loadCoverage(
            client,
            service,
            { tenant: opts.tenant, dataType: opts.type, from: opts.from, to: opts.to },
            new Date(),
            service.settings.records,
          );
          print(opts.json, rows, () =>
            rows.length === 0 ? ['no daily exports yet'] : rows.flatMap((c) => [...coverageLines(c), '']),
          );
        });
      },
    );

  return [schedule, coverage];
}
