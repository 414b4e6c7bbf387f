import { rmSync } from 'node:fs';
import { formatWallTime, parseWallTime } from '../domain/wall-time';
import type { ExportOptionsInput } from '../lib/export-input';
import { timedExport } from './lib/exports';
import { fmt, mean, percentile, type BenchContext, type Figure } from './lib/report';
import { startBenchSimulator, startProduct, type BenchSimulator } from './lib/stack';
import { slotPath, type SlotPath } from './lib/slot-path';
import { exportTimeline, type Phase } from './lib/timeline';
import { planChunks } from '../domain/chunking';

/**
 * 2. Utilisation: CC-FS takes D to generate a file and accepts at most K queries whose file is not
 * generated yet (one more answers 0300009). No client can finish N chunks faster than
 * ceil(N/K)·D; the product should come within 10 % of that bound.
 */

const FROM = '2023-01-01 00:00:00';

interface Variant {
  label: string;
  governor: string;
  workerEnv: NodeJS.ProcessEnv;
  options: ExportOptionsInput;
}

interface UtilRun {
  label: string;
  governor: string;
  options: ExportOptionsInput;
  wallMs: number;
  boundMs: number;
  overBound: number;
  flowControl: number;
  accepted: number;
  /** Time a query slot stood free: from a file's generation until the next query took the slot. */
  slotGapMs: { mean: number; p50: number; p90: number; max: number };
  /** Time from the export's start to the first accepted query, and from the last generation to the result. */
  firstQueryMs: number;
  tailMs: number;
  phases?: { chunk: Phase[]; parent: Phase[] };
  slotPath?: SlotPath;
}

/** Pairs each accepted query after the first K with the earliest slot freed (by a generation) before it. */
function slotGaps(
  sim: BenchSimulator,
  since: number,
  k: number,
): { gaps: number[]; firstQuery: number; lastGeneration: number; accepted: number; flowControl: number } {
  const state = sim.simulator.inspect();
  const queries = state.queries.filter((q) => Date.parse(q.at) >= since);
  const accepted = queries.filter((q) => q.outcome === '0').map((q) => Date.parse(q.at));
  const ids = new Set(queries.filter((q) => q.outcome === '0').map((q) => q.responseId));
  const generated = state.files
    .filter((f) => ids.has(f.responseId) && f.generatedAt)
    .map((f) => Date.parse(f.generatedAt!))
    .sort((a, b) => a - b);
  const gaps: number[] = [];
  const free = [...generated];
  for (const at of accepted.slice(k)) {
    const i = free.findIndex((g) => g <= at);
    if (i >= 0) gaps.push(at - free.splice(i, 1)[0]!);
  }
  return {
    gaps,
    firstQuery: accepted[0] ?? NaN,
    lastGeneration: generated.at(-1) ?? NaN,
    accepted: accepted.length,
    flowControl: queries.filter((q) => q.outcome === '0300009').length,
  };
}

