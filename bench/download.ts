import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CcfsClient } from '../ccfs/client';
import { DOWNLOAD_BILL_FILE_PATH, envelope } from '../ccfs/protocol';
import { sign } from '../ccfs/signer';
import { chunkWorkflowId } from '../workflows/definitions';
import { timedExport } from './lib/exports';
import { RssSampler, spawnTs } from './lib/proc';
import { fmt, mean, type BenchContext, type Figure } from './lib/report';
import { BENCH_AK, BENCH_SK, startBenchSimulator, startProduct, type BenchSimulator } from './lib/stack';
import { timedEvents } from './lib/timeline';

/**
 * 3. Download: one 1 GiB bill file from the simulator's endpoint, by `curl` and by the product's
 * download path (in its own process, and as the real downloadChunk activity in the worker), with the
 * memory each takes. The simulator generates the ZIP as it sends it, so the same endpoint limits both.
 */

const GiB = 1024 ** 3;

interface CurlRun {
  bytes: number;
  seconds: number;
  status: string;
}

async function curl(sim: BenchSimulator, billFileName: string, dir: string): Promise<CurlRun> {
  const url = new URL(`${sim.url}${DOWNLOAD_BILL_FILE_PATH}`);
  const body = Buffer.from(JSON.stringify(envelope({ billFileName })), 'utf8');
  const headers = {
    host: url.host,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': String(body.length),
  };
  const authorization = sign({
    method: 'POST',
    path: url.pathname,
    headers,
    body,
    credentials: { ak: BENCH_AK, sk: BENCH_SK },
    timestamp: new Date(),
  });
  const bodyFile = join(dir, 'curl-body.json');
  const out = join(dir, 'curl.zip');
  writeFileSync(bodyFile, body);
  const args = [
    '-sS',
    '-o',
    out,
    '-X',
    'POST',
    url.href,
    '-H',
    `content-type: ${headers['content-type']}`,
    '-H',
    `authorization: ${authorization}`,
  ];
  args.push('--data-binary', `@${bodyFile}`, '-w', '%{http_code} %{size_download} %{time_total}');
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`curl exited with ${code}`)),
    );
  });
  rmSync(out, { force: true });
  const [status, size, total] = stdout.trim().split(' ');
  if (status !== '200') throw new Error(`curl got HTTP ${status}`);
  return { status: status, bytes: Number(size), seconds: Number(total) };
}

