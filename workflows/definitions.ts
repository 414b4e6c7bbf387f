import type { SearchAttributePair } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { dayInstants } from '../domain/daily';
import type * as workflows from './index';
import {
  DataTypeKey,
  DayKey,
  ExportStateKey,
  KindKey,
  RangeBeginKey,
  RangeEndKey,
  TenantKey,
} from './search-attributes';

/**
 * Everything the API, the CLI and the worker share with the workflows: the plain types of inputs and
 * outputs, and the signal and query definitions. No secrets ever appear in these types: AK/SK live
 * only in the worker's and the API's configuration.
 */

export type DataType = 'call' | 'record' | 'call_record';

/** Optional queryBillData filters (docs/ccfs-protocol.md §3). */
export interface ExportFilters {
  accountId?: string;
  agentId?: string;
  callId?: string;
  callerNo?: string;
  calleeNo?: string;
  calleeNo2?: string;
}

export interface RetryOptions {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  /** Attempts of one CC-FS call (flow control, 5xx, network) before the chunk gives up. */
  maximumAttempts: number;
}

export interface ExportOptions {
  /** Largest chunk in seconds, at most three days. */
  chunkSeconds: number;
  /** Chunks requested, awaited or downloaded at the same time by this export. */
  maxChunksInFlight: number;
  /** How long a chunk waits for CC-FS's callback before it requests the chunk again. */
  callbackTimeoutMs: number;
  /** queryBillData requests per chunk (first request plus re-requests). */
  maxRequestsPerChunk: number;
  retry: RetryOptions;
  /** Continue-as-new once the export's history has this many events. */
  maxHistoryEvents: number;
  /**
   * How long a CC-FS call (query or download) may go without a heartbeat before Temporal gives it to
   * another worker: the time to notice a crashed worker, and the longest delay of a cancellation.
   * Optional so requests written before it existed stay valid; `DEFAULT_HEARTBEAT_TIMEOUT_MS` then.
   */
  heartbeatTimeoutMs?: number;
  /**
   * How often a chunk tries to download its file under the documented name while it waits
   * (docs/ccfs-protocol.md §4: `yyyyMMdd_<responseId without hyphens>.zip`), so a lost callback costs
   * one interval, not a callback timeout. Optional so requests written before it existed stay valid;
   * `DEFAULT_PROBE_INTERVAL_MS` (or `DEFAULT_PROBE_ONLY_INTERVAL_MS` with `CALLBACK_MODE=none`) then.
   */
  probeIntervalMs?: number;
}

/**
 * With callbacks: a callback normally arrives seconds after the file is generated, so probes are the
 * fallback for a lost one. Every 2 min costs a chunk ≤ 4 small downloadBillFile answers (0300011)
 * per responseId per interval, a few per minute for a whole export, well under CC-FS flow control,
 * and delays an export whose callbacks are all lost by at most ~2 min per chunk.
 */
export const DEFAULT_PROBE_INTERVAL_MS = 2 * 60_000;
/** With `CALLBACK_MODE=none` probing is the only path, so it runs more often; the worker's rate governor still bounds it. */
export const DEFAULT_PROBE_ONLY_INTERVAL_MS = 30_000;

/** Activities heartbeat every few seconds whatever the progress, so this only has to outlast a pause of the worker. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 20_000;

export const DEFAULT_EXPORT_OPTIONS: ExportOptions = {
  chunkSeconds: 3 * 24 * 3600,
  maxChunksInFlight: 4,
  // CC-FS retries its own callback every 10 minutes; 35 minutes allows three of those tries before
  // a fresh request costs another generation run upstream.
  callbackTimeoutMs: 35 * 60_000,
  maxRequestsPerChunk: 4,
  retry: { initialIntervalMs: 5_000, maximumIntervalMs: 5 * 60_000, maximumAttempts: 12 },
  maxHistoryEvents: 8_000,
  heartbeatTimeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS,
};

export interface ExportRequest {
  /** Business ID; the export workflow's ID is `exportWorkflowId(exportId)`. */
  exportId: string;
  /** Tenant label for filtering (the accountId when given, otherwise `default`). */
  tenant: string;
  /** `yyyy-MM-dd HH:mm:ss` wall time in `timeZone`. */
  begin: string;
  end: string;
  timeZone: string;
  dataType: DataType;
  filters: ExportFilters;
  options: ExportOptions;
  /** Who asked: `api`, `cli`, `schedule:<id>`. For people, not for logic. */
  origin: string;
}

