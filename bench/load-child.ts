import { performance } from 'node:perf_hooks';
import { Loader } from '../lib/loader/loader';
import { readRss } from './lib/proc';

/**
 * The loader's code path on its own, in its own process (so its memory is measured alone): one
 * Loader.load of a ZIP. Prints RESULT with rows, seconds and the RSS before and at its high-water
 * mark. Settings as JSON in BENCH_LOAD_CONFIG.
 */

interface Config {
  databaseUrl: string;
  zip: string;
  sha256: string;
}

const config = JSON.parse(process.env.BENCH_LOAD_CONFIG ?? '{}') as Config;
const loader = new Loader({ databaseUrl: config.databaseUrl });
await loader.ready();
await new Promise((r) => setTimeout(r, 300));
const idle = readRss(process.pid)!;
const t0 = performance.now();
const result = await loader.load({
  path: config.zip,
  sha256: config.sha256,
  fileName: 'bench.zip',
  exportId: 'bench',
  chunk: 0,
  tenant: 'bench',
  timeZone: 'Asia/Shanghai',
});
const seconds = (performance.now() - t0) / 1000;
const after = readRss(process.pid)!;
await loader.close();
process.stdout.write(
  `RESULT ${JSON.stringify({ seconds, idleRss: idle.rss, hwm: after.hwm, reconciliation: result.reconciliation })}\n`,
);
