import { createRequire } from 'node:module';
import type { History } from '@temporalio/common/lib/proto-utils';
import proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * History ⇄ proto JSON (the format of `temporal workflow show --output json` and the UI's download).
 *
 * Why not the SDK's `historyToJSON`/`historyFromJSON` (and `Worker.runReplayHistory` on JSON, which
 * calls the latter): with this lock file npm installs a separate protobufjs 8 under each of
 * `@temporalio/proto`, `/common` and `/worker` (the root holds grpc's protobufjs 7), and the SDK hands
 * a type of proto's copy to common's `protojson`, which refuses it ("type must be a Type"). Taking
 * `protojson` from the copy `@temporalio/proto` itself loads keeps the two together however npm lays
 * out the tree.
 */

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}
interface Root {
  lookupType(name: string): unknown;
}

const protoRequire = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'));
const protojson = protoRequire('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as Root).lookupType(
  'temporal.api.history.v1.History',
);

/** A fetched history (`handle.fetchHistory()`) as proto JSON. */
export function historyToJson(history: History): unknown {
  return protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history));
}

/**
 * Proto JSON back to a history `Worker.runReplayHistories` takes. Also reads the older export format
 * with PascalCase enum values (`"eventType": "WorkflowExecutionStarted"`), as the SDK does.
 * Throws a TypeError when the JSON is not a history.
 */
export function historyFromJson(json: unknown): History {
  const events = (json as { events?: unknown } | null)?.events;
  if (!Array.isArray(events))
    throw new TypeError('not a history: expected an object with an array of events');
  const loaded = protojson.fromJson(
    historyType,
    { events: events.map(fixEvent) },
    { ignoreUnknownFields: true },
  );
  if (!loaded) throw new TypeError('not a history');
  return loaded;
}

const constantCase = (s: string) => s.replace(/[^\b][A-Z]/g, (m) => `${m[0]}_${m[1]}`).toUpperCase();
function fixEnum(obj: Record<string, unknown>, key: string, prefix: string): Record<string, unknown> {
  const value = obj[key];
  if (typeof value !== 'string' || value.startsWith(prefix)) return {};
  return { [key]: `${prefix}_${constantCase(value)}` };
}

function fixEvent(event: Record<string, unknown>): Record<string, unknown> {
  const key = Object.keys(event).find((k) => k.endsWith('EventAttributes'));
  if (!key) throw new TypeError(`history event without attributes: ${JSON.stringify(event).slice(0, 200)}`);
  const attrs = event[key] as Record<string, unknown>;
  const taskQueue = attrs.taskQueue as Record<string, unknown> | undefined;
  return {
    ...event,
    ...fixEnum(event, 'eventType', 'EVENT_TYPE'),
    [key]: {
      ...attrs,
      ...(taskQueue && { taskQueue: { ...taskQueue, ...fixEnum(taskQueue, 'kind', 'TASK_QUEUE_KIND') } }),
      ...fixEnum(attrs, 'parentClosePolicy', 'PARENT_CLOSE_POLICY'),
      ...fixEnum(attrs, 'workflowIdReusePolicy', 'WORKFLOW_ID_REUSE_POLICY'),
      ...fixEnum(attrs, 'initiator', 'CONTINUE_AS_NEW_INITIATOR'),
      ...fixEnum(attrs, 'retryState', 'RETRY_STATE'),
    },
  };
}
