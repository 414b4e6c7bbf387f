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
  temporalUi: string;
}

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
  /** Exports whose range overlaps [from, to] (ISO instants). */
  from?: string;
  to?: string;
  limit?: number;
}

const quote = (v: string) => `"${v.replace(/["\\]/g, '')}"`;

/** Starting, reading, listing, cancelling and retrying exports: shared by the API and the CLI. */
export class ExportService {
  constructor(
    readonly client: Client,
    readonly settings: ExportServiceSettings,
  ) {}

  uiLink(workflowId: string): string {
    return `${this.settings.uiUrl}/namespaces/${encodeURIComponent(this.settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
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
          `- chunk: ≤ ${request.options.chunkSeconds / 3600} h, ${request.options.maxChunksInFlight} in flight, callback timeout ${request.options.callbackTimeoutMs / 60000} min, ${request.options.maxRequestsPerChunk} requests per chunk`,
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
      return { exportId: request.exportId, workflowId, runId: handle.firstExecutionRunId, created: true, links: { temporalUi: this.uiLink(workflowId) } };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const description = await this.client.workflow.getHandle(workflowId).describe();
      return { exportId: request.exportId, workflowId, runId: description.runId, created: false, links: { temporalUi: this.uiLink(workflowId) } };
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

  /** The ledger of an export, or undefined when there is no such export. */
  async status(exportId: string): Promise<(ExportStatus & { status: string; links: ExportLinks }) | undefined> {
    const description = await this.describe(exportId);
    if (!description) return undefined;
    const status = await this.client.workflow.getHandle(exportWorkflowId(exportId)).query(exportStatusQuery);
    return { ...status, status: description.status.name, links: { temporalUi: this.uiLink(description.workflowId) } };
  }

  async result(exportId: string): Promise<ExportResult> {
    return this.client.workflow.getHandle<typeof exportWorkflow>(exportWorkflowId(exportId)).result();
  }

  async list(filters: ListFilters = {}): Promise<ExportSummary[]> {
    const clauses = [`WorkflowType = 'exportWorkflow'`];
    if (filters.tenant) clauses.push(`CcfsTenant = ${quote(filters.tenant)}`);
    if (filters.state) clauses.push(`CcfsExportState = ${quote(filters.state)}`);
    if (filters.dataType) clauses.push(`CcfsDataType = ${quote(filters.dataType)}`);
    if (filters.from) clauses.push(`CcfsRangeEnd >= ${quote(filters.from)}`);
    if (filters.to) clauses.push(`CcfsRangeBegin <= ${quote(filters.to)}`);
    const out: ExportSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: clauses.join(' AND ') })) {
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
        links: { temporalUi: this.uiLink(wf.workflowId) },
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
