import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { DateTime } from 'luxon';
import { parseWallTime, wallToInstant } from '../domain/wall-time';
import {
  exportStatusQuery,
  exportWorkflowId,
  type ExportRequest,
  type ExportResult,
  type ExportStatus,
  type ExportWorkflowInput,
  type LedgerEntry,
  chunkWorkflowId,
  WorkflowType,
} from '../workflows/definitions';
import type { exportWorkflow } from '../workflows/export-workflow';
import { ledgerOf, type ExportRecords, type IndexEntry } from './export-records';
import {
  DataTypeKey,
  ExportIdKey,
  ExportStateKey,
  KindKey,
  RangeBeginKey,
  RangeEndKey,
  TenantKey,
} from '../workflows/search-attributes';

export interface ExportServiceSettings {
  taskQueue: string;
  namespace: string;
  /** Base URL of the Temporal UI, for links. */
  uiUrl: string;
  /**
   * The durable record of finished exports (manifests and index in OUTPUT_DIR / the S3 prefix):
   * `status` and `list` fall back to it for exports whose workflows retention has deleted.
   */
  records?: ExportRecords;
}

export interface StartedExport {
  exportId: string;
  workflowId: string;
  runId: string;
  /** False when an export with this ID already existed: starting twice yields one export. */
  created: boolean;
  links: ExportLinks;
}

export interface ExportLinks {
  /** The export workflow's page in the Temporal UI. */
  temporalUi: string;
  /** The Temporal UI's workflow list of this export's chunks (a search-attribute query). */
  temporalUiChunks: string;
}

/** A ledger entry as the status shows it: with the chunk workflow's ID and page once it has started. */
export type ChunkStatus = LedgerEntry & { workflowId: string; links?: { temporalUi: string } };

/**
 * A request that cannot start as asked: `range_not_ended` (the range ends in the future in the
 * tenant's zone and partial data was not allowed) or `export_id_conflict` (the export ID is taken by
 * an export of a different range, zone, type or filters). `fields` names what differs, in the
 * request's own terms (`from`, `to`, `dataType`, `timeZone`, `filters.<key>`). The API answers 400 /
 * 409, the CLI exits 1.
 */
/**
 * How long a status query may wait for a worker to answer. A query is answered by a worker, even for
 * a closed workflow; without one polling the task queue the server would hold the call ~30 s and
 * then fail with "Failed to query Workflow".
 */
const STATUS_QUERY_TIMEOUT_MS = 10_000;

/**
 * No worker answered an export's status query in time (none polls its task queue, or all are busy) and
 * the durable record has no manifest of it to answer instead. The message says what to check.
 */
export class WorkerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerUnavailableError';
  }
}

export class ExportRequestError extends Error {
  constructor(
    readonly code: 'range_not_ended' | 'export_id_conflict',
    message: string,
    readonly fields: string[],
  ) {
    super(message);
    this.name = 'ExportRequestError';
  }
}

/** Set on a request whose range had not ended when it started (`allowPartial`): its data may be incomplete. */
export interface PartialMark {
  reason: string;
  /** When the export was started (ISO instant): data after this instant cannot be in the export. */
  requestedAt: string;
}

/** An export request as stored: possibly marked partial (kept in request.json and the manifest). */
export type StoredExportRequest = ExportRequest & { partial?: PartialMark };

/** The fields that decide what an export contains, as the API and the CLI name them. */
function dataFields(r: ExportRequest): Record<string, string> {
  const out: Record<string, string> = {
    from: r.begin,
    to: r.end,
    timeZone: r.timeZone,
    dataType: r.dataType,
  };
  for (const [k, v] of Object.entries(r.filters ?? {}))
    if (v !== undefined && v !== '') out[`filters.${k}`] = String(v);
  return out;
}

/**
 * Fields whose values differ between two requests for one export ID. Options (chunk size, chunks in
 * flight, timeouts) say how to export, not what: a repeat that differs only there is the same export.
 */
