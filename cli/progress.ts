import type { ExportStatus } from '../workflows/definitions';

/** Progress of an export as one line: a bar on a terminal, plain text elsewhere. */

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
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function progressLine(status: Pick<ExportStatus, 'counts' | 'totals' | 'state'>, elapsedSeconds: number, width = 24, tty = true): string {
  const done = status.counts.verified + status.counts.empty + status.counts.failed + status.counts.cancelled;
  const total = status.totals.chunks;
  const fraction = total === 0 ? 1 : done / total;
  const eta = done === 0 ? Number.NaN : (elapsedSeconds / done) * (total - done);
  const filled = Math.round(fraction * width);
  const bar = tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
  const failed = status.counts.failed + status.counts.cancelled;
  return (
    `${bar}${done}/${total} chunks` +
    (failed > 0 ? ` (${failed} failed)` : '') +
    `, ${status.counts.running} running, ${status.totals.rows} rows, ${formatBytes(status.totals.bytes)}` +
    (status.state === 'running' ? `, ETA ${formatDuration(eta)}` : `, ${status.state}`)
  );
}

export function table(rows: Array<Record<string, string | number | undefined>>, columns: string[]): string {
  const cell = (v: string | number | undefined) => (v === undefined ? '' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
