import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CcfsClient } from '../ccfs/client';
import { verifyZip } from '../ccfs/zip';
import { readRss } from './lib/proc';

/**
 * The download activity's code path on its own, in its own process: CcfsClient.downloadBillFile
 * (stream to disk, sha256, fsync, rename) then verifyZip (CRC-32 and rows of every entry). Prints
 * READY once idle, then RESULT with the time of each step and the process's RSS high-water mark.
 * Settings as JSON in BENCH_DOWNLOAD_CONFIG.
 */

interface Config {
  simulatorUrl: string;
  ak: string;
  sk: string;
  billFileName: string;
  destination: string;
}

const config = JSON.parse(process.env.BENCH_DOWNLOAD_CONFIG ?? '{}') as Config;
const client = new CcfsClient({ baseUrl: config.simulatorUrl, credentials: { ak: config.ak, sk: config.sk } });
await new Promise((r) => setTimeout(r, 500));
const idle = readRss(process.pid)!;
process.stdout.write(`READY ${JSON.stringify({ idleRss: idle.rss })}\n`);

const t0 = performance.now();
const { bytes, sha256 } = await client.downloadBillFile(config.billFileName, config.destination);
const t1 = performance.now();
const summary = await verifyZip(config.destination);
const t2 = performance.now();
const after = readRss(process.pid)!;
rmSync(config.destination, { force: true });
await client.close();
process.stdout.write(
  `RESULT ${JSON.stringify({
    bytes,
    sha256,
    rows: summary.entries.reduce((n, e) => n + e.rows, 0),
    downloadMs: t1 - t0,
    verifyMs: t2 - t1,
    idleRss: idle.rss,
    hwmRss: after.hwm,
  })}\n`,
);
