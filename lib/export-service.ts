import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
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
} from '../workflows/definitions';
import type { exportWorkflow } from '../workflows';
import { DataTypeKey, ExportIdKey, ExportStateKey, KindKey, RangeBeginKey, RangeEndKey, TenantKey } from '../workflows/search-attributes';

export interface ExportServiceSettings {
  taskQueue: string;
  namespace: string;
  /** Base URL of the Temporal UI, for links. */
  uiUrl: string;
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

export type ExportStatusView = Omit<ExportStatus, 'chunks'> & {
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

/** `20 s`, `35 min`, `1.5 h`: durations as the UI's details show them. */
export function humanDuration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 6_000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
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

  async start(request: ExportRequest, input: Partial<ExportWorkflowInput> = {}): Promise<StartedExport> {
    const workflowId = exportWorkflowId(request.exportId);
    const instant = (wall: string) => new Date(wallToInstant(parseWallTime(wall), request.timeZone) * 1000);
    try {
      const handle = await this.client.workflow.start<typeof exportWorkflow>('exportWorkflow', {
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
      return { exportId: request.exportId, workflowId, runId: handle.firstExecutionRunId, created: true, links: this.links(request.exportId) };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const description = await this.client.workflow.getHandle(workflowId).describe();
      return { exportId: request.exportId, workflowId, runId: description.runId, created: false, links: this.links(request.exportId) };
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
    if (!description) return undefined;
    const status = await this.client.workflow.getHandle(exportWorkflowId(exportId)).query(exportStatusQuery);
    const chunks = status.chunks.map((c): ChunkStatus => {
      const workflowId = chunkWorkflowId(exportId, c.index);
      return c.state === 'pending' ? { ...c, workflowId } : { ...c, workflowId, links: { temporalUi: this.uiLink(workflowId) } };
    });
    return {
      ...status,
      chunks,
      status: description.status.name,
      // The current run's start: after a continue-as-new that is later than the export's first start.
      startTime: description.startTime.toISOString(),
      closeTime: description.closeTime?.toISOString(),
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
    if (filters.state) clauses.push(`CcfsExportState = ${quote(filters.state)}`);
    if (filters.dataType) clauses.push(`CcfsDataType = ${quote(filters.dataType)}`);
    if (filters.from) clauses.push(`CcfsRangeEnd > ${quote(filters.from)}`);
    if (filters.to) clauses.push(`CcfsRangeBegin < ${quote(filters.to)}`);
    return clauses.join(' AND ');
  }

  /**
   * Exports from Temporal visibility, newest first. Visibility is eventually consistent: an export
   * started a moment ago, or a state just changed, may show a little later.
   */
  async list(filters: ListFilters = {}): Promise<ExportSummary[]> {
    const out: ExportSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: this.listQuery(filters) })) {
      const attr = <T>(key: { name: string }) => wf.typedSearchAttributes.getAll().find((p) => p.key.name === key.name)?.value as T | undefined;
      const date = (v: unknown) => (v instanceof Date ? v.toISOString() : undefined);
      out.push({
        exportId: attr<string>(ExportIdKey) ?? wf.workflowId.replace(/^ccfs-export\//, ''),
        workflowId: wf.workflowId,
        status: wf.status.name,
        state: attr<string>(ExportStateKey),
        tenant: attr<string>(TenantKey),
        dataType: attr<string>(DataTypeKey),
        rangeBegin: date(attr(RangeBeginKey)),
        rangeEnd: date(attr(RangeEndKey)),
        startTime: wf.startTime.toISOString(),
        closeTime: wf.closeTime?.toISOString(),
        links: this.links(attr<string>(ExportIdKey) ?? wf.workflowId.replace(/^ccfs-export\//, '')),
      });
      if (out.length >= (filters.limit ?? 100)) break;
    }
    return out;
  }

  async cancel(exportId: string): Promise<boolean> {
    const description = await this.describe(exportId);
    if (!description) return false;
    if (description.status.name === 'RUNNING') await this.client.workflow.getHandle(exportWorkflowId(exportId)).cancel();
    return true;
  }

  /** Runs the failed and cancelled chunks of a finished export again; verified chunks are kept. */
  async retry(exportId: string): Promise<StartedExport | { error: 'not-found' | 'running' }> {
    const description = await this.describe(exportId);
    if (!description) return { error: 'not-found' };
    if (description.status.name === 'RUNNING') return { error: 'running' };
    const status = await this.client.workflow.getHandle(exportWorkflowId(exportId)).query(exportStatusQuery);
    return this.start(status.request, { retry: true });
  }
}
