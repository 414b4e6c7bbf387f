import { Agent, request } from 'undici';
import type { Logger } from '../lib/logger';
import { type Credentials, sign } from '../ccfs/signer';
import type { FaultInjector } from './faults';
import type { ResolvedOptions } from './options';
import type { CallbackRecord } from './state';

/**
 * Sends the "file is ready" callbacks the way CC-FS does (protocol §1): signed, retried every
 * `callbackRetryIntervalMs` until an answer is HTTP 200 with a body, at most `callbackMaxAttempts`
 * times — with the callback faults applied on top.
 */

export interface CallbackJob {
  responseId: string;
  billFileName: string;
  url: string;
  credentials: Credentials;
  /** The exact JSON sent (and signed). */
  body: string;
}

export interface CallbackDeps {
  options: () => ResolvedOptions;
  faults: FaultInjector;
  records: () => CallbackRecord[];
  logger: Logger;
}

export class CallbackDispatcher {
  private readonly timers = new Set<NodeJS.Timeout>();
  private abort = new AbortController();
  private agent: Agent;
  private held: Array<{ job: CallbackJob; duplicate: boolean }> = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Bumped by reset/close: work scheduled in an earlier epoch never runs. */
  private epoch = 0;

  constructor(private readonly deps: CallbackDeps) {
    this.agent = this.newAgent();
  }

  private newAgent(): Agent {
    const ca = this.deps.options().callbackCa;
    return new Agent(ca ? { connect: { ca } } : {});
  }

  /** Hands a callback over for delivery, applying drop / late / duplicate / reorder. */
  dispatch(given: CallbackJob): void {
    const job = this.shaped(given);
    const target = { responseId: job.responseId, billFileName: job.billFileName };
    const { faults } = this.deps;
    if (faults.fires('dropCallback', target)) {
      this.deps.logger.info({ responseId: job.responseId }, 'callback dropped (fault)');
      return;
    }
    const lateMs = faults.fires('lateCallback', target) ? this.deps.options().faults.lateCallbackMs : 0;
    const duplicate = faults.fires('duplicateCallback', target) !== undefined;
    const reorder = faults.fires('reorderCallbacks', target) !== undefined;
    const start = (): void => {
      if (reorder) this.hold(job, duplicate);
      else void this.deliver(job, duplicate);
    };
    if (lateMs > 0) this.later(lateMs, start);
    else start();
  }

  /**
   * The body in the shape the options ask for (the readings of the seed a real CC-FS may follow):
   * `accountId: ""` when the query named none, responseId hyphenated upper-case, `billName` for
   * `billFileName`. Serialised once here: the same bytes are signed and sent on every attempt.
   */
  private shaped(job: CallbackJob): CallbackJob {
    const options = this.deps.options();
    const { callbackEmptyAccountId, callbackResponseId, callbackFileField } = options;
    if (!callbackEmptyAccountId && callbackResponseId === 'as-issued' && callbackFileField === 'billFileName')
      return job;
    const parsed = JSON.parse(job.body) as { request?: unknown; msgBody: Record<string, string> };
    const { responseId, billFileName, accountId } = parsed.msgBody;
    const id =
      callbackResponseId === 'upper-hyphenated' ? upperHyphenated(responseId ?? job.responseId) : responseId;
    const msgBody: Record<string, string | undefined> = {
      responseId: id,
      [callbackFileField]: billFileName,
      accountId: accountId ?? (callbackEmptyAccountId ? '' : undefined),
    };
    return { ...job, body: JSON.stringify({ request: parsed.request, msgBody }) };
  }

  private hold(job: CallbackJob, duplicate: boolean): void {
    this.held.push({ job, duplicate });
    const { reorderWindow, reorderMaxHoldMs } = this.deps.options().faults;
    if (this.held.length >= reorderWindow) {
      this.release();
    } else if (this.holdTimer === undefined) {
      this.holdTimer = this.later(reorderMaxHoldMs, () => this.release());
    }
  }

  /** Releases the held callbacks one after another in a shuffled order that differs from arrival order. */
  private release(): void {
    if (this.holdTimer !== undefined) {
      clearTimeout(this.holdTimer);
      this.timers.delete(this.holdTimer);
      this.holdTimer = undefined;
    }
    const jobs = this.held;
    this.held = [];
    const order = shuffled(jobs, this.deps.faults.rng('reorderCallbacks'));
    const epoch = this.epoch;
    void (async () => {
      for (const { job, duplicate } of order) {
        if (this.closed || epoch !== this.epoch) return;
        await this.deliver(job, duplicate);
      }
    })();
  }