export function differingFields(a: ExportRequest, b: ExportRequest): string[] {
  const x = dataFields(a);
  const y = dataFields(b);
  return [...new Set([...Object.keys(x), ...Object.keys(y)])]
    .filter((k) => x[k] !== y[k])
    .sort((p, q) => FIELD_ORDER(p) - FIELD_ORDER(q));
}
const FIELD_ORDER = (k: string) => ['from', 'to', 'dataType', 'timeZone'].indexOf(k) >>> 0;

/**
 * Whether the range of `request` has not ended yet at `now` in its zone: CC-FS would export what exists
 * so far and every chunk would look complete. Returns the refusal message, or undefined when it ended.
 */
export function rangeNotEnded(request: ExportRequest, now: Date = new Date()): string | undefined {
  const end = wallToInstant(parseWallTime(request.end), request.timeZone) * 1000;
  if (end <= now.getTime()) return undefined;
  const nowThere = DateTime.fromJSDate(now).setZone(request.timeZone).toFormat('yyyy-MM-dd HH:mm:ss');
  return (
    `the range ends at ${request.end} (${request.timeZone}), which has not come yet (it is ${nowThere} there): ` +
    'the export would hold only what exists so far while reporting every chunk as verified. ' +
    'End the range at a past time, or to export what exists now marked partial pass --allow-partial (API: "allowPartial": true)'
  );
}

export type ExportStatusView = Omit<ExportStatus, 'chunks'> & {
  /** True when the request's range had not ended when the export started (`allowPartial`): data may be missing. */
  partial: boolean;
  /** Temporal's execution status of the export workflow: RUNNING, COMPLETED, CANCELLED, … */
  status: string;
  /** When the export workflow's current run started (later than the export after a continue-as-new), and closed. */
  startTime: string;
  closeTime?: string;
  chunks: ChunkStatus[];
  links: ExportLinks;
};

export interface ExportSummary {
  exportId: string;
  workflowId: string;
  status: string;
  state?: string;
  tenant?: string;
  dataType?: string;
  rangeBegin?: string;
  rangeEnd?: string;
  startTime: string;
  closeTime?: string;
  links: ExportLinks;
}

export interface ListFilters {
  tenant?: string;
  state?: string;
  dataType?: string;
  /** Exports whose range overlaps [from, to) (ISO instants; ranges are half-open, so abutting ones do not). */
  from?: string;
  to?: string;
  limit?: number;
}

const quote = (v: string) => `"${v.replace(/["\\]/g, '')}"`;

/** Export states `list --state` / `GET /exports?state=` accept; `canceled` (US spelling) means `cancelled`. */
export const EXPORT_STATES = ['running', 'completed', 'completed_with_failures', 'cancelled'] as const;
export const STATE_ALIASES: Record<string, string> = { canceled: 'cancelled' };
export const normalizeState = (s: string): string => STATE_ALIASES[s] ?? s;

/**
 * An export's state as a person means it: `running` while a run runs (its search attribute says so
 * too, but a run terminated or failed without updating it would say `running` forever), the state the
 * workflow recorded when it completed, `cancelled`, or Temporal's status (`terminated`, `failed`,
 * `timed_out`) when the workflow ended without recording one.
 */
export function trueState(status: string, recorded: string | undefined): string {
  if (status === 'RUNNING') return 'running';
  if (status === 'CANCELLED') return 'cancelled';
  if (status === 'COMPLETED' && recorded && recorded !== 'running') return recorded;
  return status.toLowerCase();
}

function searchAttribute(
  description: WorkflowExecutionDescription,
  key: { name: string },
): string | undefined {
  const v = description.typedSearchAttributes.getAll().find((p) => p.key.name === key.name)?.value;
  return typeof v === 'string' ? v : undefined;
}

/** `20 s`, `35 min`, `1.5 h`: durations as the UI's details show them. */
export function humanDuration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 6_000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}

/** The workflow status an export closed with, by the state its manifest recorded. */
function recordedStatusName(state: string): string {
  if (state === 'running') return 'RUNNING';
  return state === 'cancelled' ? 'CANCELLED' : 'COMPLETED';
}

