import { timingSafeEqual, createHash } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { rateLimit } from 'express-rate-limit';
import { z } from 'zod';
import type { Client } from '@temporalio/client';
import { exportRequestFor, StartExportInput } from '../lib/export-input';
import { EXPORT_STATES, ExportRequestError, normalizeState, type ExportService } from '../lib/export-service';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import { UnknownTenantError } from '../lib/tenants';
import { EXPORT_ID_PATTERN } from '../workflows/definitions';
import { callbackRouter, type CallbackRouteDeps } from './callback-route';
import { errorHandler, HttpError } from './http-error';
import { scheduleRoutes } from './schedule-routes';
import { startExportLoad } from '../lib/loader/load-service';

export interface AppDeps {
  client: Client;
  exports: ExportService;
  taskQueue: string;
  /** The zone of exports that give none: one for all, or per tenant (undefined: the tenant is not configured). */
  tenantTimeZone: string | ((tenant: string) => string | undefined);
  /**
   * Bearer tokens for the management API (`/exports*`, `/schedules*`, `/coverage`, `/metrics`). When
   * empty, every management request is refused (401) unless `apiAuth` is `none`: secure by default.
   */
  apiTokens: string[];
  /** `none` (API_AUTH=none, development and tests only): the management API is open when `apiTokens` is empty. */
  apiAuth?: 'token' | 'none';
  callback: Omit<CallbackRouteDeps, 'client' | 'logger' | 'metrics'>;
  logger: Logger;
  metrics?: Metrics;
  /** Requests per minute per client IP on the management API. */
  rateLimitPerMinute?: number;
}

