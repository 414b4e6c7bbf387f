import { z } from 'zod';
import { DataType, QueryFilters, WallTimeString } from '../ccfs/protocol';
import { MAX_CHUNK_SECONDS } from '../domain/chunking';
import { isValidTimeZone, parseWallTime } from '../domain/wall-time';
import { DEFAULT_TENANT, UnknownTenantError } from './tenants';
import {
  DEFAULT_EXPORT_OPTIONS,
  EXPORT_ID_PATTERN,
  type ExportOptions,
  type ExportRequest,
} from '../workflows/definitions';

/**
 * What a person asks for, from the API or the CLI: validated once here, so both give the same
 * messages. Durations are in the units people think in.
 */
export const ExportOptionsInput = z
  .object({
    chunkHours: z
      .number()
      .int()
      .min(1)
      .max(MAX_CHUNK_SECONDS / 3600),
    maxChunksInFlight: z.number().int().min(1).max(64),
    callbackTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86400),
    /** How often a waiting chunk tries its file's documented names (callbacks optional); fractions allowed. */
    probeIntervalSeconds: z.number().min(0.1).max(86400),
    maxRequestsPerChunk: z.number().int().min(1).max(20),
    retryInitialIntervalSeconds: z.number().min(0.1).max(3600),
    retryMaximumIntervalSeconds: z.number().min(0.1).max(86400),
    retryMaximumAttempts: z.number().int().min(1).max(100),
    maxHistoryEvents: z.number().int().min(200).max(40_000),
  })
  .partial()
  .strict();
export type ExportOptionsInput = z.infer<typeof ExportOptionsInput>;

export const StartExportInput = z
  .object({
    exportId: z
      .string()
      .regex(
        EXPORT_ID_PATTERN,
        'must be 1-100 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
      )
      .optional(),
    from: WallTimeString,
    to: WallTimeString,
    dataType: DataType,
    timeZone: z
      .string()
      .refine(isValidTimeZone, 'must be an IANA time zone such as Asia/Shanghai')
      .optional(),
    filters: QueryFilters.strict().optional(),
    options: ExportOptionsInput.optional(),
  })
  .strict()
  .superRefine(
    (v, ctx) => {
      // The format itself is checked by WallTimeString; here only calendar validity and order.
      const check = (field: 'from' | 'to'): number | undefined => {
        if (typeof v[field] !== 'string' || !WallTimeString.safeParse(v[field]).success) return undefined;
        try {
          return parseWallTime(v[field], field);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: [field], message: (e as Error).message });
          return undefined;
        }
      };
      const from = check('from');
      const to = check('to');
      if (from !== undefined && to !== undefined && to <= from) {
        ctx.addIssue({
          code: 'custom',
          path: ['to'],
          message: `to (${v.to}) must be later than from (${v.from})`,
        });
      }
    },
    // Also when other fields are bad, so one answer names every bad field at once.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );
export type StartExportInput = z.infer<typeof StartExportInput>;

export function resolveOptions(input: ExportOptionsInput = {}): ExportOptions {
  const d = DEFAULT_EXPORT_OPTIONS;
  const s = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 1000));
  return {
    chunkSeconds: input.chunkHours === undefined ? d.chunkSeconds : input.chunkHours * 3600,
    maxChunksInFlight: input.maxChunksInFlight ?? d.maxChunksInFlight,
    callbackTimeoutMs: s(input.callbackTimeoutSeconds) ?? d.callbackTimeoutMs,
    // Unset stays unset: the chunk then picks its default by the worker's CALLBACK_MODE.
    ...(input.probeIntervalSeconds !== undefined && { probeIntervalMs: s(input.probeIntervalSeconds) }),
    maxRequestsPerChunk: input.maxRequestsPerChunk ?? d.maxRequestsPerChunk,
    retry: {
      initialIntervalMs: s(input.retryInitialIntervalSeconds) ?? d.retry.initialIntervalMs,
      maximumIntervalMs: s(input.retryMaximumIntervalSeconds) ?? d.retry.maximumIntervalMs,
      maximumAttempts: input.retryMaximumAttempts ?? d.retry.maximumAttempts,
    },
    maxHistoryEvents: input.maxHistoryEvents ?? d.maxHistoryEvents,
  };
}

/** A new export ID that sorts by creation time and reads as what it is. */
export function newExportId(input: Pick<StartExportInput, 'from' | 'dataType'>, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const random = Math.random().toString(36).slice(2, 8);
  return `${input.dataType}-${input.from.slice(0, 10)}-${stamp}-${random}`;
}

export function buildExportRequest(
  input: StartExportInput,
  defaults: { timeZone: string; origin: string },
): ExportRequest {
  const filters = Object.fromEntries(Object.entries(input.filters ?? {}).filter(([, v]) => v !== undefined));
  return {
    exportId: input.exportId ?? newExportId(input),
    tenant: tenantOf(input),
    begin: input.from,
    end: input.to,
    timeZone: input.timeZone ?? defaults.timeZone,
    dataType: input.dataType,
    filters,
    options: resolveOptions(input.options),
    origin: defaults.origin,
  };
}

/** The tenant an export or schedule names (its `accountId` filter), or the default tenant. */
export function tenantOf(input: { filters?: { accountId?: string } }): string {
  return input.filters?.accountId ?? DEFAULT_TENANT;
}

/**
 * The ExportRequest an input stands for, with the zone of its tenant when it names none — the one
 * rule the API and the CLI share (lib/client-services.ts), so one export means one range however it
 * was started. `timeZoneOf` answers undefined for a tenant that is not configured: then nothing is
 * started and UnknownTenantError is thrown (API: 400 `unknown_tenant`; CLI: exit 1), even when the
 * input gives its own zone, since the worker could not sign for that tenant either.
 */
export function exportRequestFor(
  input: StartExportInput,
  timeZoneOf: (tenant: string) => string | undefined,
  origin: string,
): ExportRequest {
  const tenant = tenantOf(input);
  const timeZone = timeZoneOf(tenant);
  if (timeZone === undefined) throw new UnknownTenantError(tenant);
  return buildExportRequest(input, { timeZone, origin });
}

/** `field.path: message` lines for a zod error, the form both the API and the CLI show. */
export function describeIssues(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
}
