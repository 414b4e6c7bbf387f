/**
 * How the product starts a worker process: the same Node flags and environment wherever it is started
 * (`npm start` through dev/launcher.ts, the Dockerfile's image, docker-compose.yml's worker service,
 * the bench). Without them a worker on a machine with plenty of RAM peaks at ~580 MB during a
 * 10-year backfill with ~60 MB of live heap (bench/results/README.md, scale):
 * - V8 sizes each isolate (main thread, the workflow thread, tsx's loader thread) for the machine —
 *   a ~4 GB old space collected lazily and two 16 MB semi-spaces — so garbage piles up far above
 *   what is live;
 * - glibc gives each of the Temporal core's threads a malloc arena of its own.
 * Operators may override any of these (NODE_OPTIONS, MALLOC_ARENA_MAX) where they start the worker.
 */

/** Node flags of the worker process (also given as NODE_OPTIONS in the image and in compose). */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=128'] as const;

/** Environment of the worker process: glibc reads MALLOC_ARENA_MAX at start, so it cannot be set from inside. */
export const WORKER_MEMORY_ENV = {
  MALLOC_ARENA_MAX: '2',
} as const;

/**
 * The worker's sticky workflow cache (`maxCachedWorkflows`). The SDK sizes it from the heap limit —
 * ~2,300 workflows with a 4 GB heap, 10 with the 128 MB one above, fewer than one export's chunks in
 * flight plus the export, so workflows would be replayed from their histories at every task. An
 * export caches itself and its chunks in flight (maxChunksInFlight, default 4), so this covers dozens
 * of concurrent exports; a workflow evicted from the cache is replayed, never lost.
 */
export const WORKER_MAX_CACHED_WORKFLOWS = 250;

/** NODE_OPTIONS for the worker, as the image and compose set it. */
export function workerNodeOptions(): string {
  return WORKER_NODE_FLAGS.join(' ');
}
