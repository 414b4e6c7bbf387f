import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '../../activities/output-store';
import { readZipRows } from '../../ccfs/zip';
import { buildExportRequest, type StartExportInput } from '../../lib/export-input';
import type { ExportRequest } from '../../workflows/definitions';

let n = 0;
/** An export request with test-sized timeouts and retries. */
export function testRequest(
  input: Partial<StartExportInput> & Pick<StartExportInput, 'from' | 'to'>,
): ExportRequest {
  return buildExportRequest(
    {
      exportId: `t-${Date.now().toString(36)}-${(n++).toString(36)}`,
      dataType: 'call_record',
      timeZone: 'Asia/Shanghai',
      ...input,
      options: {
        maxChunksInFlight: 8,
        callbackTimeoutSeconds: 20,
        retryInitialIntervalSeconds: 0.2,
        retryMaximumIntervalSeconds: 1,
        retryMaximumAttempts: 5,
        ...input.options,
      },
    },
    { timeZone: 'Asia/Shanghai', origin: 'test' },
  );
}

export async function readManifest(path: string): Promise<Manifest> {
  return JSON.parse(await readFile(path, 'utf8')) as Manifest;
}

/** `call_id#call_id_num` of every CDR row and `call_id#file_name` of every record row in an export's ZIPs. */
export async function exportedRowKeys(
  exportDir: string,
  manifest: Manifest,
): Promise<{ call: Set<string>; record: Set<string> }> {
  const call = new Set<string>();
  const record = new Set<string>();
  for (const chunk of manifest.chunks) {
    if (chunk.state !== 'verified' || !('file' in chunk) || !chunk.file) continue;
    for await (const row of readZipRows(join(exportDir, chunk.file))) {
      // CDR: call_id is column 5, call_id_num column 18; recording index: call_id 5, file_name 10.
      if (row.kind === 'call') call.add(`${row.cells[4]}#${row.cells[17]}`);
      if (row.kind === 'record') record.add(`${row.cells[4]}#${row.cells[9]}`);
    }
  }
  return { call, record };
}

/** sha256 (hex) of a file, streamed. */
export function sha256File(path: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => hash.update(d))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
