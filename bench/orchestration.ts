import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { planChunks } from '../domain/chunking';
import { timedExport } from './lib/exports';
import { cpuMs, spawnTs } from './lib/proc';
import { slotPath, type SlotPath } from './lib/slot-path';
import { exportTimeline, type Phase } from './lib/timeline';
import { fmt, mean, type BenchContext, type Figure } from './lib/report';
import { BENCH_AK, BENCH_SK, startBenchSimulator, startProduct, type BenchSimulator } from './lib/stack';

/**
 * 1. Orchestration: a 365-day backfill (122 three-day chunks) against the simulator with no
 * generation delay and small ZIPs, by the product and by a naive sequential script doing the same
 * CC-FS work. What is left once the simulator's own time is taken out is the cost of orchestration.
 */

const FROM = '2023-01-01 00:00:00';
const TO = '2024-01-01 00:00:00';
const QUICK_TO = '2023-02-01 00:00:00';

interface Run {
  label: string;
  inFlight: number;
  governor: string;
  wallMs: number;
  chunks: number;
  /** Time inside the simulator's handlers (query + download), per chunk. */
  simMsPerChunk: number;
  /** Time a concurrency slot was held per chunk: wall × in-flight / chunks. */
  slotMsPerChunk: number;
  /** slot − simulator: what one chunk costs beyond the upstream's own work. */
  overheadMsPerChunk: number;
  breakdown?: Record<string, number>;
  phases?: { chunk: Phase[]; parent: Phase[] };
  /** One chunk's cycle, step by step (sequential runs only). */
  cycle?: SlotPath;
  /** CPU time per chunk of each process, ms. */
  cpuPerChunk?: Record<string, number>;
}

interface Floor {
  steps: number;
  activitySameQueueMs: number;
  activityOtherQueueMs: number;
  childWorkflowMs: number;
}

function simSince(sim: BenchSimulator, since: number): { queryMs: number; downloadMs: number } {
  const reqs = sim.requests.filter((r) => r.at >= since);
  const sum = (suffix: string) => reqs.filter((r) => r.path.endsWith(suffix)).reduce((a, r) => a + r.ms, 0);
  return { queryMs: sum('/queryBillData'), downloadMs: sum('/downloadBillFile') };
}

function run(
  label: string,
  inFlight: number,
  governor: string,
  wallMs: number,
  chunks: number,
  sim: { queryMs: number; downloadMs: number },
): Run {
  const simMsPerChunk = (sim.queryMs + sim.downloadMs) / chunks;
  const slotMsPerChunk = (wallMs * inFlight) / chunks;
  return {
    label,
    inFlight,
    governor,
    wallMs,
    chunks,
    simMsPerChunk,
    slotMsPerChunk,
    overheadMsPerChunk: slotMsPerChunk - simMsPerChunk,
  };
}

