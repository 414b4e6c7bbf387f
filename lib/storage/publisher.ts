/**
 * Where finished output goes besides the local export directory. The activities call a publisher
 * after a chunk's ZIP is verified and moved into place, and after every manifest write; the
 * local directory stays the working copy (re-runs skip chunks whose file is there), the publisher's
 * target is the shared copy other machines and people read.
 */
export interface PublishOptions {
  signal?: AbortSignal;
  /** Bytes sent so far; the activity turns this into heartbeats. */
  onProgress?: (bytes: number) => void;
}

export interface PublishedObject {
  /** Where it went, e.g. `s3://bucket/prefix/<exportId>/<file>`. */
  location: string;
  bytes: number;
  /** How the stored copy was checked against the local file. */
  verifiedBy: 'checksum-sha256' | 'checksum-sha256-composite' | 'read-back' | 'already-present';
}

export interface OutputPublisher {
  /** Publishes a verified chunk ZIP; `sha256` is what the download computed, and the upload must match it. */
  publishChunk(
    input: { exportId: string; file: string; path: string; sha256: string; bytes: number },
    opts?: PublishOptions,
  ): Promise<PublishedObject>;
  /** Publishes the export's manifest.json as it is on disk now. */
  publishManifest(input: { exportId: string; path: string }, opts?: PublishOptions): Promise<PublishedObject>;
}