export async function utilisation(
  ctx: BenchContext,
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const N = ctx.quick ? 12 : 40;
  const K = 4;
  const D = ctx.quick ? 1000 : 2000;
  const boundMs = Math.ceil(N / K) * D;
  const to = formatWallTime(parseWallTime(FROM) + N * 3 * 86400);
  const variants: Variant[] = [
    {
      label: `defaults, ${K} in flight`,
      governor: '5/s (default)',
      workerEnv: {},
      options: { maxChunksInFlight: K },
    },
    {
      label: `governor lifted, ${K} in flight`,
      governor: '1000/s',
      workerEnv: { CCFS_MAX_CALLS_PER_SECOND: '1000' },
      options: { maxChunksInFlight: K },
    },
    {
      // Keeps the next chunk's query waiting at CC-FS's door: flow control answers, retried quickly.
      label: `governor lifted, ${2 * K} in flight, 0.1 s retry`,
      governor: '1000/s',
      workerEnv: { CCFS_MAX_CALLS_PER_SECOND: '1000' },
      options: {
        maxChunksInFlight: 2 * K,
        retryInitialIntervalSeconds: 0.1,
        retryMaximumIntervalSeconds: 0.1,
        retryMaximumAttempts: 100,
      },
    },
  ];
  const runs: UtilRun[] = [];
  for (const v of variants) {
    const sim = await startBenchSimulator({
      callbackDelayMs: D,
      maxOutstandingQueries: K,
      callsPerHour: 1,
      callbackRetryIntervalMs: 2000,
    });
    const product = await startProduct({
      temporalAddress: ctx.temporalAddress,
      workflowBundle: ctx.workflowBundle,
      extraWorkerEnv: ctx.workerEnv,
      simulatorUrl: sim.url,
      dir: ctx.dir,
      workerEnv: v.workerEnv,
    });
    try {
      await timedExport(product, { from: FROM, to: '2023-01-04 00:00:00', label: 'warmup' });
      ctx.log(`utilisation: ${v.label}, N=${N} K=${K} D=${D} ms, bound ${boundMs} ms`);
      const t = await timedExport(product, { from: FROM, to, label: 'util', options: v.options });
      if (t.result.state !== 'completed' || t.result.counts.verified !== N) {
        throw new Error(
          `export ${t.exportId} ended ${t.result.state} with ${JSON.stringify(t.result.counts)}`,
        );
      }
      const s = slotGaps(sim, t.startedAt, K);
      const tl = await exportTimeline(product.client, t.exportId, N);
      runs.push({
        label: v.label,
        governor: v.governor,
        options: v.options,
        wallMs: t.wallMs,
        boundMs,
        overBound: t.wallMs / boundMs - 1,
        flowControl: s.flowControl,
        accepted: s.accepted,
        slotGapMs: {
          mean: mean(s.gaps),
          p50: percentile(s.gaps, 50),
          p90: percentile(s.gaps, 90),
          max: Math.max(...s.gaps),
        },
        firstQueryMs: s.firstQuery - t.startedAt,
        tailMs: t.startedAt + t.wallMs - s.lastGeneration,
        phases: { chunk: tl.chunk, parent: tl.parent },
        // Only when a chunk's completion is what frees the next one (in flight = K).
        slotPath:
          v.options.maxChunksInFlight === K
            ? slotPath(
                sim,
                t.startedAt,
                planChunks({ begin: FROM, end: to, timeZone: 'UTC' }),
                tl.chunkEvents,
                K,
              )
            : undefined,
      });
    } finally {
      await product.stop();
      rmSync(product.outputDir, { recursive: true, force: true });
      await sim.close();
    }
  }

  const b = 'utilisation';
  const figures: Figure[] = [
    { bench: b, metric: `lower bound ceil(${N}/${K})·${D} ms`, value: fmt.ms(boundMs), raw: boundMs },
  ];
  for (const r of runs) {
    figures.push({
      bench: b,
      metric: `${r.label}: wall / bound`,
      value: `${fmt.ms(r.wallMs)} = bound +${fmt.pct(r.overBound)}: first query ${fmt.ms(r.firstQueryMs)}, ${Math.ceil(N / K) - 1} × slot idle, tail ${fmt.ms(r.tailMs)}`,
      raw: r.wallMs / r.boundMs,
      // Issue 14: with the shipped defaults, within 5 % of the bound; the other variants are for comparison.
      ...(r.label.startsWith('defaults') && { target: '≤ +5 %', met: r.overBound <= 0.05 }),
    });
    figures.push({
      bench: b,
      metric: `${r.label}: slot idle after generation`,
      value: `mean ${fmt.ms(r.slotGapMs.mean)}, p90 ${fmt.ms(r.slotGapMs.p90)}; ${r.flowControl} × 0300009`,
      raw: r.slotGapMs.mean,
    });
    if (r.slotPath) {
      figures.push({
        bench: b,
        metric: `${r.label}: generation → next query (7 steps)`,
        value: Object.values(r.slotPath as unknown as Record<string, number>)
          .map((v) => v.toFixed(0))
          .join(' + ')
          .concat(' ms'),
      });
    }
  }
  return {
    figures,
    details: {
      N,
      K,
      D,
      boundMs,
      slotPathSegments: Object.keys(runs.find((r) => r.slotPath)?.slotPath ?? {}),
      runs,
    },
  };
}
