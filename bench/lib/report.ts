import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { availableParallelism } from 'node:os';

/** One row of the printed table. */
export interface Figure {
  bench: string;
  metric: string;
  value: string;
  /** The number behind `value`, in the unit the metric names. */
  raw?: number;
  target?: string;
  met?: boolean;
}

export interface BenchResult {
  bench: string;
  figures: Figure[];
  /** Everything measured, for the JSON file. */
  details: Record<string, unknown>;
  /** Load average (1 min) before and after. */
  load: { before: number; after: number };
  durationMs: number;
}

export interface BenchContext {
  temporalAddress: string;
  /** The Temporal server's process, for its CPU time. */
  temporalPid: number;
  /** The workflow bundle built for this run (the worker loads it, as in production). */
  workflowBundle: string;
  /** Extra environment for every worker the bench starts (experiments). */
  workerEnv: NodeJS.ProcessEnv;
  /** Scratch directory of this run (logs, output files). */
  dir: string;
  /** Small sizes, for developing the bench itself. */
  quick: boolean;
  /** Write a CPU profile of the worker and the API (node --cpu-prof) into `dir`. */
  profile: boolean;
  log: (line: string) => void;
}

export const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const fmt = {
  ms: (v: number) =>
    v >= 10_000
      ? `${(v / 1000).toFixed(1)} s`
      : v >= 1000
        ? `${(v / 1000).toFixed(2)} s`
        : `${v.toFixed(v < 10 ? 2 : 0)} ms`,
  ratio: (v: number) => `${v.toFixed(2)}×`,
  pct: (v: number) => `${(v * 100).toFixed(1)} %`,
  mb: (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`,
  mbps: (bytesPerSecond: number) => `${(bytesPerSecond / 1024 / 1024).toFixed(0)} MiB/s`,
  rate: (v: number, unit: string) => `${v.toFixed(v < 10 ? 1 : 0)} ${unit}`,
};

export function machine(): Record<string, unknown> {
  const cpu = cpus()[0]?.model ?? 'unknown';
  return {
    cpu,
    nproc: availableParallelism(),
    memTotal: fmt.mb(totalmem()),
    memFree: fmt.mb(freemem()),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

export const load1 = () => loadavg()[0]!;

/** A plain-text table whose columns fit their widest cell. */
export function table(figures: Figure[]): string {
  const rows = [
    ['bench', 'metric', 'value', 'target', 'met'],
    ...figures.map((f) => [
      f.bench,
      f.metric,
      f.value,
      f.target ?? '',
      f.met === undefined ? '' : f.met ? 'yes' : 'NO',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** The same figures as a Markdown table. */
export function markdownTable(figures: Figure[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| bench | metric | value | target | met |',
    '|---|---|---|---|---|',
    ...figures.map(
      (f) =>
        `| ${esc(f.bench)} | ${esc(f.metric)} | ${esc(f.value)} | ${esc(f.target ?? '')} | ${f.met === undefined ? '' : f.met ? 'yes' : '**no**'} |`,
    ),
  ].join('\n');
}
