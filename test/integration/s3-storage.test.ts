import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import type { Manifest } from '../../activities/output-store';
import { freePort } from '../../dev/temporal-server';
import { ExportService } from '../../lib/export-service';
import { S3Publisher, S3VerificationError } from '../../lib/storage/s3';
import { startSimulator, type RunningSimulator } from '../../simulator/app';
import { exportedRowKeys } from '../support/exports';
import { freePortPair, startService, writeWorkflowBundle, type ServiceProcess } from '../support/processes';
import { startS3Server, type S3Server } from '../support/s3-server';

/**
 * Shared output in an S3-compatible store (moto_server, a real S3 REST implementation with
 * multipart uploads and SHA-256 additional checksums), and several tenants in one deployment:
 * worker and API run as processes configured only through their environment and a tenants file.
 */

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function getObject(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

let s3: S3Server;
let s3client: S3Client;
const dir = mkdtempSync(join(tmpdir(), 'ccfs-s3-'));

beforeAll(async () => {
  s3 = await startS3Server();
  s3client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
    forcePathStyle: true,
  });
});
afterAll(async () => {
  s3client?.destroy();
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('S3 publisher', () => {
  const bucket = 'publisher-test';
  let publisher: S3Publisher;
  beforeAll(async () => {
    await s3client.send(new CreateBucketCommand({ Bucket: bucket }));
    publisher = new S3Publisher({
      client: s3client,
      bucket,
      prefix: '/team/exports/',
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
  });

  it('uploads a large ZIP in parts and verifies it by the composite SHA-256 the store reports', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 123);
    const path = join(dir, 'big.zip');
    writeFileSync(path, data);
    const progress: number[] = [];
    const published = await publisher.publishChunk(
      { exportId: 'exp-1', file: 'big.zip', path, sha256: sha256(data), bytes: data.length },
      { onProgress: (n) => progress.push(n) },
    );
    expect(published).toEqual({
      location: `s3://${bucket}/team/exports/exp-1/big.zip`,
      bytes: data.length,
      verifiedBy: 'checksum-sha256-composite',
    });
    expect(progress.at(-1)).toBe(data.length);
    const head = await s3client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: 'team/exports/exp-1/big.zip', ChecksumMode: 'ENABLED' }),
    );
    expect(head.Metadata?.sha256).toBe(sha256(data));
    expect(head.ContentType).toBe('application/zip');
    expect(sha256(await getObject(s3client, bucket, 'team/exports/exp-1/big.zip'))).toBe(sha256(data));
  });

  it('uploads a small file in one PUT verified by its SHA-256, and skips it when it is already there', async () => {
    const data = Buffer.from('PK small zip stand-in');
    const path = join(dir, 'small.zip');
    writeFileSync(path, data);
    const input = { exportId: 'exp-2', file: 'small.zip', path, sha256: sha256(data), bytes: data.length };
    expect((await publisher.publishChunk(input)).verifiedBy).toBe('checksum-sha256');
    expect((await publisher.publishChunk(input)).verifiedBy).toBe('already-present');
  });

  it('refuses to publish bytes that are not the verified download, and leaves no object behind', async () => {
    const verified = Buffer.from('the bytes that were verified');
    const path = join(dir, 'changed.zip');
    writeFileSync(path, 'the bytes that were changed!');
    const input = {
      exportId: 'exp-3',
      file: 'changed.zip',
      path,
      sha256: sha256(verified),
      bytes: verified.length,
    };
    await expect(publisher.publishChunk(input)).rejects.toThrow(S3VerificationError);
    await expect(publisher.publishChunk(input)).rejects.toThrow(/changed while it was uploaded/);
    await expect(
      s3client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'team/exports/exp-3/changed.zip' })),
    ).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('reads the object back to verify it when the store reports no checksum', async () => {
    const blind = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: s3.credentials,
      forcePathStyle: true,
    });
    // A store without additional checksums: strip them from every response before the SDK parses it.
    blind.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const headers = (out.response as { headers?: Record<string, string> }).headers ?? {};
        for (const h of Object.keys(headers)) if (h.startsWith('x-amz-checksum')) delete headers[h];
        return out;
      },
      { step: 'deserialize', name: 'stripChecksums', priority: 'low' },
    );
    const p = new S3Publisher({ client: blind, bucket, prefix: '', partSize: 5 * 1024 * 1024, queueSize: 1 });
    const path = join(dir, 'manifest.json');
    writeFileSync(path, JSON.stringify({ hello: 'world' }));
    expect(await p.publishManifest({ exportId: 'exp-4', path })).toMatchObject({
      location: `s3://${bucket}/exp-4/manifest.json`,
      verifiedBy: 'read-back',
    });
    blind.destroy();
  });
});

