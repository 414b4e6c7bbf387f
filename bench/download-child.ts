import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CcfsClient } from '../ccfs/client';
import { StreamingZipVerifier } from '../ccfs/zip';
import { readRss } from './lib/proc';

/**
 * The download activity's code path on its own, in its own process: CcfsClient.downloadBillFile
 * (stream to disk, sha256, fsync, rename) with StreamingZipVerifier fed as the bytes arrive (CRC-32
 * and rows of every entry), then its finish (the central directory). Prints
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
const client = new CcfsClient({
  baseUrl: config.simulatorUrl,
  credentials: { ak: config.ak, sk: config.sk },
});
await new Promise((r) => setTimeout(r, 500));
const idle = readRss(process.pid)!;
process.stdout.write(`READY ${JSON.stringify({ idleRss: idle.rss })}\n`);

// As downloadChunk does it: verified while the bytes arrive, the central directory read at the end.
const verifier = new StreamingZipVerifier();
const t0 = performance.now();
const { bytes, sha256 } = await client.downloadBillFile(config.billFileName, config.destination, {
  onData: (chunk) => verifier.push(chunk),
});
const t1 = performance.now();
const summary = await verifier.finish(config.destination);
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
    streamed: verifier.streamed,
    idleRss: idle.rss,
    hwmRss: after.hwm,
  })}\n`,
);
