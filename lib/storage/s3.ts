import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { indexEntryPath, type RecordSource } from '../export-records';
import type { Logger } from '../logger';
import type { OutputPublisher, PublishedObject, PublishOptions } from './publisher';

/**
 * Publishes export output to an S3-compatible object store under `s3://bucket/prefix/<exportId>/`,
 * with the same file names as the local export directory, so the manifest's `file` fields resolve
 * in both places.
 *
 * Every object is uploaded with SHA-256 additional checksums (the store checks each part as it
 * arrives) and then checked against the local file: by the checksum the store reports (the plain
 * SHA-256 for a single-part upload, the composite "SHA-256 of the part digests" for a multipart
 * one) or, for a store that reports none, by reading the object back. The object's metadata carries
 * the file's SHA-256 in hex, which is what the manifest says.
 */

export interface S3PublisherOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix without leading or trailing slashes; may be empty. */
  prefix: string;
  /** Multipart part size in bytes (≥ 5 MiB); files up to this size go up in one PUT. */
  partSize: number;
  /** Parts in flight at once per file. */
  queueSize: number;
  logger?: Logger;
}

export class S3VerificationError extends Error {
  override readonly name = 'S3VerificationError';
}

const MIN_PART_SIZE = 5 * 1024 * 1024;

/** Hashes a stream as it passes: the whole file, and each part at the uploader's part boundaries. */
class PartHasher extends Transform {
  readonly whole = createHash('sha256');
  readonly partDigests: Buffer[] = [];
  bytes = 0;
  #part: Hash = createHash('sha256');
  #inPart = 0;

  constructor(private readonly partSize: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.whole.update(chunk);
    this.bytes += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.partSize - this.#inPart, chunk.length - offset);
      this.#part.update(chunk.subarray(offset, offset + take));
      this.#inPart += take;
      offset += take;
      if (this.#inPart === this.partSize) {
        this.partDigests.push(this.#part.digest());
        this.#part = createHash('sha256');
        this.#inPart = 0;
      }
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.#inPart > 0 || this.partDigests.length === 0) this.partDigests.push(this.#part.digest());
    done();
  }

  /**
   * The checksum S3 reports for the object: lib-storage sends a file of at most one part with a
   * single PUT (plain SHA-256), a larger one as parts (SHA-256 over the concatenated part digests).
   */
  expected(): { kind: 'checksum-sha256' | 'checksum-sha256-composite'; value: string; parts: number } {
    if (this.bytes <= this.partSize)
      return { kind: 'checksum-sha256', value: this.whole.copy().digest('base64'), parts: 1 };
    const value = createHash('sha256').update(Buffer.concat(this.partDigests)).digest('base64');
    return { kind: 'checksum-sha256-composite', value, parts: this.partDigests.length };
  }
}

export class S3Publisher implements OutputPublisher {
  readonly #client: S3Client;
  readonly #options: S3PublisherOptions;

  constructor(options: S3PublisherOptions) {
    if (options.partSize < MIN_PART_SIZE)
      throw new Error(`S3 part size must be at least ${MIN_PART_SIZE} bytes`);
    this.#client = options.client;
    this.#options = { ...options, prefix: options.prefix.replace(/^\/+|\/+$/g, '') };
  }

