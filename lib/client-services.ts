import { Client, Connection } from '@temporalio/client';
import type { ExportRequest } from '../workflows/definitions';
import type { Config } from './config';
import { exportRequestFor, type StartExportInput } from './export-input';
import { ExportService } from './export-service';
import { exportRecordsFromConfig } from './records-from-config';
import { ScheduleService } from './schedule-service';
import { temporalConnectionOptions } from './temporal';
import { tenantTimeZones } from './tenants';

/**
 * The composition root of the client side: the one place that turns the configuration into a
 * Temporal connection and the services built on it (exports, schedules, coverage's inputs, tenant
 * zones). The API (api/main.ts) and the CLI (cli/main.ts, cli/schedule.ts) both build their services
 * here, so they cannot disagree on a tenant's zone, on which tenants exist, or on defaults: before,
 * the CLI cut days in TENANT_TIME_ZONE and accepted any accountId while the API used the tenant's own
 * zone from TENANTS_FILE and refused unknown tenants.
 *
 * Nothing here reads a secret: the CLI has none (it talks to Temporal, not to CC-FS).
 */
export interface ClientServices {
  config: Config;
  connection: Connection;
  client: Client;
  exports: ExportService;
  schedules: ScheduleService;
  /** Zone of a tenant (exports and schedules that name none); undefined when the tenant is not configured. */
  tenantTimeZone: (tenant: string) => string | undefined;
  /** The ExportRequest of an input (tenant zone applied); throws UnknownTenantError for an unconfigured tenant. */
  exportRequest(input: StartExportInput, origin: string): ExportRequest;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** Thrown by `connectClientServices` when Temporal does not answer; the CLI exits 3 with this message. */
export class TemporalUnavailableError extends Error {
  override readonly name = 'TemporalUnavailableError';
}

/** The services over an existing connection (tests pass the dev server's; callers own its closing through `close`). */
export function createClientServices(
  config: Config,
  connection: Connection,
  tenantTimeZone: (tenant: string) => string | undefined = tenantTimeZones(config),
): ClientServices {
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const settings = {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    namespace: config.TEMPORAL_NAMESPACE,
    uiUrl: config.TEMPORAL_UI_URL,
    // The durable record (OUTPUT_DIR, the S3 prefix): coverage, status, list and backfill's skip
    // answer the same after retention has deleted the workflows (lib/export-records.ts).
    records: exportRecordsFromConfig(config),
  };
  return {
    config,
    connection,
    client,
    exports: new ExportService(client, settings),
    schedules: new ScheduleService(client, { ...settings, defaultTimeZone: tenantTimeZone }),
    tenantTimeZone,
    exportRequest: (input, origin) => exportRequestFor(input, tenantTimeZone, origin),
    close: () => connection.close(),
  };
}

/**
 * Connects to Temporal (TEMPORAL_ADDRESS, TLS and API key from lib/temporal.ts) and builds the services.
 * `lazy`: connect on first use, so a process (the API) starts while Temporal is down. Otherwise the
 * connection is made now, within `connectTimeoutMs`, and a failure is a TemporalUnavailableError.
 * A bad tenants file or TLS setting is a ConfigError, before any connection is tried.
 */
export async function connectClientServices(
  config: Config,
  options: { lazy?: boolean; connectTimeoutMs?: number } = {},
): Promise<ClientServices> {
  // Configuration first: a bad TENANTS_FILE is named even while Temporal is down.
  const zones = tenantTimeZones(config);
  const connectionOptions = temporalConnectionOptions(config);
  if (options.lazy) return createClientServices(config, Connection.lazy(connectionOptions), zones);
  let connection: Connection;
  try {
    connection = await Connection.connect({
      ...connectionOptions,
      connectTimeout: options.connectTimeoutMs ?? 5000,
    });
  } catch (err) {
    throw new TemporalUnavailableError(
      `cannot reach Temporal at ${config.TEMPORAL_ADDRESS} (${err instanceof Error ? err.message : String(err)}); is \`npm start\` running, or TEMPORAL_ADDRESS set?`,
    );
  }
  return createClientServices(config, connection, zones);
}
