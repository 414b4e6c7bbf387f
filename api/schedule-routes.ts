import express, { type RequestHandler, type Router } from 'express';
import { rateLimit } from 'express-rate-limit';
import { z } from 'zod';
import type { Client } from '@temporalio/client';
import { DataType } from '../ccfs/protocol';
import { loadCoverage } from '../lib/coverage';
import type { ExportService } from '../lib/export-service';
import {
  BackfillInput,
  CreateScheduleInput,
  Day,
  NoteInput,
  ScheduleError,
  ScheduleId,
  ScheduleService,
} from '../lib/schedule-service';
import { HttpError } from './http-error';

export interface ScheduleRouteDeps {
  client: Client;
  /** For the namespace and UI link settings shared with exports. */
  exports: Pick<ExportService, 'settings'>;
  taskQueue: string;
  tenantTimeZone: string | ((tenant: string) => string | undefined);
  /** The management API's bearer-token check (api/app.ts). */
  auth: RequestHandler;
  rateLimitPerMinute?: number;
}

const CoverageQuery = z
  .object({
    tenant: z.string().max(64).optional(),
    dataType: DataType.optional(),
    from: Day.optional(),
    to: Day.optional(),
  })
  .strict()
  .refine((q) => !q.from || !q.to || q.from <= q.to, { path: ['to'], message: 'must not be before from' });

const STATUS: Record<ScheduleError['code'], number> = {
  not_found: 404,
  not_daily: 404,
  exists: 409,
  paused: 409,
  invalid: 400,
};

/** Scheduled daily exports (`/schedules`) and their coverage (`GET /coverage`), behind the API's auth. */
export function scheduleRoutes(deps: ScheduleRouteDeps): Router {
  const service = new ScheduleService(deps.client, {
    taskQueue: deps.taskQueue,
    namespace: deps.exports.settings.namespace,
    uiUrl: deps.exports.settings.uiUrl,
    defaultTimeZone: deps.tenantTimeZone,
    records: deps.exports.settings.records,
  });
  const router = express.Router();
  const paths = ['/schedules', '/coverage'];
  router.use(
    paths,
    rateLimit({
      windowMs: 60_000,
      limit: deps.rateLimitPerMinute ?? 600,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
    }),
  );
  router.use(paths, deps.auth);
  router.use(paths, express.json({ limit: '16kb' }));
  const id = (value: unknown) => {
    const parsed = ScheduleId.safeParse(value);
    if (!parsed.success)
      throw new HttpError(400, 'invalid_schedule_id', 'schedule ID has characters that are not allowed');
    return parsed.data;
  };
  // Service refusals keep their message; anything else goes to the app's error handler as is.
  const run = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ScheduleError)
        throw new HttpError(STATUS[err.code], err.code === 'not_daily' ? 'not_found' : err.code, err.message);
      throw err;
    }
  };

  router.post('/schedules', async (req, res) => {
    const input = CreateScheduleInput.parse(req.body ?? {});
    res.status(201).json(await run(() => service.create(input, 'api')));
  });

  router.get('/schedules', async (_req, res) => {
    res.json({ schedules: await service.list() });
  });

  router.get('/schedules/:id', async (req, res) => {
    res.json(await run(() => service.describe(id(req.params.id))));
  });

  router.post('/schedules/:id/pause', async (req, res) => {
    const { note } = NoteInput.parse(req.body ?? {});
    res.json(await run(() => service.pause(id(req.params.id), note)));
  });

  router.post('/schedules/:id/resume', async (req, res) => {
    const { note } = NoteInput.parse(req.body ?? {});
    res.json(await run(() => service.resume(id(req.params.id), note)));
  });

  router.post('/schedules/:id/trigger', async (req, res) => {
    res.status(202).json(await run(() => service.trigger(id(req.params.id))));
  });

  // Answers once every day's run has started or been skipped (or the wait ran out: `not_started`).
  router.post('/schedules/:id/backfill', async (req, res) => {
    const input = BackfillInput.parse(req.body ?? {});
    res.status(202).json(await run(() => service.backfill(id(req.params.id), input, 'api')));
  });

  router.delete('/schedules/:id', async (req, res) => {
    await run(() => service.delete(id(req.params.id)));
    res.status(204).end();
  });

  router.get('/coverage', async (req, res) => {
    const query = CoverageQuery.parse(req.query);
    res.json({
      coverage: await loadCoverage(deps.client, service, query, new Date(), deps.exports.settings.records),
    });
  });

  return router;
}
