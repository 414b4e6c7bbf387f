import type { ExportStatus } from '../workflows/definitions';

/**
 * How the CLI shows an export's progress: on a terminal one line redrawn in place (a bar, chunks
 * done of total, rows, bytes, ETA); elsewhere (a pipe, a CI log) plain lines, one per change that
 * matters, with no escape codes.
 */

export type ProgressStatus = Pick<ExportStatus, 'counts' | 'totals' | 'state'>;

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

const formatCount = (n: number) => n.toLocaleString('en-US');

/** Chunks that are finished one way or another. */
export function chunksDone(status: ProgressStatus): number {
  return status.counts.verified + status.counts.empty + status.counts.failed + status.counts.cancelled;
}

/**
 * Estimates the time left from the pace of chunks finished while it watched; until one finishes,
 * from the pace since the export started (when that is known and some chunks are done).
 */
export class EtaEstimator {
  private first: { at: number; done: number } | undefined;

  constructor(private readonly exportStartedAt?: number) {}

  /** Seconds left, or NaN when there is nothing to go by yet. */
  observe(status: ProgressStatus, at: number): number {
    const done = chunksDone(status);
    const left = status.totals.chunks - done;
    this.first ??= { at, done };
    if (left <= 0) return 0;
    const watched = done - this.first.done;
    if (watched > 0 && at > this.first.at) return (left * (at - this.first.at)) / 1000 / watched;
    if (this.exportStartedAt !== undefined && done > 0 && at > this.exportStartedAt)
      return (left * (at - this.exportStartedAt)) / 1000 / done;
    return Number.NaN;
  }
}

/** `7/12 chunks (58%), 1 failed, 2 running, 34,210 rows, 12.3 MB` — what every form of progress says. */
export function progressSummary(status: ProgressStatus): string {
  const done = chunksDone(status);
  const total = status.totals.chunks;
  const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
  const failed = status.counts.failed + status.counts.cancelled;
  return (
    `${done}/${total} chunks (${percent}%)` +
    (failed > 0 ? `, ${failed} failed` : '') +
    `, ${status.counts.running} running, ${formatCount(status.totals.rows)} rows, ${formatBytes(status.totals.bytes)}`
  );
}

/** One line of progress; with `bar` it starts with `[####......]`. `eta` in seconds (NaN: unknown). */
export function progressLine(
  status: ProgressStatus,
  eta: number,
  options: { bar?: boolean; width?: number } = {},
): string {
  const width = options.width ?? 24;
  const total = status.totals.chunks;
  const fraction = total === 0 ? 1 : chunksDone(status) / total;
  const filled = Math.min(width, Math.round(fraction * width));
  const bar = options.bar ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
  return `${bar}${progressSummary(status)}, ${status.state === 'running' ? `ETA ${formatDuration(eta)}` : status.state}`;
}

export interface ProgressOutput {
  tty: boolean;
  /** Terminal width; the line is cut to it so that redrawing in place never wraps. */
  columns?: number;
  /** Redraws the current line (TTY only). */
  status: (line: string) => void;
  /** Writes a whole line. */
  err: (line: string) => void;
}

/** Shows successive statuses of one export on a terminal (redrawn) or as plain lines (on change). */
export class ProgressReporter {
  private readonly eta: EtaEstimator;
  private lastKey = '';
  private drawn = false;

  constructor(
    private readonly out: ProgressOutput,
    options: { exportStartedAt?: number } = {},
  ) {
    this.eta = new EtaEstimator(options.exportStartedAt);
  }

  update(status: ProgressStatus, at = Date.now()): void {
    const eta = this.eta.observe(status, at);
    if (this.out.tty) {
      const line = progressLine(status, eta, { bar: true });
      const max = this.out.columns && this.out.columns > 1 ? this.out.columns - 1 : undefined;
      this.out.status(max !== undefined && line.length > max ? `${line.slice(0, max - 1)}…` : line);
      this.drawn = true;
      return;
    }
    // Without a terminal the ETA alone changes every poll: print only when the chunks or the state do.
    const key = `${JSON.stringify(status.counts)} ${status.state}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.out.err(progressLine(status, eta));
  }

  /** Ends the redrawn line, so what follows starts on a line of its own. */
  finish(): void {
    if (this.out.tty && this.drawn) this.out.err('');
    this.drawn = false;
  }
}

/** `2024-03-01 00:00` in `timeZone`: instants from Temporal visibility, read as wall time. */
export function formatInstant(iso: string | undefined, timeZone: string): string | undefined {
  if (!iso) return undefined;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  // The sv-SE locale writes ISO-like dates: 2024-03-01 00:00.
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(date);
}

/** A plain-text table: a header, a rule, one line per row; numbers right-aligned. */
export function table(rows: Array<Record<string, string | number | undefined>>, columns: string[]): string {
  const cell = (v: string | number | undefined) =>
    v === undefined ? '' : typeof v === 'number' ? formatCount(v) : String(v);
  const numeric = columns.map(
    (c) => rows.length > 0 && rows.every((r) => r[c] === undefined || typeof r[c] === 'number'),
  );
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(columns.map((c) => cell(r[c])))),
  ].join('\n');
}
