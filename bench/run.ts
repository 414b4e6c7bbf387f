import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { liveProcesses, ROOT } from './lib/proc';
import {
  load1,
  machine,
  markdownTable,
  table,
  type BenchContext,
  type BenchResult,
  type Figure,
} from './lib/report';
import { buildWorkflowBundle, startTemporal } from './lib/stack';
import { orchestration } from './orchestration';
import { utilisation } from './utilisation';
import { download } from './download';
import { callbacks } from './callbacks';
import { scale } from './scale';
import { load } from './load';

/**
 * `npm run bench` — the product against its baselines and its physical limits, each figure a ratio
 * measured side by side in the same run. Prints a table; writes bench/results/<time>.json and
 * latest.json (git-ignored) and bench/results/latest.md.
 *
 *   npm run bench                         orchestration, utilisation, download, callbacks, load
 *   npm run bench -- --only scale         the 10-year backfill (several minutes)
 *   npm run bench -- --scale              all five
 *   npm run bench -- --quick              small sizes, to develop the bench itself
 *   npm run bench -- --profile            also write CPU profiles of the worker and the API
 *   npm run bench -- --worker-env K=V     extra worker environment (experiments), repeatable
 *   npm run bench -- --keep               keep the scratch directory (logs, profiles)
 */

type Bench = (ctx: BenchContext) => Promise<{ figures: Figure[]; details: Record<string, unknown> }>;
const BENCHES: Record<string, Bench> = { orchestration, utilisation, download, callbacks, scale, load };
const DEFAULT = ['orchestration', 'utilisation', 'download', 'callbacks', 'load'];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    scale: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'worker-env': { type: 'string', multiple: true, default: [] },
  },
});
// Extra worker environment for experiments, e.g. --worker-env MALLOC_ARENA_MAX=2.
const workerEnv = Object.fromEntries(
  values['worker-env'].map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const selected = values.only
  ? values.only.split(',').map((s) => s.trim())
  : values.scale
    ? [...DEFAULT, 'scale']
    : DEFAULT;
const unknown = selected.filter((s) => !BENCHES[s]);
if (unknown.length > 0) {
  console.error(`unknown bench ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'ccfs-bench-'));
const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const startedAt = new Date();
const loadBefore = load1();
log(`bench: ${selected.join(', ')}; scratch ${dir}; load ${loadBefore.toFixed(2)}`);
const workflowBundle = join(dir, 'workflow-bundle.js');
await buildWorkflowBundle(workflowBundle);
const temporal = await startTemporal(dir);
const interrupted = (signal: NodeJS.Signals) => {
  log(`${signal}: stopping the bench's processes`);
  void Promise.all([...liveProcesses].map((p) => p.stop()))
    .then(() => temporal.stop())
    .finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
const results: BenchResult[] = [];
let failed = false;
try {
  for (const name of selected) {
    const before = load1();
    const t0 = Date.now();
    try {
      const { figures, details } = await BENCHES[name]!({
        temporalAddress: temporal.address,
        temporalPid: temporal.process.pid!,
        workflowBundle,
        workerEnv,
        dir,
        quick: values.quick,
        profile: values.profile,
        log,
      });
      results.push({
        bench: name,
        figures,
        details,
        load: { before, after: load1() },
        durationMs: Date.now() - t0,
      });
    } catch (err) {
      failed = true;
      log(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      results.push({
        bench: name,
        figures: [{ bench: name, metric: 'FAILED', value: err instanceof Error ? err.message : String(err) }],
        details: {},
        load: { before, after: load1() },
        durationMs: Date.now() - t0,
      });
    }
  }
} finally {
  await temporal.stop();
}

const figures = results.flatMap((r) => r.figures);
const report = {
  startedAt: startedAt.toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  quick: values.quick,
  machine: machine(),
  load: {
    before: loadBefore,
    after: load1(),
    perBench: Object.fromEntries(results.map((r) => [r.bench, r.load])),
  },
  figures,
  results,
};
console.log(`\n${table(figures)}\n`);
console.log(
  `machine: ${JSON.stringify(report.machine)}; load average (1 min) ${loadBefore.toFixed(2)} → ${load1().toFixed(2)}`,
);

const resultsDir = join(ROOT, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
const json = JSON.stringify(report, null, 2);
writeFileSync(join(resultsDir, `${stamp}.json`), json);
writeFileSync(join(resultsDir, 'latest.json'), json);
if (!values.quick) {
  const m = report.machine as Record<string, string | number>;
  writeFileSync(
    join(resultsDir, 'latest.md'),
    [
      `# Benchmark results (${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
      '',
      `Command: \`${report.command}\``,
      '',
      `Machine: ${m.cpu}, ${m.nproc} cores, ${m.memTotal} RAM, Node ${m.node}. Load average (1 min) before/after each bench: ${results.map((r) => `${r.bench} ${r.load.before.toFixed(2)}/${r.load.after.toFixed(2)}`).join(', ')}.`,
      '',
      markdownTable(figures),
      '',
    ].join('\n'),
  );
}
log(`results: ${join(resultsDir, `${stamp}.json`)}`);
if (values.keep) log(`scratch kept: ${dir}`);
else rmSync(dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