export type ChunkState = 'pending' | 'running' | 'verified' | 'empty' | 'failed' | 'cancelled';
export type ExportState = 'running' | 'completed' | 'completed_with_failures' | 'cancelled';

export interface ChunkRange {
  index: number;
  begin: string;
  end: string;
}

/** One entry of the export's ledger, small enough to carry across continue-as-new. */
export interface LedgerEntry extends ChunkRange {
  state: ChunkState;
  requests?: number;
  bytes?: number;
  rows?: number;
  error?: string;
  /** The failure's type (`CcfsAuthRejected`, `CcfsUnavailable`, `CallbackTimeout`, …) when the chunk failed. */
  errorType?: string;
  /** A verified chunk's ZIP lacked a requested kind or held entries of unknown names (ChunkResult.warnings). */
  warnings?: string[];
  /**
   * On a `retry` run: the requests an earlier run of this failed chunk made (`prepareExport`'s
   * `previousRequests`), passed to the chunk so it tries their files before requesting again.
   */
  previousRequests?: ChunkRequest[];
  /** ISO time (workflow clock) the export started this chunk's workflow: how long a running chunk has taken. */
  startedAt?: string;
  /** What a running chunk last reported (`chunkProgressSignal`), when it reports. */
  progress?: ChunkProgressReport;
}

/**
 * The chunk span an export uses: the planned one (`options.chunkSeconds`), and a shorter one learned
 * when CC-FS refused a range as too long (docs/ccfs-protocol.md §3 "at most three days", read
 * strictly by some installations). Wall-clock seconds.
 */
export interface ExportSpan {
  plannedSeconds: number;
  usedSeconds: number;
  /** Ranges CC-FS refused as too long, oldest first (at most the last 20 kept). */
  refused: Array<{ index: number; begin: string; end: string; seconds: number }>;
}

/** One running chunk the export is waiting for, and what that chunk itself is waiting for. */
export interface WaitingChunk extends ChunkRange {
  startedAt?: string;
  progress?: ChunkProgressReport;
}

/** A running chunk's phase, sent to its export so the export can say what it waits for. */
export interface ChunkProgressReport {
  index: number;
  phase: ChunkPhase;
  /** ISO time the phase began. */
  since: string;
  requests: number;
  maxRequests: number;
  responseId?: string;
}

export interface ExportWorkflowInput {
  request: ExportRequest;
  /** Set by continue-as-new: the ledger so far. */
  ledger?: LedgerEntry[];
  /**
   * Set by continue-as-new of a run whose chunks outlive it (parent-close policy ABANDON): `running`
   * entries of `ledger` are chunk workflows still running, which report by `chunkFinishedSignal`.
   */
  chunksOutliveRuns?: boolean;
  /** Set by continue-as-new: the span in use (a shorter one when CC-FS refused the planned span). */
  span?: ExportSpan;
  /** Set by continue-as-new: the next unused chunk index (chunk workflow IDs are never reused in an export). */
  nextIndex?: number;
  /** Run only the chunks that are not verified or empty on disk (retry of a finished export). */
  retry?: boolean;
}

export interface ExportStatus {
  exportId: string;
  workflowId: string;
  state: ExportState;
  request: ExportRequest;
  counts: Record<ChunkState, number>;
  totals: { chunks: number; bytes: number; rows: number };
  chunks: LedgerEntry[];
  manifestPath?: string;
  /** The span in use; absent in runs of the previous release. */
  span?: ExportSpan;
  /** Running chunks the export waits for (oldest first, at most 5) when it can start no other chunk now. */
  waitingFor?: WaitingChunk[];
}

