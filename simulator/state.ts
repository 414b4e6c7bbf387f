import type { Faults } from './options';

/** What the simulator saw and did, for tests to assert on. Plain JSON; no secrets. */

export type FaultName = keyof Faults;

export interface QueryRecord {
  at: string;
  ak: string | undefined;
  ip: string;
  /** The msgBody as received (it holds no secret). */
  msgBody: unknown;
  /** `0`, a result code, or `http401` / `http403` / `http500`. */
  outcome: string;
  resultDesc: string;
  responseId?: string;
  billFileName?: string;
  /** Rows the file will hold, by kind (success only). */
  rows?: { call: number; record: number };
}

export interface CallbackAttempt {
  at: string;
  /** HTTP status, or null when no answer came (connection error, timeout). */
  status: number | null;
  bodyBytes?: number;
  error?: string;
  ok: boolean;
}

export interface CallbackRecord {
  responseId: string;
  billFileName: string;
  url: string;
  /** 1 for the delivery, 2 for the copy sent by the duplicateCallback fault. */
  copy: number;
  attempts: number;
  statuses: Array<number | null>;
  attemptLog: CallbackAttempt[];
  /** An attempt got HTTP 200 with a non-empty body. */
  delivered: boolean;
  /** No further attempt will be made. */
  done: boolean;
}

export interface DownloadRecord {
  at: string;
  ak: string | undefined;
  billFileName: string | undefined;
  /** `0` when a ZIP was sent, else the result code or `http401` / `http403` / `http500`. */
  outcome: string;
  /** sha256 (hex) and size of the complete ZIP, even when less was sent. */
  sha256?: string;
  bytes?: number;
  bytesSent?: number;
  complete?: boolean;
  /** Rows per entry name (header rows not counted; filler rows counted). */
  rows?: Record<string, number>;
}

export interface FaultRecord {
  at: string;
  fault: FaultName;
  responseId?: string;
  billFileName?: string;
  detail?: string;
}

export interface FileRecord {
  responseId: string;
  billFileName: string;
  ak: string;
  requestedAt: string;
  generatedAt?: string;
  expired: boolean;
  entries?: string[];
  downloads: number;
  /** The file stands for a range without data, answering in this form (options.emptyRange). */
  emptyForm?: string;
}

export interface SimulatorState {
  queries: QueryRecord[];
  callbacks: CallbackRecord[];
  downloads: DownloadRecord[];
  faults: FaultRecord[];
  files: FileRecord[];
  auth: { failures: number; lockedIps: string[] };
}

export function emptyState(): SimulatorState {
  return {
    queries: [],
    callbacks: [],
    downloads: [],
    faults: [],
    files: [],
    auth: { failures: 0, lockedIps: [] },
  };
}
