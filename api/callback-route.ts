import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Request, type Response, type Router } from 'express';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Counter } from 'prom-client';
import {
  CALLBACK_SUCCESS,
  CallbackBody,
  billFileMatchesResponse,
  normalizeResponseId,
} from '../ccfs/protocol';
import { verifyAs } from '../ccfs/signer';
import { CALLBACK_ROUTE, readCallbackToken, type CallbackRouting } from '../lib/callback-token';
import { workflowLogFields, type Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import { callbackSignal } from '../workflows/definitions';
import { ResponseIdsKey } from '../workflows/search-attributes';
import { receivedCallback, signedForms } from './callback-signed-forms';

export interface CallbackRouteDeps {
  client: Client;
  /** Key of the callback token MAC. */
  tokenKey: string;
  /** Verify CC-FS's auth-v2 signature (on unless the CC-FS cannot sign). */
  verifySignature: boolean;
  secretFor: (ak: string) => string | undefined;
  maxSkewSeconds: number;
  logger: Logger;
  metrics?: Metrics;
  now?: () => Date;
  /**
   * CALLBACK_BASE_URL: the URL CC-FS was given, through any gateway. Signatures are also checked
   * against its host (with and without port) and path; with `response-id` routing, callbacks are
   * accepted on its path. Unset: only what arrives is verified, and the fixed route is `/`.
   */
  publicBaseUrl?: string;
  /** CALLBACK_ROUTING; default `token`. The token route works in both modes. */
  routing?: CallbackRouting;
  /** How long a callback waits for Temporal visibility to know its responseId before it is refused. Default 2000 ms. */
  lookupBudgetMs?: number;
}

/** CC-FS retries a callback until it gets HTTP 200 with this body; anything else means "try later". */
const fail = (resultDesc: string) => ({ resultCode: '1', resultDesc });

function isUnavailable(err: unknown): boolean {
  // gRPC UNAVAILABLE / DEADLINE_EXCEEDED, or a connection that never came up.
  const code = (err as { code?: number }).code;
  const name = (err as { name?: string }).name;
  return code === 14 || code === 4 || name === 'ServiceError' || name === 'TransportError';
}

const trimSlash = (p: string) => p.replace(/\/+$/, '');
/** The token is not a secret, but it is a capability of sorts: it stays out of logs. */
const redactToken = (path: string) => path.replace(/(\/callbacks\/ccfs\/)[^/]+$/, '$1<token>');

/**
 * Every path a fixed callback URL can arrive at: its own path and each tail of it (`/gw/hook` →
 * `/gw/hook`, `/hook`, `/`), as a gateway may strip any leading part. Paths of the management API
 * are left out, so a callback route never shadows them.
 */
function fixedPaths(basePath: string): Set<string> {
  const segments = trimSlash(basePath).split('/').filter(Boolean);
  const out = new Set<string>();
  for (let i = 0; i <= segments.length; i++) {
    const path = `/${segments.slice(i).join('/')}`;
    if (!/^\/(exports|schedules|healthz|metrics|callbacks)(\/|$)/.test(path)) out.add(path);
  }
  return out;
}

type Target = { kind: 'token'; token: string } | { kind: 'response-id' };

type Lookup = { kind: 'found'; workflowId: string; runId: string; running: boolean } | { kind: 'unknown' };

/**
 * The CC-FS callback endpoint, mounted at the app's root (protocol §1, §3):
 * - `POST /callbacks/ccfs/:token` (also under CALLBACK_BASE_URL's path prefix): the chunk is the one
 *   the MACed token names;
 * - with `routing: 'response-id'`, `POST` on CALLBACK_BASE_URL's path (or any tail of it, `/`
 *   included): the chunk is the one whose `CcfsResponseIds` search attribute holds the callback's
 *   responseId (hyphens removed, lower case), looked up in Temporal visibility for up to
 *   `lookupBudgetMs`. Unknown responseId → 404 (CC-FS retries later), nothing signalled; a chunk that
 *   has closed → success, nothing signalled.
 * Each verifies CC-FS's auth-v2 signature against the forms CC-FS may have signed (callback-signed-forms.ts),
 * validates the body, and answers success only once Temporal has accepted the signal, so a callback
 * is never acknowledged and then lost. Answers: 200 `{"resultCode":"0",...}`; 400/401/404/503 with
 * `{"resultCode":"1",...}`.
 */
export function callbackRouter(deps: CallbackRouteDeps): Router {
  const router = express.Router();
  const count = (outcome: string) => deps.metrics?.callbacks.inc({ outcome });
  const registry = deps.metrics?.registry;
  const signatures = registry
    ? ((registry.getSingleMetric('ccfs_export_callback_signatures_total') as Counter | undefined) ??
      new Counter({
        name: 'ccfs_export_callback_signatures_total',
        help: 'Verified callback signatures by the form CC-FS signed (received, forwarded, public-url, …): anything but "received" means a gateway rewrote the request',
        labelNames: ['signed_as'],
        registers: [registry],
      }))
    : undefined;
  const routing = deps.routing ?? 'token';
  const publicPath = deps.publicBaseUrl ? new URL(deps.publicBaseUrl).pathname : '/';
  const prefix = trimSlash(publicPath);
  const tokenBases = prefix ? [CALLBACK_ROUTE, `${prefix}${CALLBACK_ROUTE}`] : [CALLBACK_ROUTE];
  const fixed = routing === 'response-id' ? fixedPaths(publicPath) : new Set<string>();
  if (routing === 'response-id' && !fixed.has(trimSlash(publicPath) || '/')) {
    // Fail at start-up, not with callbacks that never arrive.
    throw new Error(
      `CALLBACK_BASE_URL path ${publicPath} is a path of the management API; give the callback URL a path of its own`,
    );
  }
  // Precomputed once: per request only the received path is joined in.
  const tokenForms = signedForms(deps.publicBaseUrl);
  const fixedForms = signedForms(deps.publicBaseUrl, publicPath);
  const rawBody = express.raw({ type: () => true, limit: '16kb' });
  const lookupBudgetMs = deps.lookupBudgetMs ?? 2000;

  function match(path: string): Target | undefined {
    for (const base of tokenBases) {
      if (path.startsWith(`${base}/`)) {
        const token = path.slice(base.length + 1);
        if (token && !token.includes('/')) return { kind: 'token', token };
      }
    }
    if (fixed.has(trimSlash(path) || '/')) return { kind: 'response-id' };
    return undefined;
  }

  /**
   * The running chunk that requested this responseId, else a closed one, through visibility (eventually
   * consistent). A closed match is only taken once the budget is spent: a retried chunk's new run
   * records its earlier responseIds too, and it may not be visible yet.
   */
  async function lookup(responseId: string): Promise<Lookup> {
    // The id is 32 hex here (checked against billFileName), so it cannot break out of the quoted value.
    const query = `${ResponseIdsKey.name} = '${normalizeResponseId(responseId)}'`;
    const deadline = Date.now() + lookupBudgetMs;
    let delay = 50;
    let closed: Lookup | undefined;
    for (;;) {
      for await (const wf of deps.client.workflow.list({ query, pageSize: 10 })) {
        if (wf.status.name === 'RUNNING')
          return { kind: 'found', workflowId: wf.workflowId, runId: wf.runId, running: true };
        closed ??= { kind: 'found', workflowId: wf.workflowId, runId: wf.runId, running: false };
      }
      // The chunk upserts the id right after queryBillData answers; a fast callback can beat it.
      if (Date.now() + delay > deadline) return closed ?? { kind: 'unknown' };
      await sleep(delay);
      delay = Math.min(delay * 2, 400);
    }
  }

  async function handle(req: Request, res: Response, target: Target): Promise<void> {
    // The fields every line of this request carries, merged into each call: a pino child logger per
    // request serialised its bindings for every callback, a measurable share of the API's CPU per
    // callback (bench/results/README.md, callbacks).
    let bound: Record<string, unknown> = { route: 'callback', routing: target.kind };
    const log = {
      debug: (fields: object, msg: string) => {
        if (deps.logger.isLevelEnabled('debug')) deps.logger.debug({ ...bound, ...fields }, msg);
      },
      info: (fields: object, msg: string) => deps.logger.info({ ...bound, ...fields }, msg),
      warn: (fields: object, msg: string) => deps.logger.warn({ ...bound, ...fields }, msg),
      error: (fields: object, msg: string) => deps.logger.error({ ...bound, ...fields }, msg),
    };
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const path = req.originalUrl.split('?')[0]!;
    let workflowId: string | undefined;
    let runId: string | undefined;
    if (target.kind === 'token') {
      workflowId = readCallbackToken(deps.tokenKey, target.token);
      // Each line below names workflowId itself; the export and chunk it addresses are bound here.
      const { exportId, chunk } = workflowLogFields(workflowId);
      if (exportId) bound = { ...bound, exportId, chunk };
      if (!workflowId) {
        count('unknown_target');
        log.warn({ ip: req.ip }, 'callback for an unknown or forged target');
        res.status(404).json(fail('unknown callback target'));
        return;
      }
    }
    if (deps.verifySignature) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const received = receivedCallback(req.headers, path);
      const forms = (target.kind === 'token' ? tokenForms : fixedForms)(received);
      const result = verifyAs(
        {
          authorization: req.headers.authorization,
          method: req.method,
          path,
          query: new URLSearchParams(req.originalUrl.split('?')[1] ?? '').entries(),
          headers,
          body,
          secretFor: deps.secretFor,
          now: deps.now?.() ?? new Date(),
          maxSkewSeconds: deps.maxSkewSeconds,
        },
        forms,
      );
      if (!result.ok) {
        count('unauthorized');
        // What arrived and what was tried (hosts and paths only), so a gateway rewrite shows in the log.
        log.warn(
          {
            workflowId,
            reason: result.reason,
            ip: req.ip,
            host: received.host,
            path: redactToken(path),
            forwardedHost: received.forwardedHost,
            forwardedPrefix: received.forwardedPrefix,
            publicBaseUrl: deps.publicBaseUrl,
            tried: result.tried?.map((t) => `${t.label} ${t.host ?? ''} ${redactToken(t.path)}`),
          },
          'callback signature rejected',
        );
        res.status(401).json(fail('signature rejected'));
        return;
      }
      signatures?.inc({ signed_as: result.matched });
      if (result.matched !== 'received')
        log.debug(
          { signedAs: result.matched, host: received.host, path: redactToken(path) },
          'callback signature matched a rewritten form',
        );
    }
    let parsed: CallbackBody;
    try {
      parsed = CallbackBody.parse(JSON.parse(body.toString('utf8')));
    } catch {
      count('invalid');
      log.warn({ workflowId }, 'callback body is not valid');
      res.status(400).json(fail('invalid callback body'));
      return;
    }
    const { responseId, billFileName, accountId } = parsed.msgBody;
    if (!billFileMatchesResponse(billFileName, responseId)) {
      count('mismatch');
      log.warn({ workflowId, responseId }, 'callback billFileName does not match its responseId');
      res.status(400).json(fail('billFileName does not match responseId'));
      return;
    }
    try {
      if (target.kind === 'response-id') {
        const found = await lookup(responseId);
        if (found.kind === 'unknown') {
          // Not (yet) known: refuse without signalling anything; CC-FS tries again later.
          count('unknown_response_id');
          log.warn({ responseId, ip: req.ip }, 'callback for a responseId no chunk has requested');
          res.status(404).json(fail('unknown responseId'));
          return;
        }
        workflowId = found.workflowId;
        runId = found.runId;
        const { exportId, chunk } = workflowLogFields(workflowId);
        if (exportId) bound = { ...bound, exportId, chunk };
        if (!found.running) {
          count('already_finished');
          log.info({ workflowId, responseId }, 'callback for a chunk that already finished');
          res.json(CALLBACK_SUCCESS);
          return;
        }
      }
      await deps.client.workflow.getHandle(workflowId!, runId).signal(callbackSignal, {
        responseId,
        billFileName,
        accountId,
        receivedAt: new Date().toISOString(),
      });
      count('signalled');
      log.info({ workflowId, responseId, billFileName }, 'callback signalled');
      res.json(CALLBACK_SUCCESS);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // The token (or the search attribute) is ours, so the chunk existed: it has finished. Acknowledge so CC-FS stops retrying.
        count('already_finished');
        log.info({ workflowId, responseId }, 'callback for a chunk that already finished');
        res.json(CALLBACK_SUCCESS);
        return;
      }
      count(isUnavailable(err) ? 'temporal_unavailable' : 'error');
      log.error(
        { workflowId, err: err instanceof Error ? err.message : String(err) },
        'could not signal the chunk; CC-FS will retry',
      );
      res.status(503).json(fail('temporarily unavailable'));
    }
  }

  router.use((req, res, next) => {
    if (req.method !== 'POST') return next();
    const target = match(req.path);
    if (!target) return next();
    rawBody(req, res, (err?: unknown) => {
      if (err) return next(err);
      handle(req, res, target).catch(next);
    });
  });
  return router;
}