export interface ExportResult {
  exportId: string;
  state: ExportState;
  counts: Record<ChunkState, number>;
  totals: { chunks: number; bytes: number; rows: number };
  manifestPath: string;
  failedChunks: Array<{
    index: number;
    begin: string;
    end: string;
    state: 'failed' | 'cancelled';
    error?: string;
    errorType?: string;
  }>;
}

export interface ChunkWorkflowInput {
  exportId: string;
  chunk: ChunkRange;
  timeZone: string;
  dataType: DataType;
  filters: ExportFilters;
  options: ExportOptions;
  /**
   * Requests an earlier run of this chunk made (from its record on disk, on `retry`): their files
   * are tried under the documented names before the chunk requests again.
   */
  previousRequests?: ChunkRequest[];
}

/** One accepted queryBillData of a chunk: the responseId and when it was requested (ISO, workflow clock). */
export interface ChunkRequest {
  responseId: string;
  requestedAt: string;
}

export interface ZipEntrySummary {
  name: string;
  kind: 'call' | 'record' | 'other';
  rows: number;
  uncompressedBytes: number;
  /** Content oddities with 1-based line numbers (e.g. a quote that never closes: rows counted by line). */
  warnings?: string[];
}

export interface ChunkResult extends ChunkRange {
  state: 'verified' | 'empty' | 'failed' | 'cancelled';
  responseIds: string[];
  requests: number;
  billFileName?: string;
  /** File name inside the export's directory. */
  file?: string;
  bytes?: number;
  sha256?: string;
  entries?: ZipEntrySummary[];
  rows?: number;
  downloadAttempts?: number;
  error?: string;
  errorType?: string;
  /** Every accepted request of the chunk (this run's and earlier runs'), so a retry can try their files first. */
  requestLog?: ChunkRequest[];
  /** How the file was found: by CC-FS's callback, or by trying its documented name (`probe`). */
  foundBy?: 'callback' | 'probe';
  /** A verified ZIP that lacks a requested kind or holds entries of unknown names; also per entry in `entries`. */
  warnings?: string[];
  /** On a record of a range CC-FS refused as too long (written by the export): the span used after it, wall seconds. */
  spanSeconds?: number;
  /** The chunk's load into PostgreSQL, when the worker has a loader (LOAD_DATABASE_URL; issue 17). */
  load?: ChunkLoad;
}

/**
 * Reconciliation of one chunk's load (lib/loader): rows in the files = rows inserted + rows already
 * present (an earlier chunk's boundary second, a re-export, a second load), and the share of
 * recording-index rows whose call has a CDR (null when the chunk has none).
 */
export interface ChunkLoad {
  loadedAt: string;
  rowsInFiles: number;
  rowsInserted: number;
  rowsAlreadyPresent: number;
  recordRows: number;
  recordsWithCdr: number;
  recordCdrShare: number | null;
  ok: boolean;
  mismatches?: string[];
  /** Per day of the rows' call_begin in the tenant's zone (`yyyy-MM-dd`, or `unknown`): the same counts. */
  days?: Record<string, { rowsInFiles: number; rowsInserted: number; rowsAlreadyPresent: number }>;
  /** Why the load failed (the file stays verified; `ccfs-export load` can load it again). */
  error?: string;
  errorType?: string;
}

export type ChunkPhase = 'requesting' | 'waiting-for-callback' | 'probing' | 'downloading' | 'done';

export interface ChunkProgress {
  phase: ChunkPhase;
  requests: number;
  responseIds: string[];
  since: string;
  callbacksReceived: number;
  callbacksRejected: number;
  /** Tries of the documented file names (each a downloadBillFile per name until one is found). */
  probes?: number;
}

/** What the callback endpoint sends to a chunk when CC-FS calls back. */
export interface CallbackPayload {
  responseId: string;
  billFileName: string;
  accountId?: string;
  receivedAt: string;
}