  /** `prefix/<exportId>/<file>` */
  key(exportId: string, file: string): string {
    return [this.#options.prefix, exportId, file].filter(Boolean).join('/');
  }

  location(key: string): string {
    return `s3://${this.#options.bucket}/${key}`;
  }

  async publishChunk(
    input: { exportId: string; file: string; path: string; sha256: string; bytes: number },
    opts: PublishOptions = {},
  ): Promise<PublishedObject> {
    const key = this.key(input.exportId, input.file);
    // A retried activity may find its ZIP already there from an earlier attempt: kept only when the
    // store's checksum matches the local file's (metadata alone could describe a different body).
    const existing = await this.#head(key);
    if (
      existing?.Metadata?.sha256 === input.sha256 &&
      existing.ContentLength === input.bytes &&
      existing.ChecksumSHA256
    ) {
      const hasher = new PartHasher(this.#options.partSize);
      for await (const chunk of createReadStream(input.path).pipe(hasher)) void chunk;
      if (
        hasher.whole.copy().digest('hex') === input.sha256 &&
        checksumMatches(existing.ChecksumSHA256, hasher.expected())
      ) {
        return { location: this.location(key), bytes: input.bytes, verifiedBy: 'already-present' };
      }
    }
    return this.#put(
      key,
      input.path,
      { contentType: 'application/zip', sha256: input.sha256, bytes: input.bytes },
      opts,
    );
  }

  async publishManifest(
    input: { exportId: string; path: string },
    opts: PublishOptions = {},
  ): Promise<PublishedObject> {
    const published = await this.#put(
      this.key(input.exportId, 'manifest.json'),
      input.path,
      { contentType: 'application/json' },
      opts,
    );
    // A finished export's index entry (lib/export-records.ts) follows its manifest, so coverage and
    // status can be answered from the bucket alone once the local copy and the workflows are gone.
    const manifest = JSON.parse(await readFile(input.path, 'utf8')) as {
      state?: string;
      request?: { tenant?: string };
    };
    if (manifest.state !== 'running' && manifest.request?.tenant !== undefined) {
      const rel = indexEntryPath(manifest.request.tenant, input.exportId);
      const local = join(dirname(dirname(input.path)), rel);
      if (await stat(local).catch(() => undefined)) {
        await this.#put(
          [this.#options.prefix, rel].filter(Boolean).join('/'),
          local,
          { contentType: 'application/json' },
          opts,
        );
      }
    }
    return published;
  }

  async #head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#options.bucket, Key: key, ChecksumMode: 'ENABLED' }),
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (err as Error).name === 'NotFound') return undefined;
      throw err;
    }
  }

  async #put(
    key: string,
    path: string,
    meta: { contentType: string; sha256?: string; bytes?: number },
    opts: PublishOptions,
  ): Promise<PublishedObject> {
    const { bucket, partSize, queueSize } = this.#options;
    const size = (await stat(path)).size;
    if (meta.bytes !== undefined && size !== meta.bytes) {
      throw new S3VerificationError(`${path} has ${size} bytes, the download had ${meta.bytes}`);
    }
    const hasher = new PartHasher(partSize);
    const source = createReadStream(path);
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // The digest of the bytes actually read is known only at the end; the metadata needs it up front,
    // so a file without a known SHA-256 (the manifest) gets it from a first read (manifests are small).
    const sha256 = meta.sha256 ?? (await sha256File(path));
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: bucket,
        Key: key,
        Body: source.pipe(hasher),
        ContentType: meta.contentType,
        ChecksumAlgorithm: 'SHA256',
        Metadata: { sha256 },
      },
      partSize,
      queueSize,
      leavePartsOnError: false,
      abortController: abort,
    });
    if (opts.onProgress) upload.on('httpUploadProgress', (p) => opts.onProgress?.(p.loaded ?? 0));
    source.once('error', (err) => hasher.destroy(err));
    try {
      await upload.done();
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      source.destroy();
    }

    try {
      const verifiedBy = await this.#verify(key, path, size, sha256, hasher, opts.signal);
      this.#options.logger?.debug(
        { location: this.location(key), bytes: size, verifiedBy },
        'published to S3',
      );
      return { location: this.location(key), bytes: size, verifiedBy };
    } catch (err) {
      // Never leave an object whose metadata vouches for bytes it does not hold.
      await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
      throw err;
    }
  }

  async #verify(
    key: string,
    path: string,
    size: number,
    sha256: string,
    hasher: PartHasher,
    signal?: AbortSignal,
  ): Promise<PublishedObject['verifiedBy']> {
    const read = hasher.whole.copy().digest('hex');
    if (read !== sha256)
      throw new S3VerificationError(
        `${path} changed while it was uploaded (sha256 ${read}, expected ${sha256})`,
      );
    const expected = hasher.expected();
    const head = await this.#head(key);
    if (!head) throw new S3VerificationError(`${this.location(key)} is missing right after its upload`);
    if (head.ContentLength !== size) {
      throw new S3VerificationError(
        `${this.location(key)} has ${head.ContentLength} bytes, the local file ${size}`,
      );
    }
    if (head.ChecksumSHA256) {
      if (!checksumMatches(head.ChecksumSHA256, expected)) {
        throw new S3VerificationError(
          `${this.location(key)}: stored checksum ${head.ChecksumSHA256} is not the local file's ${expected.value}`,
        );
      }
      return expected.kind;
    }
    // A store without additional checksums: read the object back.
    const got = await this.#readBackSha256(key, signal);
    if (got !== sha256)
      throw new S3VerificationError(`${this.location(key)}: read back sha256 ${got}, expected ${sha256}`);
    return 'read-back';
  }

  async #readBackSha256(key: string, signal?: AbortSignal): Promise<string> {
    const got = await this.#client.send(new GetObjectCommand({ Bucket: this.#options.bucket, Key: key }), {
      abortSignal: signal,
    });
    const hash = createHash('sha256');
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    return hash.digest('hex');
  }
}