describe('a deployment with two tenants and S3 output, configured by environment and tenants file', () => {
  const bucket = 'ccfs-exports';
  const taskQueue = `tenants-${randomUUID()}`;
  const outputDir = join(dir, 'exports');
  const tenants = [
    { id: 'acc0001', ak: 'AK-ONE', sk: `sk-one-${randomUUID()}`, timeZone: 'Asia/Shanghai' },
    { id: 'acc0002', ak: 'AK-TWO', sk: `sk-two-${randomUUID()}`, timeZone: 'Europe/Berlin' },
  ];
  let sim: RunningSimulator;
  let api: ServiceProcess;
  let worker: ServiceProcess;
  let apiUrl: string;
  let connection: Connection;
  let exports: ExportService;

  beforeAll(async () => {
    await s3client.send(new CreateBucketCommand({ Bucket: bucket }));
    sim = await startSimulator({
      port: 0,
      accounts: tenants.map((t) => ({ ak: t.ak, sk: t.sk, accountId: t.id })),
      seed: 21,
      callbackDelayMs: 50,
      callbackRetryIntervalMs: 300,
    });
    // One SK inline, one from a file (a mounted secret): neither is in the environment.
    const skFile = join(dir, 'acc0002.sk');
    writeFileSync(skFile, `${tenants[1]!.sk}\n`);
    const tenantsFile = join(dir, 'tenants.yaml');
    writeFileSync(
      tenantsFile,
      `tenants:
  acc0001: { ak: ${tenants[0]!.ak}, sk: ${tenants[0]!.sk}, timeZone: ${tenants[0]!.timeZone} }
  acc0002: { ak: ${tenants[1]!.ak}, skFile: ${skFile}, timeZone: ${tenants[1]!.timeZone} }
`,
    );
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    const common = {
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_TASK_QUEUE: taskQueue,
      CCFS_BASE_URL: sim.url,
      TENANTS_FILE: tenantsFile,
      CALLBACK_SECRET: `callback-${randomUUID()}`,
      CALLBACK_BASE_URL: apiUrl,
      OUTPUT_DIR: outputDir,
    };
    const bundle = await writeWorkflowBundle(dir);
    [api, worker] = await Promise.all([
      startService('api', { ...common, API_PORT: String(apiPort), API_HOST: '127.0.0.1' }),
      startService('worker', {
        ...common,
        WORKFLOW_BUNDLE_PATH: bundle,
        WORKER_METRICS_PORT: String(await freePortPair()),
        CCFS_MAX_CALLS_PER_SECOND: '200',
        OUTPUT_S3_BUCKET: bucket,
        OUTPUT_S3_PREFIX: 'prod/ccfs',
        OUTPUT_S3_ENDPOINT: s3.endpoint,
        OUTPUT_S3_REGION: s3.region,
        OUTPUT_S3_PART_SIZE_MB: '5',
        AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      }),
    ]);
    connection = await Connection.connect({ address: inject('temporalAddress') });
    exports = new ExportService(new Client({ connection }), {
      taskQueue,
      namespace: 'default',
      uiUrl: 'http://localhost:8233',
    });
  });

  afterAll(async () => {
    await Promise.all([worker, api].filter(Boolean).map((p) => p.stop('SIGTERM', 10_000)));
    await connection?.close();
    await sim?.close();
  });

  const startExport = (body: unknown) =>
    fetch(`${apiUrl}/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('exports each tenant with its own AK/SK and zone, and publishes every ZIP and the manifest to S3', async () => {
    const options = {
      chunkHours: 48,
      callbackTimeoutSeconds: 20,
      retryInitialIntervalSeconds: 0.2,
      retryMaximumIntervalSeconds: 1,
      retryMaximumAttempts: 5,
    };
    const ids = tenants.map((t) => `tenant-${t.id}-${randomUUID().slice(0, 8)}`);
    for (const [i, t] of tenants.entries()) {
      const res = await startExport({
        exportId: ids[i],
        from: '2024-05-01 00:00:00',
        to: '2024-05-07 00:00:00',
        dataType: 'call_record',
        filters: { accountId: t.id },
        options,
      });
      expect(res.status).toBe(201);
    }
    const results = await Promise.all(ids.map((id) => exports.result(id)));

    for (const [i, t] of tenants.entries()) {
      const result = results[i]!;
      expect(result.state).toBe('completed');
      const local = JSON.parse(readFileSync(result.manifestPath, 'utf8')) as Manifest;
      expect(local.request).toMatchObject({ tenant: t.id, timeZone: t.timeZone });

      // Every query for this tenant was signed with its AK (the simulator refuses another AK's accountId).
      const queries = sim.simulator
        .inspect()
        .queries.filter((q) => (q.msgBody as { accountId?: string }).accountId === t.id);
      expect(queries.length).toBeGreaterThan(0);
      expect(new Set(queries.map((q) => q.ak))).toEqual(new Set([t.ak]));

      // All of this tenant's rows, and none of the other's.
      const exportDir = join(outputDir, ids[i]!);
      const got = await exportedRowKeys(exportDir, local);
      const expected = sim.simulator.rowKeys({
        beginTime: '2024-05-01 00:00:00',
        endTime: '2024-05-07 00:00:00',
        ak: t.ak,
      });
      expect(expected.call.length).toBeGreaterThan(100);
      expect(got.call.size).toBe(expected.call.length);
      expect(expected.call.filter((r) => !got.call.has(`${r.call_id}#${r.call_id_num}`))).toEqual([]);

      // S3 holds the same ZIPs (byte for byte) and the final manifest, under prefix/<exportId>/.
      const prefix = `prod/ccfs/${ids[i]}`;
      const published = JSON.parse(
        (await getObject(s3client, bucket, `${prefix}/manifest.json`)).toString('utf8'),
      ) as Manifest;
      expect(published).toEqual(local);
      for (const chunk of local.chunks) {
        if (chunk.state !== 'verified') continue;
        const body = await getObject(s3client, bucket, `${prefix}/${chunk.file}`);
        expect(sha256(body)).toBe(chunk.sha256);
        const head = await s3client.send(
          new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${chunk.file}` }),
        );
        expect(head.Metadata?.sha256).toBe(chunk.sha256);
      }
    }
  });

  it('refuses an export for a tenant that is not configured', async () => {
    const res = await startExport({
      from: '2024-05-01 00:00:00',
      to: '2024-05-02 00:00:00',
      dataType: 'call',
      filters: { accountId: 'acc0009' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: 'unknown_tenant',
      message: 'no tenant "acc0009" is configured',
    });
  });

  it('keeps every tenant SK out of the worker’s and the API’s logs', () => {
    const logs = [...worker.lines, ...api.lines].join('\n');
    expect(logs).toContain('chunk downloaded and verified');
    for (const t of tenants) expect(logs).not.toContain(t.sk);
  });
});