export const callbackSignal = defineSignal<[CallbackPayload]>('ccfsCallback');
export const exportStatusQuery = defineQuery<ExportStatus>('exportStatus');
export const chunkProgressQuery = defineQuery<ChunkProgress>('chunkProgress');
/**
 * A chunk's final result, sent by the chunk workflow to its export by workflow ID: chunks outlive the
 * export run that started them (continue-as-new does not wait for them), so the result reaches
 * whichever run of the export is current.
 */
export const chunkFinishedSignal = defineSignal<[ChunkResult]>('chunkFinished');
/** Optional: a chunk's phase changes, so the export's details and the CLI can say what it waits for. */
export const chunkProgressSignal = defineSignal<[ChunkProgressReport]>('chunkProgress');

export const EXPORT_WORKFLOW_PREFIX = 'ccfs-export';

export function exportWorkflowId(exportId: string): string {
  return `${EXPORT_WORKFLOW_PREFIX}/${exportId}`;
}

export function chunkWorkflowId(exportId: string, index: number): string {
  return `${exportWorkflowId(exportId)}/chunk-${String(index).padStart(4, '0')}`;
}

/** The workflow that loads an existing export into PostgreSQL (`ccfs-export load`, issue 17). */
export function loadExportWorkflowId(exportId: string): string {
  return `${exportWorkflowId(exportId)}/load`;
}

export interface LoadExportWorkflowInput {
  exportId: string;
}

/** One verified chunk of a `loadExportWorkflow`: its load, or why it could not be loaded. */
export interface ExportChunkLoad {
  index: number;
  file: string;
  load?: ChunkLoad;
  error?: string;
}

export interface LoadExportWorkflowResult {
  exportId: string;
  chunks: ExportChunkLoad[];
  totals: {
    chunks: number;
    loaded: number;
    rowsInFiles: number;
    rowsInserted: number;
    rowsAlreadyPresent: number;
  };
  /** Every verified chunk loaded and reconciled. */
  ok: boolean;
}

/** Export IDs become workflow IDs and directory names, so they are kept to a safe alphabet. */
export const EXPORT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The task queue of activities that call CC-FS, rate-limited as a whole by the worker. */
export function ccfsTaskQueue(taskQueue: string): string {
  return `${taskQueue}-ccfs`;
}

/** ApplicationFailure types the workflows branch on, and the error types they give chunks themselves. */
export const FailureType = {
  fileNotFound: 'CcfsFileNotFound',
  /** No usable callback after `maxRequestsPerChunk` requests. */
  callbackTimeout: 'CallbackTimeout',
  /** An activity timed out on its last attempt (e.g. every worker that took it died). */
  activityTimeout: 'ActivityTimeout',
  /** The export stopped starting chunks after a failure that every chunk would hit (see `HALTING_FAILURE_TYPES`). */
  notAttempted: 'NotAttempted',
  cancelled: 'Cancelled',
  /** CC-FS refused the chunk's range as too long; the export splits it (the chunk saves no record). */
  spanRefused: 'CcfsSpanRefused',
} as const;

/**
 * Failures that say nothing about one chunk and everything about the configuration (credentials, a
 * locked IP, an untrusted certificate). After one of them the export starts no further chunk: each
 * would fail the same way, and repeated signature failures make CC-FS lock the IP (403).
 * Kept as strings here: workflow code may not import `ccfs/errors.ts`, which names the same types.
 */
export const HALTING_FAILURE_TYPES: readonly string[] = ['CcfsAuthRejected', 'CcfsIpLocked', 'CcfsTlsError'];

/**
 * Workflow types by role, for clients, schedules, child starts and visibility queries. Clients must
 * not import workflow files' values (lint: no-restricted-imports outside workflows/; a value import
 * would load workflow code and its deterministic-only dependencies into the API and CLI), so the names
 * live here, checked by `satisfies` against the names `workflows/index.ts` exports: renaming or
 * removing a workflow fails the build here instead of starting a type the worker does not know.
 * Starters pair a name with the function's type, `client.workflow.start<typeof dayExportWorkflow>(
 * WorkflowType.day, …)` with `import type`, so arguments and results are checked too. These names are
 * in every recorded history and schedule action: changing one is a breaking change, not a refactor.
 */
