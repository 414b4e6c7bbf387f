import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { performance } from 'node:perf_hooks';
import yazl from 'yazl';
import { startPostgres } from '../scripts/postgres.mjs';
import { CDR_COLUMNS } from '../lib/loader/schema';
import { ROOT } from './lib/proc';
import { fmt, type BenchContext, type Figure } from './lib/report';

/**
 * 6. Load (issue 17): one CDR CSV of about 1 GiB (64 MiB with --quick), header-less as CC-FS writes
 * it, loaded into a private Debian PostgreSQL cluster twice in the same run: by `psql \copy` into a
 * plain table of the same columns (the floor: PostgreSQL's own CSV path, no key, no staging), and by
 * the product's loader from the ZIP (inflate, CSV reading, COPY into staging, the ON CONFLICT insert
 * into the keyed table and the reconciliation), in its own process so that its RSS growth is its own.
 */

const MiB = 1024 ** 2;

/** Writes `bytes` worth of distinct CDR rows (a few rows per call, the last -1); returns the row count. */
async function writeCsv(path: string, bytes: number): Promise<number> {
  const out = createWriteStream(path);
  let written = 0;
  let rows = 0;
  let call = 0;
  while (written < bytes) {
    let batch = '';
    for (let k = 0; k < 2000; k++, call++) {
      const parts = (call % 3) + 1;
      for (let p = 1; p <= parts; p++) {
        const second = String(call % 60).padStart(2, '0');
        const minute = String(Math.floor(call / 60) % 60).padStart(2, '0');
        const begin = `2024-03-0${1 + (call % 3)} 1${call % 10}:${minute}:${second}`;
        batch += `dev01,acc0001,1,${1000 + (call % 500)},${1700000000000 + call}-${call % 97},1380000${String(call % 10000).padStart(4, '0')},10086,${begin},${begin},${begin},${begin},${begin},${begin},2,${call % 300},0,0,${p === parts ? -1 : p},7,1,\n`;
        rows++;
      }
    }
    written += Buffer.byteLength(batch);
    if (!out.write(batch)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
  return rows;
}

async function zipFile(csv: string, zip: string): Promise<string> {
  const z = new yazl.ZipFile();
  z.addReadStream(createReadStream(csv), '20240301000000000123_call_1.csv');
  z.end();
  const out = createWriteStream(zip);
  const hash = createHash('sha256');
  z.outputStream.on('data', (c: Buffer) => hash.update(c));
  z.outputStream.pipe(out);
  await finished(out);
  return hash.digest('hex');
}

interface LoadChildResult {
  seconds: number;
  idleRss: number;
  hwm: number;
  reconciliation: { rowsInFiles: number; rowsInserted: number; ok: boolean };
}

function loadChild(env: Record<string, string>): Promise<LoadChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'load-child.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = text.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`load child exited ${code}: ${text.slice(-500)}`));
      else resolve(JSON.parse(line.slice(7)) as LoadChildResult);
    });
  });
}

export async function load(
  ctx: BenchContext,
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const size = ctx.quick ? 64 * MiB : 1024 * MiB;
  const csv = join(ctx.dir, 'load.csv');
  const zip = join(ctx.dir, 'load.zip');
  ctx.log(`load: writing a ${size / MiB} MiB CDR CSV and its ZIP`);
  const rows = await writeCsv(csv, size);
  const sha256 = await zipFile(csv, zip);
  const pg = await startPostgres();
  try {
    const psql = join(pg.bin, 'psql');
    const baseUrl = pg.createDatabase('baseline');
    execFileSync(psql, [
      baseUrl,
      '-q',
      '-c',
      `CREATE TABLE baseline (${CDR_COLUMNS.map((c) => `${c} text`).join(', ')})`,
    ]);
    ctx.log(`load: psql \\copy of ${rows} rows`);
    const b0 = performance.now();
    execFileSync(psql, [baseUrl, '-q', '-c', `\\copy baseline FROM '${csv}' WITH (FORMAT csv)`]);
    const baselineSeconds = (performance.now() - b0) / 1000;
    const loadUrl = pg.createDatabase('loader');
    ctx.log(`load: the loader, ${rows} rows from the ZIP`);
    const r = await loadChild({ BENCH_LOAD_CONFIG: JSON.stringify({ databaseUrl: loadUrl, zip, sha256 }) });
    if (
      r.reconciliation.rowsInFiles !== rows ||
      r.reconciliation.rowsInserted !== rows ||
      !r.reconciliation.ok
    )
      throw new Error(`the loader loaded ${JSON.stringify(r.reconciliation)} of ${rows} rows`);
    const baselineRate = rows / baselineSeconds;
    const loaderRate = rows / r.seconds;
    const ratio = loaderRate / baselineRate;
    const growthMb = (r.hwm - r.idleRss) / MiB;
    const csvBytes = statSync(csv).size;
    const figures: Figure[] = [
      {
        bench: 'load',
        metric: 'psql \\copy (rows/s)',
        value: fmt.rate(baselineRate, 'rows/s'),
        raw: baselineRate,
      },
      {
        bench: 'load',
        metric: 'loader from the ZIP (rows/s)',
        value: fmt.rate(loaderRate, 'rows/s'),
        raw: loaderRate,
      },
      {
        bench: 'load',
        metric: 'loader / psql \\copy',
        value: fmt.ratio(ratio),
        raw: ratio,
        target: '≥ 0.7×',
        met: ratio >= 0.7,
      },
      {
        bench: 'load',
        metric: `loader RSS growth, ${fmt.mb(csvBytes)} CSV`,
        value: fmt.mb(r.hwm - r.idleRss),
        raw: growthMb,
        target: '< 100 MB',
        met: growthMb < 100,
      },
    ];
    return {
      figures,
      details: {
        rows,
        csvBytes,
        zipBytes: statSync(zip).size,
        baselineSeconds,
        loaderSeconds: r.seconds,
        idleRss: r.idleRss,
        hwm: r.hwm,
      },
    };
  } finally {
    pg.stop();
    rmSync(csv, { force: true });
    rmSync(zip, { force: true });
  }
}
