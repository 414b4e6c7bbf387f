import { resolve } from 'node:path';
import type { Config } from './config';
import { ExportRecords, LocalRecordSource, type RecordSource } from './export-records';
import { createS3RecordSource } from './storage/s3';

/**
 * The durable record as the API and the CLI read it: `OUTPUT_DIR` (when this machine has it), then
 * the S3 prefix the worker publishes to (OUTPUT_S3_*). A missing local directory simply holds nothing.
 */
export function exportRecordsFromConfig(
  config: Pick<
    Config,
    | 'OUTPUT_DIR'
    | 'OUTPUT_S3_BUCKET'
    | 'OUTPUT_S3_PREFIX'
    | 'OUTPUT_S3_ENDPOINT'
    | 'OUTPUT_S3_REGION'
    | 'OUTPUT_S3_FORCE_PATH_STYLE'
  >,
): ExportRecords {
  const sources: RecordSource[] = [new LocalRecordSource(resolve(config.OUTPUT_DIR))];
  if (config.OUTPUT_S3_BUCKET) {
    sources.push(
      createS3RecordSource({
        bucket: config.OUTPUT_S3_BUCKET,
        prefix: config.OUTPUT_S3_PREFIX,
        endpoint: config.OUTPUT_S3_ENDPOINT,
        region: config.OUTPUT_S3_REGION,
        forcePathStyle: config.OUTPUT_S3_FORCE_PATH_STYLE,
      }),
    );
  }
  return new ExportRecords(sources);
}
