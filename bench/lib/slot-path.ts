import { mean } from './report';
import type { BenchSimulator } from './stack';
import type { TimedEvent } from './timeline';

/** Segments of the path from one chunk's file being generated to the next chunk's query being accepted. */
export interface SlotPath {
  'callback: generated → signal recorded': number;
  'signal → downloadChunk started': number;
  'downloadChunk running': number;
  'download done → chunk workflow completed': number;
  'chunk completed → next chunk workflow started': number;
  'next chunk workflow started → requestChunk started': number;
  'requestChunk started → query accepted by CC-FS': number;
}

/**
 * Mean of each segment over the chunks, from the server-side times in the histories and the
 * simulator's own clock (same host). With K in flight, the k-th chunk to complete admits the
 * (K+k)-th chunk to start; flow-control retries show up in the last segment.
 */
export function slotPath(
  sim: BenchSimulator,
  since: number,
  chunks: Array<{ begin: string }>,
  events: TimedEvent[][],
  k: number,
): SlotPath {
  const state = sim.simulator.inspect();
  const accepted = state.queries.filter((q) => Date.parse(q.at) >= since && q.outcome === '0');
  const generatedAt = new Map(
    state.files.filter((f) => f.generatedAt).map((f) => [f.responseId, Date.parse(f.generatedAt!)]),
  );
  const at = (e: TimedEvent[], label: string) => e.find((x) => x.label === label)?.at ?? NaN;
  const rows = chunks.map((c, i) => {
    const q = accepted.find((x) => (x.msgBody as { beginTime?: string } | undefined)?.beginTime === c.begin);
    const e = events[i]!;
    return {
      generated: q?.responseId ? (generatedAt.get(q.responseId) ?? NaN) : NaN,
      accepted: q ? Date.parse(q.at) : NaN,
      started: at(e, 'workflowExecutionStarted'),
      requestStarted: at(e, 'activityTaskStarted(requestChunk)'),
      signaled: at(e, 'workflowExecutionSignaled'),
      downloadStarted: at(e, 'activityTaskStarted(downloadChunk)'),
      downloadDone: at(e, 'activityTaskCompleted(downloadChunk)'),
      completed: at(e, 'workflowExecutionCompleted'),
    };
  });
  const byCompletion = [...rows].sort((a, b) => a.completed - b.completed);
  const byStart = [...rows].sort((a, b) => a.started - b.started);
  const admitted = byStart.slice(k).map((next, i) => ({ next, freedBy: byCompletion[i]! }));
  const m = (xs: number[]) => mean(xs.filter(Number.isFinite));
  return {
    'callback: generated → signal recorded': m(rows.map((r) => r.signaled - r.generated)),
    'signal → downloadChunk started': m(rows.map((r) => r.downloadStarted - r.signaled)),
    'downloadChunk running': m(rows.map((r) => r.downloadDone - r.downloadStarted)),
    'download done → chunk workflow completed': m(rows.map((r) => r.completed - r.downloadDone)),
    'chunk completed → next chunk workflow started': m(
      admitted.map((a) => a.next.started - a.freedBy.completed),
    ),
    'next chunk workflow started → requestChunk started': m(
      admitted.map((a) => a.next.requestStarted - a.next.started),
    ),
    'requestChunk started → query accepted by CC-FS': m(
      admitted.map((a) => a.next.accepted - a.next.requestStarted),
    ),
  };
}
