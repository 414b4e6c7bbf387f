import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The product's Prometheus metrics; each process (worker, API) has its own registry. */
export class Metrics {
  readonly registry = new Registry();
  readonly chunks = new Counter({
    name: 'ccfs_export_chunks_total',
    help: 'Chunks finished, by final state',
    labelNames: ['state'],
    registers: [this.registry],
  });
  readonly ccfsAnswers = new Counter({
    name: 'ccfs_export_ccfs_answers_total',
    help: 'CC-FS answers by operation and result code (or error type when there was no code)',
    labelNames: ['operation', 'result'],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'ccfs_export_activity_retries_total',
    help: 'Activity attempts after the first, by activity type',
    labelNames: ['activity'],
    registers: [this.registry],
  });
  readonly callbackLatency = new Histogram({
    name: 'ccfs_export_callback_latency_seconds',
    help: 'Time from queryBillData to the CC-FS callback',
    buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200],
    registers: [this.registry],
  });
  readonly callbacks = new Counter({
    name: 'ccfs_export_callbacks_total',
    help: 'Callbacks received by the API, by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly downloadBytes = new Counter({
    name: 'ccfs_export_download_bytes_total',
    help: 'Bytes of verified bill files downloaded',
    registers: [this.registry],
  });
  readonly downloadDuration = new Histogram({
    name: 'ccfs_export_download_duration_seconds',
    help: 'Duration of successful downloads including verification',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1200],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean; prefix?: string } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: options.prefix ?? 'ccfs_export_' });
  }

  downloaded(bytes: number, seconds: number): void {
    this.downloadBytes.inc(bytes);
    this.downloadDuration.observe(seconds);
  }
}
