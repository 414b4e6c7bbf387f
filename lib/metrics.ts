import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Which process a `Metrics` serves: its `registry` holds only what that process measures. */
export type MetricsRole = 'api' | 'worker';

/**
 * The product's Prometheus metrics. Each process serves only what it measures: the API's registry
 * (`apiRegistry`) holds the callback counters, the worker's (`workerRegistry`) the chunk, CC-FS,
 * retry and download metrics. A counter a process never moves would sit at 0 there and read as
 * "nothing happened" on a dashboard. `registry` is the one of `role` (default `api`), and the one
 * with the process metrics (CPU, memory, event loop) when `defaultMetrics` is on.
 */
export class Metrics {
  readonly apiRegistry = new Registry();
  readonly workerRegistry = new Registry();
  readonly role: MetricsRole;
  readonly chunks = new Counter({
    name: 'ccfs_export_chunks_total',
    help: 'Chunks finished, by final state',
    labelNames: ['state'],
    registers: [this.workerRegistry],
  });
  readonly ccfsAnswers = new Counter({
    name: 'ccfs_export_ccfs_answers_total',
    help: 'CC-FS answers by operation and result code (or error type when there was no code)',
    labelNames: ['operation', 'result'],
    registers: [this.workerRegistry],
  });
  readonly retries = new Counter({
    name: 'ccfs_export_activity_retries_total',
    help: 'Activity attempts after the first, by activity type',
    labelNames: ['activity'],
    registers: [this.workerRegistry],
  });
  readonly callbackLatency = new Histogram({
    name: 'ccfs_export_callback_latency_seconds',
    help: 'Time from queryBillData to the CC-FS callback',
    buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200],
    registers: [this.workerRegistry],
  });
  readonly callbacks = new Counter({
    name: 'ccfs_export_callbacks_total',
    help: 'Callbacks received by the API, by outcome',
    labelNames: ['outcome'],
    registers: [this.apiRegistry],
  });
  readonly downloadBytes = new Counter({
    name: 'ccfs_export_download_bytes_total',
    help: 'Bytes of verified bill files downloaded',
    registers: [this.workerRegistry],
  });
  readonly downloadDuration = new Histogram({
    name: 'ccfs_export_download_duration_seconds',
    help: 'Duration of successful downloads including verification',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1200],
    registers: [this.workerRegistry],
  });

  constructor(options: { role?: MetricsRole; defaultMetrics?: boolean; prefix?: string } = {}) {
    this.role = options.role ?? 'api';
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: options.prefix ?? 'ccfs_export_' });
  }

  /** What this process serves on `/metrics`. */
  get registry(): Registry {
    return this.role === 'worker' ? this.workerRegistry : this.apiRegistry;
  }

  downloaded(bytes: number, seconds: number): void {
    this.downloadBytes.inc(bytes);
    this.downloadDuration.observe(seconds);
  }
}