export async function orchestration(
  ctx: BenchContext,
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const to = ctx.quick ? QUICK_TO : TO;
  const chunks = planChunks({ begin: FROM, end: to, timeZone: 'UTC' });
  // One call an hour: a few dozen rows and a few KB per three-day ZIP, never an empty chunk.
  const sim = await startBenchSimulator({
    callbackDelayMs: 0,
    callsPerHour: 1,
    callbackRetryIntervalMs: 2000,
  });
  const runs: Run[] = [];
  let floor: Floor | undefined;
  try {
    const runBaseline = async (i: number): Promise<Run> => {
      const outputDir = join(ctx.dir, `baseline-${i}`);
      const config = {
        simulatorUrl: sim.url,
        ak: BENCH_AK,
        sk: BENCH_SK,
        outputDir,
        dataType: 'call',
        chunks,
      };
      const child = spawnTs(
        `baseline-${i}`,
        'bench/baseline-sequential.ts',
        { BENCH_BASELINE_CONFIG: JSON.stringify(config) },
        join(ctx.dir, `baseline-${i}.log`),
      );
      const line = await child.waitForLine((l) => l.startsWith('RESULT '), 600_000);
      await child.exited;
      const result = JSON.parse(line.slice('RESULT '.length)) as {
        startedAt: number;
        wallMs: number;
        cpuMs: number;
        simulatorCpuMs?: number;
        perChunk: Array<Record<string, number>>;
      };
      rmSync(outputDir, { recursive: true, force: true });
      const r = run(
        `baseline #${i}`,
        1,
        'none',
        result.wallMs,
        chunks.length,
        simSince(sim, result.startedAt),
      );
      r.breakdown = Object.fromEntries(
        ['queryMs', 'waitMs', 'downloadMs', 'verifyMs'].map((k) => [
          k,
          mean(result.perChunk.map((c) => c[k]!)),
        ]),
      );
      r.cpuPerChunk = { script: result.cpuMs / chunks.length };
      return r;
    };

    ctx.log(`orchestration: baseline, ${chunks.length} chunks`);
    runs.push(await runBaseline(1));

    ctx.log('orchestration: Temporal round trips with nothing else in them');
    const floorChild = spawnTs(
      'floor',
      'bench/floor/run-floor.ts',
      { BENCH_TEMPORAL_ADDRESS: ctx.temporalAddress },
      join(ctx.dir, 'floor.log'),
    );
    floor = JSON.parse(
      (await floorChild.waitForLine((l) => l.startsWith('RESULT '), 300_000)).slice('RESULT '.length),
    ) as Floor;
    await floorChild.exited;

    const productRuns = async (
      governor: string,
      workerEnv: NodeJS.ProcessEnv,
      configs: Array<{ label: string; inFlight?: number }>,
    ) => {
      const product = await startProduct({
        temporalAddress: ctx.temporalAddress,
        workflowBundle: ctx.workflowBundle,
        extraWorkerEnv: ctx.workerEnv,
        simulatorUrl: sim.url,
        dir: ctx.dir,
        workerEnv,
      });
      try {
        // A long-running worker is warm: one small export first, untimed.
        await timedExport(product, { from: FROM, to: '2023-01-07 00:00:00', label: 'warmup' });
        for (const c of configs) {
          ctx.log(`orchestration: product ${c.label}, ${chunks.length} chunks`);
          const cpu = () => ({
            worker: cpuMs(product.worker.pid),
            api: cpuMs(product.api.pid),
            temporal: cpuMs(ctx.temporalPid),
          });
          const before = cpu();
          const t = await timedExport(product, {
            from: FROM,
            to,
            label: 'orch',
            options: c.inFlight ? { maxChunksInFlight: c.inFlight } : undefined,
          });
          const after = cpu();
          if (t.result.state !== 'completed' || t.result.counts.verified !== chunks.length) {
            throw new Error(
              `export ${t.exportId} ended ${t.result.state} with ${JSON.stringify(t.result.counts)}`,
            );
          }
          const r = run(
            c.label,
            c.inFlight ?? 4,
            governor,
            t.wallMs,
            chunks.length,
            simSince(sim, t.startedAt),
          );
          r.cpuPerChunk = Object.fromEntries(
            Object.entries(after).map(([k, v]) => [
              k,
              (v - before[k as keyof typeof before]) / chunks.length,
            ]),
          );
          if (c.inFlight === 1) {
            // Sequential, so the histories' server timestamps add up to the wall time.
            const tl = await exportTimeline(product.client, t.exportId, chunks.length);
            r.phases = { chunk: tl.chunk, parent: tl.parent };
            r.cycle = slotPath(sim, t.startedAt, chunks, tl.chunkEvents, 1);
          }
          runs.push(r);
        }
      } finally {
        await product.stop();
        rmSync(product.outputDir, { recursive: true, force: true });
      }
    };
    // The rate governor (CCFS_MAX_CALLS_PER_SECOND) is lifted first, to see orchestration alone …
    await productRuns('1000/s', { CCFS_MAX_CALLS_PER_SECOND: '1000' }, [
      { label: 'product, 1 in flight', inFlight: 1 },
      { label: 'product, 8 in flight', inFlight: 8 },
    ]);
    // … then everything at its default: 4 chunks in flight, 5 CC-FS calls per second.
    await productRuns('5/s (default)', {}, [{ label: 'product, defaults (4 in flight)' }]);
    ctx.log('orchestration: baseline again');
    runs.push(await runBaseline(2));
  } finally {
    await sim.close();
  }

  const baselines = runs.filter((r) => r.label.startsWith('baseline'));
  const base = mean(baselines.map((r) => r.wallMs));
  const baseOverhead = mean(baselines.map((r) => r.overheadMsPerChunk));
  const figures: Figure[] = [];
  const b = 'orchestration';
  figures.push({
    bench: b,
    metric: `baseline wall (${chunks.length} chunks, sequential)`,
    value: fmt.ms(base),
    raw: base,
  });
  figures.push({
    bench: b,
    metric: 'baseline overhead/chunk (non-simulator)',
    value: fmt.ms(baseOverhead),
    raw: baseOverhead,
  });
  if (floor) {
    figures.push({
      bench: b,
      metric: 'Temporal floor: one no-op step, sequential',
      value: `activity ${fmt.ms(floor.activitySameQueueMs)} (same queue), ${fmt.ms(floor.activityOtherQueueMs)} (other queue); child workflow ${fmt.ms(floor.childWorkflowMs)}`,
    });
  }
  figures.push({
    bench: b,
    metric: 'baseline CPU/chunk',
    value: `script ${mean(baselines.map((r) => r.cpuPerChunk!.script!)).toFixed(1)} ms`,
  });
  for (const r of runs.filter((x) => !x.label.startsWith('baseline'))) {
    figures.push({
      bench: b,
      metric: `${r.label}, governor ${r.governor}: wall`,
      value: `${fmt.ms(r.wallMs)} (${fmt.ratio(r.wallMs / base)} baseline)`,
      raw: r.wallMs,
    });
    figures.push({
      bench: b,
      metric: `${r.label}: overhead/chunk`,
      value: `${fmt.ms(r.overheadMsPerChunk)} (+${fmt.ms(r.overheadMsPerChunk - baseOverhead)} vs baseline)`,
      raw: r.overheadMsPerChunk,
      // Issue 14, target 5: one chunk in flight, no generation delay.
      ...(r.label === 'product, 1 in flight' && { target: '≤ 300 ms', met: r.overheadMsPerChunk <= 300 }),
    });
    if (r.cycle) {
      figures.push({
        bench: b,
        metric: `${r.label}: one chunk's cycle (7 steps)`,
        value: `${Object.values(r.cycle as unknown as Record<string, number>)
          .map((v) => v.toFixed(0))
          .join(' + ')} ms`,
      });
    }
    if (r.cpuPerChunk) {
      figures.push({
        bench: b,
        metric: `${r.label}: CPU/chunk`,
        value: Object.entries(r.cpuPerChunk)
          .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
          .join(', '),
      });
    }
  }
  return { figures, details: { range: { from: FROM, to }, chunks: chunks.length, floor, runs } };
}