/** AWS reports a composite checksum as `<base64>-<parts>`; some S3-compatible stores omit the suffix. */
function checksumMatches(stored: string, expected: { value: string; parts: number }): boolean {
  const [value, parts] = stored.split('-');
  return value === expected.value && (parts === undefined || Number(parts) === expected.parts);
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface S3Settings {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  partSizeMb: number;
  queueSize: number;
}

/**
 * An S3 client for AWS or any S3-compatible store. Credentials come from the standard AWS chain
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, instance roles), never from
 * this project's own settings.
 */
export function createS3Publisher(settings: S3Settings, logger?: Logger): S3Publisher {
  const client = new S3Client({
    region: settings.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    // Stores behind a plain endpoint (MinIO, Ceph, moto) rarely have bucket-named DNS entries.
    forcePathStyle: settings.forcePathStyle ?? settings.endpoint !== undefined,
  });
  return new S3Publisher({
    client,
    bucket: settings.bucket,
    prefix: settings.prefix,
    partSize: Math.round(settings.partSizeMb * 1024 * 1024),
    queueSize: settings.queueSize,
    logger,
  });
}

/**
 * Reads the published record back (lib/export-records.ts): manifests and index entries under the
 * prefix, so `status`, `list` and coverage answer from the bucket when the local OUTPUT_DIR is gone.
 */
export class S3RecordSource implements RecordSource {
  readonly kind = 's3';
  readonly #prefix: string;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    prefix: string,
  ) {
    this.#prefix = prefix.replace(/^\/+|\/+$/g, '');
  }

  #key(rel: string): string {
    return [this.#prefix, rel === '.' ? '' : rel].filter(Boolean).join('/');
  }

  async read(rel: string): Promise<string | undefined> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.#key(rel) }));
      return await got.Body!.transformToString('utf8');
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (err as Error).name === 'NoSuchKey') return undefined;
      throw err;
    }
  }

  async list(rel: string): Promise<string[]> {
    const prefix = `${this.#key(rel)}/`.replace(/^\//, '');
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          Delimiter: '/',
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) if (o.Key) names.push(o.Key.slice(prefix.length));
      for (const p of page.CommonPrefixes ?? [])
        if (p.Prefix) names.push(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return names;
  }

  location(rel: string): string {
    return `s3://${this.bucket}/${this.#key(rel)}`;
  }
}

/** The S3 record reader for the client side (API, CLI), with the publisher's settings. */
export function createS3RecordSource(
  settings: Pick<S3Settings, 'bucket' | 'prefix' | 'endpoint' | 'region' | 'forcePathStyle'>,
): S3RecordSource {
  const client = new S3Client({
    region: settings.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle ?? settings.endpoint !== undefined,
  });
  return new S3RecordSource(client, settings.bucket, settings.prefix);
}
