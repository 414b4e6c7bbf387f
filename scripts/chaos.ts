import { describeChaos, runChaos, type ChaosReport } from '../test/e2e/support/chaos-run';
// @ts-expect-error -- plain ESM helper shared with the bootstrap (Node built-ins only, no types)
import { ensureTemporalCli } from './temporal-cli.mjs';

/**
 * `npm run chaos`: issue 5's chaos run at full size — a 90-day export (30 chunks) under injected
 * CC-FS faults, two worker SIGKILLs, an API outage and a Temporal restart — three times in a row,
 * each with another seed. Prints a summary and exits non-zero unless all three passed.
 * `CHAOS_RUNS`, `CHAOS_DAYS` and `CHAOS_KEEP=1` (keep the working directories) change that.
 */

const runs = Number(process.env.CHAOS_RUNS ?? 3);
const days = Number(process.env.CHAOS_DAYS ?? 90);
// Seeds whose fault generators each fire early, so every fault is met at any size.
const SEEDS = [108, 288, 398];

const cli = (ensureTemporalCli as (log?: (l: string) => void) => string)((l: string) => console.log(l));
const reports: ChaosReport[] = [];
for (let i = 0; i < runs; i++) {
  const seed = SEEDS[i % SEEDS.length]! + Math.floor(i / SEEDS.length);
  console.log(`\n== chaos run ${i + 1}/${runs}`);
  try {
    const report = await runChaos({
      temporalCli: cli,
      days,
      seed,
      apiDownMs: 15_000,
      maxChunksInFlight: 4,
      keep: process.env.CHAOS_KEEP === '1',
      log: (line) => console.log(line),
    });
    reports.push(report);
    console.log(describeChaos(report));
  } catch (err) {
    console.log(
      `run ${i + 1} could not complete: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    process.exitCode = 1;
    break;
  }
}

console.log('\n== summary');
console.log(
  'run  seed  days  chunks  duration  rows (CDR+rec)  queries  downloads  cut/abandoned  re-requests  result',
);
reports.forEach((r, i) => {
  const s = r.simulator;
  console.log(
    [
      String(i + 1).padEnd(4),
      String(r.seed).padEnd(5),
      String(r.days).padEnd(5),
      String(r.chunks).padEnd(7),
      `${(r.durationMs / 1000).toFixed(0)} s`.padEnd(9),
      `${r.rows.call}+${r.rows.record}`.padEnd(15),
      String(s.queries).padEnd(8),
      String(s.downloads).padEnd(10),
      String(s.incompleteDownloads).padEnd(14),
      String(r.reRequests).padEnd(12),
      r.passed ? 'passed' : `FAILED: ${r.problems.join('; ')}`,
    ].join(' '),
  );
});
const passed = reports.filter((r) => r.passed).length;
console.log(`${passed}/${runs} runs passed`);
if (passed !== runs) process.exitCode = 1;