  /** Resolves after the first attempt, so released callbacks arrive in the chosen order. */
  private async deliver(job: CallbackJob, duplicate: boolean, copy = 1): Promise<void> {
    const record: CallbackRecord = {
      responseId: job.responseId,
      billFileName: job.billFileName,
      url: job.url,
      copy,
      attempts: 0,
      statuses: [],
      attemptLog: [],
      delivered: false,
      done: false,
    };
    this.deps.records().push(record);
    const epoch = this.epoch;
    const finished = (): void => {
      record.done = true;
      if (duplicate && copy === 1) void this.deliver(job, false, 2);
    };
    const attempt = async (): Promise<void> => {
      if (this.closed || epoch !== this.epoch) return;
      const ok = await this.attempt(job, record);
      if (this.closed || epoch !== this.epoch) return;
      const { callbackMaxAttempts, callbackRetryIntervalMs } = this.deps.options();
      if (ok || record.attempts >= callbackMaxAttempts) {
        if (!ok)
          this.deps.logger.warn(
            { responseId: job.responseId, attempts: record.attempts },
            'callback gave up',
          );
        finished();
      } else {
        this.later(callbackRetryIntervalMs, () => void attempt());
      }
    };
    await attempt();
  }

  private async attempt(job: CallbackJob, record: CallbackRecord): Promise<boolean> {
    const options = this.deps.options();
    const url = new URL(job.url);
    const body = Buffer.from(job.body, 'utf8');
    const headers: Record<string, string> = {
      host: callbackHost(url, options.callbackHost),
      'content-type': 'application/json;charset=UTF-8',
      'content-length': String(body.length),
    };
    if (options.signCallbacks) {
      headers.authorization = sign({
        credentials: job.credentials,
        method: 'POST',
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
        timestamp: options.clock(),
      });
    }
    const at = options.clock().toISOString();
    record.attempts++;
    try {
      const res = await request(url, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        signal: this.abort.signal,
        headersTimeout: options.callbackTimeoutMs,
        bodyTimeout: options.callbackTimeoutMs,
      });
      const text = await res.body.text();
      const ok = res.statusCode === 200 && text.trim().length > 0;
      record.statuses.push(res.statusCode);
      record.attemptLog.push({ at, status: res.statusCode, bodyBytes: Buffer.byteLength(text), ok });
      if (ok) record.delivered = true;
      this.deps.logger.debug(
        { responseId: job.responseId, status: res.statusCode, attempt: record.attempts },
        'callback attempt',
      );
      return ok;
    } catch (err) {
      const message =
        err instanceof Error
          ? `${err.name}: ${(err as NodeJS.ErrnoException).code ?? err.message}`
          : String(err);
      record.statuses.push(null);
      record.attemptLog.push({ at, status: null, error: message, ok: false });
      this.deps.logger.debug(
        { responseId: job.responseId, error: message, attempt: record.attempts },
        'callback attempt failed',
      );
      return false;
    }
  }

  private later(ms: number, fn: () => void): NodeJS.Timeout {
    const epoch = this.epoch;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed && epoch === this.epoch) fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  /** Forgets held and scheduled callbacks and aborts those in flight. */
  async reset(): Promise<void> {
    await this.stop();
    this.closed = false;
    this.abort = new AbortController();
    this.agent = this.newAgent();
  }

  async close(): Promise<void> {
    await this.stop();
  }

  private async stop(): Promise<void> {
    this.closed = true;
    this.epoch++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.holdTimer = undefined;
    this.held = [];
    this.abort.abort();
    await this.agent.destroy().catch(() => undefined);
  }
}

/** `9239cb50a838…` or `9239cb50-a838-…` → `9239CB50-A838-4BB0-AB50-3441BF089446`. */
function upperHyphenated(responseId: string): string {
  const hex = responseId.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return responseId.toUpperCase();
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)]
    .join('-')
    .toUpperCase();
}

/** The Host a callback carries and signs (option `callbackHost`); the connection still goes to the URL's port. */
function callbackHost(url: URL, form: 'url' | 'no-port' | 'default-port'): string {
  if (form === 'no-port') return url.hostname;
  if (form === 'default-port')
    return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  return url.host;
}

function shuffled<T>(items: T[], rng: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  // A shuffle that happens to keep the order would make the fault invisible; rotate instead.
  if (out.length > 1 && out.every((x, i) => x === items[i])) out.push(out.shift() as T);
  return out;
}