export const WorkflowType = {
  export: 'exportWorkflow',
  chunk: 'chunkWorkflow',
  daily: 'dailyExportWorkflow',
  day: 'dayExportWorkflow',
  loadExport: 'loadExportWorkflow',
} as const satisfies Record<string, keyof typeof workflows>;

// Daily exports (workflows/daily-export-workflow.ts; the calendar itself is domain/daily.ts).

export const DAILY_RUN_WORKFLOW_PREFIX = 'ccfs-daily';
export const DAY_WORKFLOW_PREFIX = 'ccfs-day';

/** What a schedule's action carries: everything a day's export needs except the day. */
export interface DailyExportInput {
  /** The schedule that owns this action; for people and coverage, not for logic. */
  scheduleId?: string;
  tenant: string;
  dataType: DataType;
  filters: ExportFilters;
  timeZone: string;
  options: ExportOptions;
}

export interface DayExportInput extends DailyExportInput {
  /** `yyyy-MM-dd`, a local day in `timeZone`. */
  day: string;
  /** Re-export a day that is already verified, into a fresh export directory. */
  force?: boolean;
  /** Who asked: `schedule:<id>`, `cli`, `api`. */
  origin: string;
}

/** A day that ended well: verified (files downloaded and checked) or empty (CC-FS has no data). */
export interface DayExportResult {
  day: string;
  begin: string;
  end: string;
  timeZone: string;
  state: 'verified' | 'empty';
  exportId: string;
  exportWorkflowId: string;
  manifestPath: string;
  totals: ExportResult['totals'];
}

export type DailyExportResult =
  | { outcome: 'exported'; day: string; dayWorkflowId: string; result: DayExportResult }
  | { outcome: 'skipped'; day: string; dayWorkflowId: string; reason: string };

/** The failure type of a day whose export did not verify every chunk. */
export const DAY_INCOMPLETE = 'DayIncomplete';

/** Keyword state of a day workflow in `CcfsExportState`: its own vocabulary, distinct from an export's. */
export type DayState = 'running' | 'verified' | 'empty' | 'failed';

/** Memo of a day workflow: what coverage shows without reading histories. */
export interface DayMemo {
  timeZone: string;
  scheduleId?: string;
  exportId?: string;
  error?: string;
}

/** Export ID (and directory name) of a day; a forced re-export gets a suffix so verified files are never overwritten. */
export function dailyExportId(tenant: string, dataType: DataType, day: string, forceStamp?: string): string {
  return `daily-${tenant}-${dataType}-${day}${forceStamp ? `-f${forceStamp}` : ''}`;
}

/** The per-day lock: one ID per tenant, data type and local day. */
export function dayWorkflowId(tenant: string, dataType: DataType, day: string): string {
  return `${DAY_WORKFLOW_PREFIX}/${tenant}/${dataType}/${day}`;
}

/**
 * Search attributes of a day workflow at its start (the starter sets them: the schedule's run or the
 * client): tenant, data type, day, the day's range as instants in `timeZone`, state `running`, kind
 * `day`. Throws as `dayInstants` (domain/daily.ts) for a bad day or zone.
 */
export function daySearchAttributes(
  input: Pick<DayExportInput, 'tenant' | 'dataType' | 'timeZone' | 'day'>,
): SearchAttributePair[] {
  const range = dayInstants(input.day, input.timeZone);
  return [
    { key: TenantKey, value: input.tenant },
    { key: DataTypeKey, value: input.dataType },
    { key: DayKey, value: input.day },
    { key: RangeBeginKey, value: range.begin },
    { key: RangeEndKey, value: range.end },
    { key: ExportStateKey, value: 'running' satisfies DayState },
    { key: KindKey, value: 'day' },
  ];
}
