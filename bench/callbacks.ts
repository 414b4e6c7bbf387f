import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { sign } from '../ccfs/signer';
import { callbackKey, callbackUrl } from '../lib/callback-token';
import { formatWallTime, parseWallTime } from '../domain/wall-time';
import { buildExportRequest } from '../lib/export-input';
import {
  callbackSignal,
  chunkProgressQuery,
  chunkWorkflowId,
  exportWorkflowId,
  type CallbackPayload,
} from '../workflows/definitions';
import { cpuMs } from './lib/proc';
import { fmt, percentile, type BenchContext, type Figure } from './lib/report';
import { BENCH_AK, BENCH_SK, startBenchSimulator, startProduct, type Product } from './lib/stack';

/**
 * 4. Callback endpoint: signed CC-FS callbacks through the real API process (token check, auth-v2
 * verification, zod, signal to the chunk workflow, answer after Temporal accepted the signal)
 * against raw `client.workflow.signal` calls carrying the same payloads to the same workflows. The
 * targets are real chunk workflows of a real worker, each waiting for its callback.
 */

const CONCURRENCY = 16;

interface Pass {
  path: 'api' | 'raw';
  count: number;
  ms: number;
  latencies: number[];
  /** CPU time each process used during the pass, ms. */
  cpu: Record<'loadGenerator' | 'api' | 'worker' | 'temporal', number>;
}

interface Prepared {
  workflowId: string;
  payload: CallbackPayload;
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Callbacks for made-up files (well-formed, never requested), so the chunks keep waiting. */
function prepare(product: Product, workflowIds: string[], count: number): Prepared[] {
  const key = callbackKey(undefined, BENCH_SK);
  return Array.from({ length: count }, (_, i) => {
    const workflowId = workflowIds[i % workflowIds.length]!;
    const responseId = randomBytes(16).toString('hex');
    const billFileName = `20240101_${responseId}.zip`;
    const url = new URL(callbackUrl(product.apiUrl, key, workflowId));
    const body = Buffer.from(
      JSON.stringify({ request: { version: '2.0' }, msgBody: { responseId, billFileName } }),
      'utf8',
    );
    const headers: Record<string, string> = {
      host: url.host,
      'content-type': 'application/json;charset=UTF-8',
      'content-length': String(body.length),
    };
    headers.authorization = sign({
      method: 'POST',
      path: url.pathname,
      headers,
      body,
      credentials: { ak: BENCH_AK, sk: BENCH_SK },
      timestamp: new Date(),
    });
    return {
      workflowId,
      payload: { responseId, billFileName, receivedAt: new Date().toISOString() },
      url: url.href,
      headers,
      body,
    };
  });
}

const cpuLine = (c: Pass['cpu']) =>
  `temporal ${c.temporal.toFixed(2)} ms, worker ${c.worker.toFixed(2)} ms, API ${c.api.toFixed(2)} ms, sender ${c.loadGenerator.toFixed(2)} ms`;

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function pass(
  path: Pass['path'],
  product: Product,
  agent: Agent,
  items: Prepared[],
  temporalPid: number,
): Promise<Pass> {
  const latencies: number[] = [];
  const cpu = () => ({
    loadGenerator: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    api: cpuMs(product.api.pid),
    worker: cpuMs(product.worker.pid),
    temporal: cpuMs(temporalPid),
  });
  const before = cpu();
  const t0 = performance.now();
  await pool(items, CONCURRENCY, async (item) => {
    const s = performance.now();
    if (path === 'api') {
      const res = await request(item.url, {
        method: 'POST',
        headers: item.headers,
        body: item.body,
        dispatcher: agent,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200 || !text.includes('"resultCode":"0"'))
        throw new Error(`callback answered ${res.statusCode} ${text}`);
    } else {
      await product.client.workflow.getHandle(item.workflowId).signal(callbackSignal, item.payload);
    }
    latencies.push(performance.now() - s);
  });
  const ms = performance.now() - t0;
  const after = cpu();
  const used = Object.fromEntries(
    Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]),
  ) as Pass['cpu'];
  return { path, count: items.length, ms, latencies, cpu: used };
}