export async function download(
  ctx: BenchContext,
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const size = ctx.quick ? 64 * 1024 ** 2 : GiB;
  const sim = await startBenchSimulator({ callbackDelayMs: 0, callsPerHour: 1, callbackMaxAttempts: 1 });
  const product = await startProduct({
    temporalAddress: ctx.temporalAddress,
    workflowBundle: ctx.workflowBundle,
    extraWorkerEnv: ctx.workerEnv,
    simulatorUrl: sim.url,
    dir: ctx.dir,
    profile: ctx.profile ? 'download' : undefined,
  });
  const details: Record<string, unknown> = { sizeBytes: size };
  try {
    await timedExport(product, { from: '2023-01-01 00:00:00', to: '2023-01-04 00:00:00', label: 'warmup' });
    sim.simulator.setOptions({ padCallFileToBytes: size });

    // A file for curl and the stand-alone code path; the product requests its own.
    const client = new CcfsClient({ baseUrl: sim.url, credentials: { ak: BENCH_AK, sk: BENCH_SK } });
    const q = await client.queryBillData({
      beginTime: '2023-02-01 00:00:00',
      endTime: '2023-02-04 00:00:00',
      dataType: 'call',
      callBackURL: 'http://127.0.0.1:9/unused',
    });
    await client.close();
    if (q.kind !== 'accepted') throw new Error('the simulator found no data for the download bench');
    let billFileName: string | undefined;
    while (!billFileName) {
      billFileName = sim.simulator
        .inspect()
        .files.find((f) => f.responseId === q.responseId && f.generatedAt)?.billFileName;
      await new Promise((r) => setTimeout(r, 20));
    }

    ctx.log(`download: curl, ${fmt.mb(size)}`);
    const curls = [await curl(sim, billFileName, ctx.dir)];

    ctx.log('download: CcfsClient.downloadBillFile + StreamingZipVerifier in a child process');
    const dest = join(ctx.dir, 'child.zip');
    const child = spawnTs(
      'download-child',
      'bench/download-child.ts',
      {
        BENCH_DOWNLOAD_CONFIG: JSON.stringify({
          simulatorUrl: sim.url,
          ak: BENCH_AK,
          sk: BENCH_SK,
          billFileName,
          destination: dest,
        }),
      },
      join(ctx.dir, 'download-child.log'),
      ctx.profile ? ['--cpu-prof', '--cpu-prof-dir', join(ctx.dir, 'profiles', 'download-child')] : [],
    );
    const sampler = new RssSampler(child.pid, 20).start();
    await child.waitForLine((l) => l.startsWith('READY '));
    sampler.reset();
    const line = await child.waitForLine((l) => l.startsWith('RESULT '), 600_000);
    sampler.stop();
    await child.exited;
    const codePath = JSON.parse(line.slice('RESULT '.length)) as {
      bytes: number;
      downloadMs: number;
      verifyMs: number;
      idleRss: number;
      hwmRss: number;
      rows: number;
    };
    const codePathPeak = Math.max(sampler.peak, codePath.hwmRss);

    ctx.log('download: the downloadChunk activity in the worker');
    await new Promise((r) => setTimeout(r, 1000));
    const workerIdle = product.workerRss.sample();
    product.workerRss.reset();
    const t = await timedExport(product, {
      from: '2023-03-01 00:00:00',
      to: '2023-03-04 00:00:00',
      label: 'download',
    });
    const workerPeak = product.workerRss.peak;
    if (t.result.state !== 'completed') throw new Error(`download export ended ${t.result.state}`);
    const events = timedEvents(
      (await product.client.workflow.getHandle(chunkWorkflowId(t.exportId, 0)).fetchHistory()).events ?? [],
    );
    const started = events.find((e) => e.label === 'activityTaskStarted(downloadChunk)')!.at;
    const completed = events.find((e) => e.label === 'activityTaskCompleted(downloadChunk)')!.at;
    const activityMs = completed - started;
    const activityBytes = t.result.totals.bytes;

    ctx.log('download: curl again');
    curls.push(await curl(sim, billFileName, ctx.dir));

    const curlRate = mean(curls.map((c) => c.bytes / c.seconds));
    const codeDownloadRate = codePath.bytes / (codePath.downloadMs / 1000);
    const codeTotalRate = codePath.bytes / ((codePath.downloadMs + codePath.verifyMs) / 1000);
    const activityRate = activityBytes / (activityMs / 1000);
    Object.assign(details, {
      curl: curls,
      curlBytesPerSecond: curlRate,
      codePath: {
        ...codePath,
        peakRss: codePathPeak,
        downloadBytesPerSecond: codeDownloadRate,
        totalBytesPerSecond: codeTotalRate,
      },
      activity: {
        bytes: activityBytes,
        ms: activityMs,
        bytesPerSecond: activityRate,
        workerIdleRss: workerIdle,
        workerPeakRss: workerPeak,
      },
    });

    const b = 'download';
    const size$ = fmt.mb(codePath.bytes);
    return {
      figures: [
        {
          bench: b,
          metric: `curl, ${size$} (mean of ${curls.length})`,
          value: fmt.mbps(curlRate),
          raw: curlRate,
        },
        {
          bench: b,
          metric: 'downloadChunk activity (download + fsync + verify) / curl',
          value: `${fmt.mbps(activityRate)} = ${fmt.ratio(activityRate / curlRate)}`,
          raw: activityRate / curlRate,
          target: '≥ 0.9',
          met: activityRate / curlRate >= 0.9,
        },
        {
          bench: b,
          metric: 'code path: download, verified as it arrives / curl',
          value: `${fmt.mbps(codeDownloadRate)} = ${fmt.ratio(codeDownloadRate / curlRate)}`,
          raw: codeDownloadRate / curlRate,
        },
        {
          bench: b,
          metric: 'code path: download + central-directory check / curl',
          value: `${fmt.mbps(codeTotalRate)} = ${fmt.ratio(codeTotalRate / curlRate)}`,
          raw: codeTotalRate / curlRate,
        },
        {
          bench: b,
          metric: 'worker RSS during the download, above idle',
          value: `+${fmt.mb(workerPeak - workerIdle)} (idle ${fmt.mb(workerIdle)}, peak ${fmt.mb(workerPeak)})`,
          raw: workerPeak - workerIdle,
          target: '< 100 MB',
          met: workerPeak - workerIdle < 100 * 1024 * 1024,
        },
        {
          bench: b,
          metric: 'code-path process RSS, above idle',
          value: `+${fmt.mb(codePathPeak - codePath.idleRss)} (idle ${fmt.mb(codePath.idleRss)})`,
          raw: codePathPeak - codePath.idleRss,
        },
      ],
      details,
    };
  } finally {
    await product.stop();
    rmSync(product.outputDir, { recursive: true, force: true });
    await sim.close();
  }
}
