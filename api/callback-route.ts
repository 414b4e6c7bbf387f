import express, { type Router } from 'express';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { CALLBACK_SUCCESS, CallbackBody, billFileMatchesResponse } from '../ccfs/protocol';
import { verify } from '../ccfs/signer';
import { readCallbackToken } from '../lib/callback-token';
import { workflowLogFields, type Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import { callbackSignal } from '../workflows/definitions';

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
}

/** CC-FS retries a callback until it gets HTTP 200 with this body; anything else means "try later". */
const fail = (resultDesc: string) => ({ resultCode: '1', resultDesc });

function isUnavailable(err: unknown): boolean {
  // gRPC UNAVAILABLE / DEADLINE_EXCEEDED, or a connection that never came up.
  const code = (err as { code?: number }).code;
  const name = (err as { name?: string }).name;
  return code === 14 || code === 4 || name === 'ServiceError' || name === 'TransportError';
}

/**
 * `POST /callbacks/ccfs/:token`: verifies CC-FS's signature and the routing token, validates the
 * body, and signals the chunk workflow the token names. It answers success only once Temporal has
 * accepted the signal, so a callback is never acknowledged and then lost.
 */
export function callbackRouter(deps: CallbackRouteDeps): Router {
  const router = express.Router();
  const count = (outcome: string) => deps.metrics?.callbacks.inc({ outcome });

  router.post('/:token', express.raw({ type: () => true, limit: '16kb' }), async (req, res) => {
    let log = deps.logger.child({ route: 'callback' });
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const workflowId = readCallbackToken(deps.tokenKey, String(req.params.token));
    // Each line below names workflowId itself; the export and chunk it addresses are bound here.
    const { exportId, chunk } = workflowLogFields(workflowId);
    if (exportId) log = log.child({ exportId, chunk });
    if (!workflowId) {
      count('unknown_target');
      log.warn({ ip: req.ip }, 'callback for an unknown or forged target');
      res.status(404).json(fail('unknown callback target'));
      return;
    }
    if (deps.verifySignature) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const result = verify({
        authorization: req.headers.authorization,
        method: req.method,
        path: req.originalUrl.split('?')[0]!,
        query: new URLSearchParams(req.originalUrl.split('?')[1] ?? '').entries(),
        headers,
        body,
        secretFor: deps.secretFor,
        now: deps.now?.() ?? new Date(),
        maxSkewSeconds: deps.maxSkewSeconds,
      });
      if (!result.ok) {
        count('unauthorized');
        log.warn({ workflowId, reason: result.reason, ip: req.ip }, 'callback signature rejected');
        res.status(401).json(fail('signature rejected'));
        return;
      }
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
      await deps.client.workflow
        .getHandle(workflowId)
        .signal(callbackSignal, { responseId, billFileName, accountId, receivedAt: new Date().toISOString() });
      count('signalled');
      log.info({ workflowId, responseId, billFileName }, 'callback signalled');
      res.json(CALLBACK_SUCCESS);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // The token is ours, so the chunk existed: it has finished. Acknowledge so CC-FS stops retrying.
        count('already_finished');
        log.info({ workflowId, responseId }, 'callback for a chunk that already finished');
        res.json(CALLBACK_SUCCESS);
        return;
      }
      count(isUnavailable(err) ? 'temporal_unavailable' : 'error');
      log.error({ workflowId, err: err instanceof Error ? err.message : String(err) }, 'could not signal the chunk; CC-FS will retry');
      res.status(503).json(fail('temporarily unavailable'));
    }
  });
  return router;
}