export async function callbacks(
  ctx: BenchContext,
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const workflows = 64;
  const count = ctx.quick ? 300 : 2000;
  // The simulator accepts the chunks' queries and calls back only after the bench is over.
  const sim = await startBenchSimulator({ callbackDelayMs: 3_600_000, callsPerHour: 1 });
  const product = await startProduct({
    temporalAddress: ctx.temporalAddress,
    workflowBundle: ctx.workflowBundle,
    extraWorkerEnv: ctx.workerEnv,
    simulatorUrl: sim.url,
    dir: ctx.dir,
    profile: ctx.profile ? 'callbacks' : undefined,
  });
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 60_000 });
  const exportId = `bench-callbacks-${Date.now().toString(36)}`;
  const workflowIds = Array.from({ length: workflows }, (_, i) => chunkWorkflowId(exportId, i));
  try {
    // A real export whose chunks all run at once: each asks CC-FS, then waits for its callback.
    const from = '2023-01-01 00:00:00';
    const to = formatWallTime(parseWallTime(from) + workflows * 3 * 86400);
    const request = buildExportRequest(
      {
        exportId,
        from,
        to,
        dataType: 'call',
        timeZone: 'UTC',
        options: { maxChunksInFlight: workflows, callbackTimeoutSeconds: 3600 },
      },
      { timeZone: 'UTC', origin: 'bench' },
    );
    await product.exports.start(request);
    // Every chunk has asked CC-FS and waits for its callback.
    for (;;) {
      const progress = await Promise.all(
        workflowIds.map((id) =>
          product.client.workflow
            .getHandle(id)
            .query(chunkProgressQuery)
            .catch(() => undefined),
        ),
      );
      if (progress.every((p) => p?.phase === 'waiting-for-callback')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    ctx.log(
      `callbacks: ${workflows} chunk workflows waiting; ${count} callbacks per pass, ${CONCURRENCY} at a time`,
    );
    await pass('api', product, agent, prepare(product, workflowIds, 200), ctx.temporalPid);
    await pass('raw', product, agent, prepare(product, workflowIds, 200), ctx.temporalPid);
    const passes: Pass[] = [];
    // Alternating passes, so drift in the machine's load affects both paths alike.
    for (const path of ['raw', 'api', 'raw', 'api'] as const) {
      passes.push(await pass(path, product, agent, prepare(product, workflowIds, count), ctx.temporalPid));
      ctx.log(`callbacks: ${path} ${(passes.at(-1)!.count / (passes.at(-1)!.ms / 1000)).toFixed(0)}/s`);
    }
    // Every signal reached its workflow: the chunks counted each distinct callback.
    const received = await Promise.all(
      workflowIds.map((id) => product.client.workflow.getHandle(id).query(chunkProgressQuery)),
    );
    const total = received.reduce((n, p) => n + p.callbacksReceived, 0);
    const sent = 400 + 4 * count;
    if (total !== sent) throw new Error(`the chunk workflows received ${total} callbacks of ${sent} sent`);

    const agg = (path: Pass['path']) => {
      const ps = passes.filter((p) => p.path === path);
      const n = ps.reduce((a, p) => a + p.count, 0);
      const ms = ps.reduce((a, p) => a + p.ms, 0);
      const lat = ps.flatMap((p) => p.latencies);
      const cpuPerCallback = Object.fromEntries(
        (['loadGenerator', 'api', 'worker', 'temporal'] as const).map((k) => [
          k,
          ps.reduce((a, p) => a + p.cpu[k], 0) / n,
        ]),
      ) as Pass['cpu'];
      return {
        perSecond: n / (ms / 1000),
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        cpuPerCallback,
      };
    };
    const api = agg('api');
    const raw = agg('raw');
    const b = 'callbacks';
    return {
      figures: [
        {
          bench: b,
          metric: `raw client.workflow.signal, ${CONCURRENCY} concurrent`,
          value: `${fmt.rate(raw.perSecond, '/s')}; p50 ${fmt.ms(raw.p50)}, p99 ${fmt.ms(raw.p99)}`,
          raw: raw.perSecond,
        },
        {
          bench: b,
          metric: `signed callbacks through the API, ${CONCURRENCY} concurrent`,
          value: `${fmt.rate(api.perSecond, '/s')}; p50 ${fmt.ms(api.p50)}, p99 ${fmt.ms(api.p99)}`,
          raw: api.perSecond,
        },
        {
          bench: b,
          metric: 'API / raw throughput',
          value: fmt.ratio(api.perSecond / raw.perSecond),
          raw: api.perSecond / raw.perSecond,
          target: '≥ 0.9',
          met: api.perSecond / raw.perSecond >= 0.9,
        },
        {
          bench: b,
          metric: `p99 latency through the API, ${CONCURRENCY} concurrent`,
          value: fmt.ms(api.p99),
          raw: api.p99,
          target: '< 50 ms',
          met: api.p99 < 50,
        },
        { bench: b, metric: 'CPU per callback, raw path', value: cpuLine(raw.cpuPerCallback) },
        { bench: b, metric: 'CPU per callback, API path', value: cpuLine(api.cpuPerCallback) },
        {
          bench: b,
          metric: 'API CPU per callback',
          value: `${api.cpuPerCallback.api.toFixed(2)} ms`,
          raw: api.cpuPerCallback.api,
          target: '≤ 0.5 ms',
          met: api.cpuPerCallback.api <= 0.5,
        },
      ],
      details: {
        workflows,
        concurrency: CONCURRENCY,
        perPass: count,
        api,
        raw,
        passes: passes.map(({ path, count: c, ms, cpu }) => ({
          path,
          count: c,
          ms,
          perSecond: c / (ms / 1000),
          cpu,
        })),
        callbacksReceived: total,
      },
    };
  } finally {
    // Terminating the export terminates its chunks (parent close policy).
    await product.client.workflow
      .getHandle(exportWorkflowId(exportId))
      .terminate('bench over')
      .catch(() => undefined);
    await agent.close();
    await product.stop();
    rmSync(product.outputDir, { recursive: true, force: true });
    await sim.close();
  }
}