/** Starting, reading, listing, cancelling and retrying exports: shared by the API and the CLI. */
export class ExportService {
  constructor(
    readonly client: Client,
    readonly settings: ExportServiceSettings,
  ) {}

  uiLink(workflowId: string): string {
    return `${this.settings.uiUrl}/namespaces/${encodeURIComponent(this.settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  }

  /** The Temporal UI's workflow list for a visibility query. */
  uiListLink(query: string): string {
    return `${this.settings.uiUrl}/namespaces/${encodeURIComponent(this.settings.namespace)}/workflows?query=${encodeURIComponent(query)}`;
  }

  links(exportId: string): ExportLinks {
    return {
      temporalUi: this.uiLink(exportWorkflowId(exportId)),
      temporalUiChunks: this.uiListLink(`CcfsExportId = ${quote(exportId)} AND CcfsKind = "chunk"`),
    };
  }

  /**
   * Starts an export, or finds the one with its ID. Throws `ExportRequestError`: `range_not_ended`
   * when the range ends after `now` in its zone (unless `allowPartial`, which marks the request
   * partial), `export_id_conflict` when an export with this ID (running or finished) asked for other
   * data. A retry (`input.retry`) restarts the stored request as it is.
   */
  async start(
    asked: ExportRequest,
    input: Partial<ExportWorkflowInput> = {},
    opts: { allowPartial?: boolean; now?: Date } = {},
  ): Promise<StartedExport> {
    let request: StoredExportRequest = asked;
    if (!input.retry) {
      const notEnded = rangeNotEnded(asked, opts.now);
      if (notEnded && !opts.allowPartial) throw new ExportRequestError('range_not_ended', notEnded, ['to']);
      if (notEnded) {
        const reason = `the range ends at ${asked.end} (${asked.timeZone}), after the export started: data after that instant is missing`;
        request = { ...asked, partial: { reason, requestedAt: (opts.now ?? new Date()).toISOString() } };
      }
    }
    const workflowId = exportWorkflowId(request.exportId);
    const instant = (wall: string) => new Date(wallToInstant(parseWallTime(wall), request.timeZone) * 1000);
    try {
      const handle = await this.client.workflow.start<typeof exportWorkflow>(WorkflowType.export, {
        taskQueue: this.settings.taskQueue,
        workflowId,
        args: [{ request, ...input }],
        // A finished export is retried on purpose (retry), never restarted by a repeated start.
        workflowIdReusePolicy: input.retry ? 'ALLOW_DUPLICATE' : 'REJECT_DUPLICATE',
        staticSummary: `${request.dataType} export ${request.begin} → ${request.end} (${request.timeZone}), tenant ${request.tenant}`,
        staticDetails: [
          `**Export** \`${request.exportId}\` requested by ${request.origin}`,
          '',
          `- range: ${request.begin} → ${request.end}, ${request.timeZone}`,
          `- dataType: ${request.dataType}`,
          `- filters: ${JSON.stringify(request.filters)}`,
          `- chunks: ≤ ${request.options.chunkSeconds / 3600} h each, ${request.options.maxChunksInFlight} in flight, callback timeout ${humanDuration(request.options.callbackTimeoutMs)}, ${request.options.maxRequestsPerChunk} requests per chunk`,
        ].join('\n'),
        typedSearchAttributes: [
          { key: ExportIdKey, value: request.exportId },
          { key: TenantKey, value: request.tenant },
          { key: DataTypeKey, value: request.dataType },
          { key: RangeBeginKey, value: instant(request.begin) },
          { key: RangeEndKey, value: instant(request.end) },
          { key: ExportStateKey, value: 'running' },
          { key: KindKey, value: 'export' },
        ],
      });
      return {
        exportId: request.exportId,
        workflowId,
        runId: handle.firstExecutionRunId,
        created: true,
        links: this.links(request.exportId),
      };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const description = await this.client.workflow.getHandle(workflowId).describe();
      const existing = await this.storedRequest(workflowId, description.runId);
      const differ = existing ? differingFields(existing, request) : [];
      if (existing && differ.length > 0) {
        const show = (r: ExportRequest) =>
          differ.map((f) => `${f}=${JSON.stringify(dataFields(r)[f] ?? null)}`).join(', ');
        throw new ExportRequestError(
          'export_id_conflict',
          `export ID ${request.exportId} is already used by an export (${description.status.name.toLowerCase()}) of other data: ` +
            `it has ${show(existing)}; this request has ${show(request)}. Use another export ID, or repeat the same request to follow that export`,
          differ,
        );
      }
      return {
        exportId: request.exportId,
        workflowId,
        runId: description.runId,
        created: false,
        links: this.links(request.exportId),
      };
    }
  }

  /**
   * The request a run of an export was started with, from the first event of its history (no worker
   * needed, so it works for finished exports and while no worker runs). Undefined when unreadable.
   */
  private async storedRequest(workflowId: string, runId: string): Promise<ExportRequest | undefined> {
    try {
      const { history } = await this.client.workflowService.getWorkflowExecutionHistory({
        namespace: this.client.options.namespace,
        execution: { workflowId, runId },
        maximumPageSize: 1,
      });
      const payloads = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
      const input = await decodeFromPayloadsAtIndex<Partial<ExportWorkflowInput>>(
        this.client.options.loadedDataConverter,
        0,
        payloads,
      );
      return input?.request;
    } catch {
      return undefined;
    }
  }

  async describe(exportId: string): Promise<WorkflowExecutionDescription | undefined> {
    try {
      return await this.client.workflow.getHandle(exportWorkflowId(exportId)).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * The ledger of an export, or undefined when there is no such export. Every chunk that has started
   * links to its chunk workflow's page; pending chunks have no workflow yet.
   */
  async status(exportId: string): Promise<ExportStatusView | undefined> {
    const description = await this.describe(exportId);
    if (!description) return this.recordedStatus(exportId);
    let status: ExportStatus;
    try {
      status = await this.queryStatus(exportId);
    } catch (err) {
      // Without a worker the manifest still tells the state of the chunks (as of its last write).
      const recorded = await this.recordedStatus(exportId);
      if (!recorded) throw err;
      return {
        ...recorded,
        status: description.status.name,
        startTime: description.startTime.toISOString(),
        closeTime: description.closeTime?.toISOString(),
      };
    }
    const chunks = status.chunks.map((c): ChunkStatus => {
      const workflowId = chunkWorkflowId(exportId, c.index);
      return c.state === 'pending'
        ? { ...c, workflowId }
        : { ...c, workflowId, links: { temporalUi: this.uiLink(workflowId) } };
    });
    return {
      ...status,
      partial: Boolean((status.request as StoredExportRequest).partial),
      chunks,
      status: description.status.name,
      // The current run's start: after a continue-as-new that is later than the export's first start.
      startTime: description.startTime.toISOString(),
      closeTime: description.closeTime?.toISOString(),
      links: this.links(exportId),
    };
  }

  /**
   * The export workflow's `exportStatus` query, given `STATUS_QUERY_TIMEOUT_MS` to be answered.
   * Throws `WorkerUnavailableError` naming the task queue when no worker answers in time.
   */
  private async queryStatus(exportId: string): Promise<ExportStatus> {
    const handle = this.client.workflow.getHandle(exportWorkflowId(exportId));
    try {
      return await this.client.withDeadline(Date.now() + STATUS_QUERY_TIMEOUT_MS, () =>
        handle.query(exportStatusQuery),
      );
    } catch (err) {
      if (
        err instanceof Error &&
        /deadline|query|timed? ?out|unavailable/i.test(`${err.name} ${err.message}`)
      )
        throw new WorkerUnavailableError(
          `no worker answered the status query of export ${exportId} within ${STATUS_QUERY_TIMEOUT_MS / 1000} s (${err.message}); ` +
            `check that a worker runs and polls task queue ${this.settings.taskQueue} (npm start, or npm run worker)`,
        );
      throw err;
    }
  }

  /**
   * The status of an export Temporal no longer knows (retention deleted its workflow), from its
   * manifest in the durable record: the same ledger, counts and state; `status` is the workflow
   * status the export closed with, `startTime`/`closeTime` when its last run wrote its request and
   * its final manifest. Undefined when the record has no such export either.
   */
  private async recordedStatus(exportId: string): Promise<ExportStatusView | undefined> {
    const found = await this.settings.records?.find(exportId);
    if (!found) return undefined;
    const { manifest, entry } = found;
    const chunks = manifest.chunks.map((c): ChunkStatus => {
      const workflowId = chunkWorkflowId(exportId, c.index);
      const ledger = ledgerOf(c);
      return c.state === 'pending'
        ? { ...ledger, workflowId }
        : { ...ledger, workflowId, links: { temporalUi: this.uiLink(workflowId) } };
    });
    const t = manifest.totals;
    return {
      exportId,
      workflowId: exportWorkflowId(exportId),
      state: manifest.state,
      request: manifest.request,
      counts: {
        pending: t.pending,
        running: 0,
        verified: t.verified,
        empty: t.empty,
        failed: t.failed,
        cancelled: t.cancelled,
      },
      totals: { chunks: t.chunks, bytes: t.bytes, rows: t.rows },
      chunks,
      manifestPath: found.manifestPath,
      span: manifest.span,
      partial: Boolean((manifest.request as StoredExportRequest).partial),
      status: recordedStatusName(manifest.state),
      startTime: entry?.startedAt ?? manifest.updatedAt,
      closeTime: manifest.state === 'running' ? undefined : (entry?.finishedAt ?? manifest.updatedAt),
      links: this.links(exportId),
    };
  }

  async result(exportId: string): Promise<ExportResult> {
    return this.client.workflow.getHandle<typeof exportWorkflow>(exportWorkflowId(exportId)).result();
  }

  /** The visibility query of `list`: the same text filters the Temporal UI's workflow list. */
  listQuery(filters: ListFilters = {}): string {
    const clauses = [`WorkflowType = "exportWorkflow"`];
    if (filters.tenant) clauses.push(`CcfsTenant = ${quote(filters.tenant)}`);
    if (filters.state) clauses.push(`CcfsExportState = ${quote(normalizeState(filters.state))}`);
    if (filters.dataType) clauses.push(`CcfsDataType = ${quote(filters.dataType)}`);
    if (filters.from) clauses.push(`CcfsRangeEnd > ${quote(filters.from)}`);
    if (filters.to) clauses.push(`CcfsRangeBegin < ${quote(filters.to)}`);
    return clauses.join(' AND ');
  }

  /**
   * Exports from Temporal visibility, one row per export (its newest run: a retried export is one row,
   * in the state of the retry), newest first, at most `limit` (100). `state` filters on that true
   * state (`canceled` is read as `cancelled`). Visibility is eventually consistent: an export started a
   * moment ago, or a state just changed, may show a little later.
   */
  async list(filters: ListFilters = {}): Promise<ExportSummary[]> {
    const limit = filters.limit ?? 100;
    const state = filters.state === undefined ? undefined : normalizeState(filters.state);
    const rows = new Map<string, ExportSummary>();
    // A run that continued as new is not an export of its own: the run it continued into is. (The UI
    // link keeps listQuery as is: the UI marks such runs itself.)
    const query = `${this.listQuery(filters)} AND ExecutionStatus != "ContinuedAsNew"`;
    for await (const wf of this.client.workflow.list({ query })) {
      const attr = <T>(key: { name: string }) =>
        wf.typedSearchAttributes.getAll().find((p) => p.key.name === key.name)?.value as T | undefined;
      const date = (v: unknown) => (v instanceof Date ? v.toISOString() : undefined);
      const exportId = attr<string>(ExportIdKey) ?? wf.workflowId.replace(/^ccfs-export\//, '');
      const row: ExportSummary & { runId: string } = {
        exportId,
        workflowId: wf.workflowId,
        runId: wf.runId,
        status: wf.status.name,
        state: trueState(wf.status.name, attr<string>(ExportStateKey)),
        tenant: attr<string>(TenantKey),
        dataType: attr<string>(DataTypeKey),
        rangeBegin: date(attr(RangeBeginKey)),
        rangeEnd: date(attr(RangeEndKey)),
        startTime: wf.startTime.toISOString(),
        closeTime: wf.closeTime?.toISOString(),
        links: this.links(exportId),
      };
      const seen = rows.get(wf.workflowId);
      if (seen && seen.startTime >= row.startTime) continue;
      // With a state filter an older run may match while the export has moved on (a retry runs): only
      // the newest run speaks for the export. A running run is always the newest.
      if (state !== undefined && row.status !== 'RUNNING') {
        const current = await this.describe(exportId).catch(() => undefined);
        if (current && current.runId !== row.runId) continue;
      }
      if (state !== undefined && row.state !== state) continue;
      const { runId: _runId, ...summary } = row;
      rows.set(wf.workflowId, summary);
      if (rows.size >= limit) break;
    }
    if (rows.size >= limit || !this.settings.records) return [...rows.values()];
    // Exports whose workflows retention has deleted are still in the durable record: listed after
    // what visibility knows (which is newer: it holds what ran within the retention period).
    const recorded = (
      await this.settings.records.entries({ tenant: filters.tenant, dataType: filters.dataType })
    )
      .filter(
        (e) =>
          !rows.has(exportWorkflowId(e.exportId)) &&
          (state === undefined || e.state === state) &&
          (!filters.from || e.rangeEnd > new Date(filters.from).toISOString()) &&
          (!filters.to || e.rangeBegin < new Date(filters.to).toISOString()),
      )
      .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt) || b.startedAt.localeCompare(a.startedAt));
    for (const e of recorded) {
      if (rows.size >= limit) break;
      // Visibility may lag a workflow that has just closed: the record must not list it twice.
      if (await this.describe(e.exportId).catch(() => undefined)) continue;
      rows.set(exportWorkflowId(e.exportId), this.recordedSummary(e));
    }
    return [...rows.values()];
  }

  private recordedSummary(e: IndexEntry): ExportSummary {
    return {
      exportId: e.exportId,
      workflowId: exportWorkflowId(e.exportId),
      status: recordedStatusName(e.state),
      state: e.state,
      tenant: e.tenant,
      dataType: e.dataType,
      rangeBegin: e.rangeBegin,
      rangeEnd: e.rangeEnd,
      startTime: e.startedAt,
      closeTime: e.finishedAt,
      links: this.links(e.exportId),
    };
  }

  /**
   * Requests cancellation of a running export. Undefined when there is no such export; for a finished
   * one nothing changes and `cancelRequested` is false, with the state it finished in.
   */
  async cancel(exportId: string): Promise<{ cancelRequested: boolean; state: string } | undefined> {
    const description = await this.describe(exportId);
    if (!description) return undefined;
    const state = trueState(description.status.name, searchAttribute(description, ExportStateKey));
    if (description.status.name !== 'RUNNING') return { cancelRequested: false, state };
    await this.client.workflow.getHandle(exportWorkflowId(exportId)).cancel();
    return { cancelRequested: true, state };
  }

  /**
   * Runs the failed, cancelled and never-started chunks of a finished export again; verified and empty
   * chunks are kept. `nothing-to-retry` (with the export's state) when every chunk is verified or
   * empty: then nothing starts.
   */
  async retry(
    exportId: string,
  ): Promise<
    StartedExport | { error: 'not-found' | 'running' } | { error: 'nothing-to-retry'; state: string }
  > {
    const description = await this.describe(exportId);
    if (description?.status.name === 'RUNNING') return { error: 'running' };
    // After retention deleted its workflows, the durable record still holds the export's manifest: a
    // retry starts from its request, as coverage and the Operations table tell the operator to do.
    const status = description ? await this.queryStatus(exportId) : await this.recordedStatus(exportId);
    if (!status) return { error: 'not-found' };
    const todo = status.chunks.filter((c) => c.state !== 'verified' && c.state !== 'empty').length;
    if (todo === 0 && status.chunks.length > 0) return { error: 'nothing-to-retry', state: status.state };
    return this.start(status.request, { retry: true });
  }
}
