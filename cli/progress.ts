import type { ExportStatus } from '../workflows/definitions';

/**
 * How the CLI shows an export's progress: on a terminal one line redrawn in place (a bar, chunks
 * done of total, rows, bytes, ETA); elsewhere (a pipe, a CI log) plain lines, one per change that
 * matters, with no escape codes.
 */

export type ProgressStatus = Pick<ExportStatus, 'counts' | 'totals' | 'state'> &
  Partial<Pick<ExportStatus, 'waitingFor'>>;

/**
 * A chunk counts as holding the export up once it has run this long while the export could start
 * nothing else: the line then says what the export waits for instead of an ETA that assumes the
 * chunk will finish at the pace of the others. Shorter waits are ordinary (a callback takes seconds
 * to minutes) and would only make the line flicker.
 */
export const STUCK_AFTER_MS = 30_000;

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

/** `7/12 chunks (58%), 1 failed, 2 cancelled, 2 running, 34,210 rows, 12.3 MB` — what every form of progress says. */
export function progressSummary(status: ProgressStatus): string {
  const done = chunksDone(status);
  const total = status.totals.chunks;
  const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
  const { failed, cancelled } = status.counts;
  return (
    `${done}/${total} chunks (${percent}%)` +
    (failed > 0 ? `, ${failed} failed` : '') +
    (cancelled > 0 ? `, ${cancelled} cancelled` : '') +
    `, ${status.counts.running} running, ${formatCount(status.totals.rows)} rows, ${formatBytes(status.totals.bytes)}`
  );
}

const hhmm = (iso: string) => `${iso.slice(11, 16)} UTC`;

/**
 * What the export waits for, when a chunk holds it up (`STUCK_AFTER_MS`), else undefined:
 * `waiting for 1 chunk: #17 2024-03-01 → 03-04 waiting for the CC-FS callback for responseId … since
 * 12:03 UTC (35m12s, request 2 of 4)`. From the export's `waitingFor` (oldest chunk first); the phase
 * is there when the chunk reported it, otherwise the line says since when the chunk runs. `at` in ms.
 */
export function waitingSummary(status: ProgressStatus, at: number): string | undefined {
  const waiting = status.waitingFor;
  if (status.state !== 'running' || !waiting || waiting.length === 0) return undefined;
  const oldest = waiting[0]!;
  const started = Date.parse(oldest.startedAt ?? '');
  if (!Number.isFinite(started) || at - started < STUCK_AFTER_MS) return undefined;
  const running = status.counts.running;
  const describe = (c: NonNullable<ProgressStatus['waitingFor']>[number]) => {
    const range = `${c.begin.slice(0, 10)} → ${c.end.slice(0, 4) === c.begin.slice(0, 4) ? c.end.slice(5, 10) : c.end.slice(0, 10)}`;
    const p = c.progress;
    if (!p)
      return `#${c.index} ${range} running since ${c.startedAt ? hhmm(c.startedAt) : '?'} (${formatDuration((at - Date.parse(c.startedAt ?? '')) / 1000)})`;
    const what =
      p.phase === 'waiting-for-callback'
        ? `waiting for the CC-FS callback for responseId ${p.responseId ?? '?'}`
        : p.phase;
    return `#${c.index} ${range} ${what} since ${hhmm(p.since)} (${formatDuration((at - Date.parse(p.since)) / 1000)}, request ${p.requests} of ${p.maxRequests})`;
  };
  const more = running - 1 > 0 ? `; ${running - 1} more running` : '';
  return `waiting for ${running} chunk${running === 1 ? '' : 's'}: ${describe(oldest)}${more}`;
}

/**
 * One line of progress; with `bar` it starts with `[####......]`. `eta` in seconds (NaN: unknown).
 * While a chunk holds the export up, the line ends with what it waits for instead of an ETA.
 */
export function progressLine(
  status: ProgressStatus,
  eta: number,
  options: { bar?: boolean; width?: number; at?: number } = {},
): string {
  const width = options.width ?? 24;
  const total = status.totals.chunks;
  const fraction = total === 0 ? 1 : chunksDone(status) / total;
  const filled = Math.min(width, Math.round(fraction * width));
  const bar = options.bar ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
  const waiting = waitingSummary(status, options.at ?? Date.now());
  const tail = status.state !== 'running' ? status.state : (waiting ?? `ETA ${formatDuration(eta)}`);
  return `${bar}${progressSummary(status)}, ${tail}`;
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
      const line = progressLine(status, eta, { bar: true, at });
      const max = this.out.columns && this.out.columns > 1 ? this.out.columns - 1 : undefined;
      this.out.status(max !== undefined && line.length > max ? `${line.slice(0, max - 1)}…` : line);
      this.drawn = true;
      return;
    }
    // Without a terminal the ETA alone changes every poll: print only when the chunks or the state do.
    // A chunk that starts holding the export up, or moves to another phase, is a change that matters.
    const waiting =
      waitingSummary(status, at) === undefined
        ? ''
        : status.waitingFor!.map((c) => `${c.index}:${c.progress?.phase ?? ''}`).join(',');
    const key = `${JSON.stringify(status.counts)} ${status.state} ${waiting}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.out.err(progressLine(status, eta, { at }));
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