const ListQuery = z
  .object({
    tenant: z.string().max(64).optional(),
    // `canceled` (US spelling) is read as `cancelled`; anything else unknown is refused with the list.
    state: z
      .preprocess((v) => (typeof v === 'string' ? normalizeState(v) : v), z.enum(EXPORT_STATES))
      .optional(),
    dataType: z.enum(['call', 'record', 'call_record']).optional(),
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Requires one of `tokens` as `Authorization: Bearer …`; no tokens refuse everything unless `open`. */
function bearerAuth(tokens: string[], open: boolean): RequestHandler {
  const digests = tokens.map(digest);
  return (req, _res, next) => {
    if (digests.length === 0 && open) return next();
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    // Compare digests, so the comparison is constant-time whatever the lengths.
    const given = match ? digest(match[1]!) : undefined;
    if (given && digests.some((d) => timingSafeEqual(d, given))) return next();
    next(new HttpError(401, 'unauthorized', 'a valid bearer token is required'));
  };
}

function exportIdParam(value: unknown): string {
  const id = String(value);
  if (!EXPORT_ID_PATTERN.test(id))
    throw new HttpError(400, 'invalid_export_id', 'export ID has characters that are not allowed');
  return id;
}

/** Builds the HTTP app (management API + CC-FS callback endpoint); it never listens itself. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(helmet());
  const auth = bearerAuth(deps.apiTokens, deps.apiAuth === 'none');

  app.get('/healthz', async (_req, res) => {
    const components: Record<string, string> = { api: 'ok' };
    try {
      const tq = await deps.client.workflowService.describeTaskQueue({
        namespace: deps.client.options.namespace,
        taskQueue: { name: deps.taskQueue },
        taskQueueType: 1, // workflow
      });
      components.temporal = 'ok';
      components.worker = (tq.pollers?.length ?? 0) > 0 ? 'ok' : 'no workers polling';
    } catch {
      components.temporal = 'unreachable';
      components.worker = 'unknown';
    }
    const ok = Object.values(components).every((v) => v === 'ok');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'degraded', components });
  });

  app.get('/metrics', auth, async (_req, res) => {
    if (!deps.metrics) throw new HttpError(404, 'not_found', 'metrics are disabled');
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  // At the root: the token route, and with CALLBACK_ROUTING=response-id the fixed URL's path (`/` included).
  app.use(
    callbackRouter({ ...deps.callback, client: deps.client, logger: deps.logger, metrics: deps.metrics }),
  );

  const api = express.Router();
  api.use(
    rateLimit({
      windowMs: 60_000,
      limit: deps.rateLimitPerMinute ?? 600,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
    }),
  );
  api.use(auth);
  api.use(express.json({ limit: '32kb' }));

  api.post('/', async (req, res) => {
    // express.json() leaves any other body unread: say so, rather than "from: expected string".
    if (!req.is('application/json'))
      throw new HttpError(
        415,
        'unsupported_media_type',
        'send the export as JSON, with content-type: application/json',
      );
    // `allowPartial` is how to start, not what to export: it is not part of the stored request's input.
    const raw: unknown = req.body ?? {};
    // Only a JSON object has it; anything else goes to the schema as it came, for the schema's message.
    const isObject = typeof raw === 'object' && raw !== null && !Array.isArray(raw);
    const { allowPartial, ...rest } = isObject ? (raw as Record<string, unknown>) : {};
    const body = isObject ? rest : raw;
    if (allowPartial !== undefined && typeof allowPartial !== 'boolean')
      throw new HttpError(400, 'invalid_request', 'allowPartial must be true or false');
    const input = StartExportInput.parse(body);
    const zones = deps.tenantTimeZone;
    let request;
    try {
      // The rule the CLI applies too (lib/client-services.ts): the tenant's zone, an unknown tenant refused.
      request = exportRequestFor(input, typeof zones === 'string' ? () => zones : zones, 'api');
    } catch (err) {
      if (err instanceof UnknownTenantError)
        throw new HttpError(400, 'unknown_tenant', `no tenant "${err.tenant}" is configured`);
      throw err;
    }
    let started;
    try {
      started = await deps.exports.start(request, {}, { allowPartial: allowPartial === true });
    } catch (err) {
      if (!(err instanceof ExportRequestError)) throw err;
      const status = err.code === 'export_id_conflict' ? 409 : 400;
      throw new HttpError(status, err.code, err.message, {
        error: err.code,
        message: err.message,
        fields: err.fields,
      });
    }
    res.status(started.created ? 201 : 200).json(started);
  });

  api.get('/', async (req, res) => {
    const query = ListQuery.parse(req.query);
    res.json({ exports: await deps.exports.list(query) });
  });

  api.get('/:id', async (req, res) => {
    const status = await deps.exports.status(exportIdParam(req.params.id));
    if (!status) throw new HttpError(404, 'not_found', 'no export with this ID');
    res.json(status);
  });

  api.post('/:id/cancel', async (req, res) => {
    const id = exportIdParam(req.params.id);
    const outcome = await deps.exports.cancel(id);
    if (!outcome) throw new HttpError(404, 'not_found', 'no export with this ID');
    // A finished export has nothing to cancel: 200 with its state, and nothing changes.
    if (outcome.cancelRequested) res.status(202).json({ exportId: id, cancelRequested: true });
    else res.status(200).json({ exportId: id, cancelRequested: false, state: outcome.state });
  });

  api.post('/:id/retry', async (req, res) => {
    const id = exportIdParam(req.params.id);
    const started = await deps.exports.retry(id);
    if ('error' in started) {
      if (started.error === 'not-found') throw new HttpError(404, 'not_found', 'no export with this ID');
      if (started.error === 'nothing-to-retry')
        throw new HttpError(
          409,
          'nothing_to_retry',
          `the export ${'state' in started ? started.state : 'finished'}: every chunk is verified or empty, nothing to retry`,
        );
      throw new HttpError(409, 'still_running', 'the export is still running; retry it once it has finished');
    }
    res.status(202).json(started);
  });

  // Loads an existing export into the workers' PostgreSQL database (issue 17): the URL is worker
  // configuration, so the API only starts loadExportWorkflow; its result is the workflow's.
  api.post('/:id/load', async (req, res) => {
    const id = exportIdParam(req.params.id);
    if (!(await deps.exports.status(id))) throw new HttpError(404, 'not_found', 'no export with this ID');
    const handle = await startExportLoad(deps.client, deps.taskQueue, id);
    res.status(202).json({ exportId: id, workflowId: handle.workflowId });
  });

  app.use('/exports', api);
  app.use(scheduleRoutes({ ...deps, auth }));
  app.use((_req, _res, next) => next(new HttpError(404, 'not_found', 'no such route')));
  app.use(errorHandler(deps.logger));
  return app;
}
