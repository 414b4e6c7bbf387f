import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CcfsClient } from '../ccfs/client';
import { CallbackBody } from '../ccfs/protocol';
import { verify } from '../ccfs/signer';
import { verifyZip } from '../ccfs/zip';

/**
 * The baseline: the naive cron script a user might write instead of this product. One chunk after
 * the other — queryBillData, wait for the callback on a tiny HTTP receiver, downloadBillFile, check
 * the ZIP — with no Temporal, no retries, no ledger and no manifest. It does the same CC-FS work as
 * the product (signed requests, signature check of the callback, CRC check of each ZIP), so the
 * difference in time is what durability and orchestration cost.
 *
 * Run by bench/orchestration.ts as a child process, its settings as JSON in BENCH_BASELINE_CONFIG.
 */

interface Config {
  simulatorUrl: string;
  ak: string;
  sk: string;
  outputDir: string;
  dataType: 'call' | 'record' | 'call_record';
  chunks: Array<{ begin: string; end: string }>;
}

const config = JSON.parse(process.env.BENCH_BASELINE_CONFIG ?? '{}') as Config;
mkdirSync(config.outputDir, { recursive: true });

const arrived = new Map<string, string>();
const waiters = new Map<string, (billFileName: string) => void>();
const receiver = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const checked = verify({
      authorization: req.headers.authorization,
      method: 'POST',
      path: req.url ?? '/',
      headers,
      body,
      secretFor: (ak) => (ak === config.ak ? config.sk : undefined),
      now: new Date(),
      maxSkewSeconds: 900,
    });
    if (!checked.ok) {
      res.writeHead(401).end();
      return;
    }
    const { responseId, billFileName } = CallbackBody.parse(JSON.parse(body.toString('utf8'))).msgBody;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end('{"resultCode":"0","resultDesc":"success"}');
    const waiter = waiters.get(responseId);
    if (waiter) waiter(billFileName);
    else arrived.set(responseId, billFileName);
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const callBackURL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callback`;

function callbackFor(responseId: string): Promise<string> {
  const early = arrived.get(responseId);
  if (early) return Promise.resolve(early);
  return new Promise((resolve) => waiters.set(responseId, resolve));
}

const client = new CcfsClient({
  baseUrl: config.simulatorUrl,
  credentials: { ak: config.ak, sk: config.sk },
});
const perChunk: Array<{
  queryMs: number;
  waitMs: number;
  downloadMs: number;
  verifyMs: number;
  bytes: number;
}> = [];

async function exportChunk(index: number, chunk: { begin: string; end: string }): Promise<void> {
  const t0 = performance.now();
  const answer = await client.queryBillData({
    beginTime: chunk.begin,
    endTime: chunk.end,
    dataType: config.dataType,
    callBackURL,
  });
  const t1 = performance.now();
  if (answer.kind === 'empty') {
    perChunk.push({ queryMs: t1 - t0, waitMs: 0, downloadMs: 0, verifyMs: 0, bytes: 0 });
    return;
  }
  const billFileName = await callbackFor(answer.responseId);
  const t2 = performance.now();
  const file = join(config.outputDir, `${String(index).padStart(4, '0')}.zip`);
  const { bytes } = await client.downloadBillFile(billFileName, file);
  const t3 = performance.now();
  await verifyZip(file);
  const t4 = performance.now();
  perChunk.push({ queryMs: t1 - t0, waitMs: t2 - t1, downloadMs: t3 - t2, verifyMs: t4 - t3, bytes });
}

// Warm, like the product's long-running worker: two chunks first, untimed.
for (const [index, chunk] of config.chunks.slice(0, 2).entries()) await exportChunk(10_000 + index, chunk);
perChunk.length = 0;
const startedAt = Date.now();
const cpuBefore = process.cpuUsage();
const started = performance.now();
for (const [index, chunk] of config.chunks.entries()) await exportChunk(index, chunk);
const wallMs = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
const cpuMs = (cpu.user + cpu.system) / 1000;
await client.close();
receiver.close();
process.stdout.write(`RESULT ${JSON.stringify({ startedAt, wallMs, cpuMs, perChunk })}\n`);
