import pg from 'pg';
import { type LoadZipInput, type LoadZipResult, loadZip } from './load-zip';
import { type LoadKind, migrate, resolveKeys } from './schema';

/** How to reach the loader's database; the URL is a secret (it may hold a password). */
export interface LoaderSettings {
  databaseUrl: string;
  keys?: Partial<Record<LoadKind, readonly string[]>>;
  /** Connections held at once (each load uses one for its whole ZIP). */
  maxConnections?: number;
}

/** A comma-separated key setting (`tenant,call_id,call_id_num`) as a column list, or undefined. */
export function parseKeySetting(value: string | undefined): string[] | undefined {
  if (!value) return undefined;
  return value
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '');
}

/**
 * The loader a worker holds (issue 17): one pool, the schema migrated on first use, then loadZip per
 * verified ZIP. Connection errors name the host only: the URL (and its password) is never in them.
 */
export class Loader {
  readonly #pool: pg.Pool;
  readonly #keys: Record<LoadKind, string[]>;
  #migrated: Promise<void> | undefined;

  constructor(settings: LoaderSettings) {
    this.#keys = resolveKeys(settings.keys);
    // allowExitOnIdle: a worker that shuts down exits without closing the pool itself.
    this.#pool = new pg.Pool({
      connectionString: settings.databaseUrl,
      max: settings.maxConnections ?? 4,
      allowExitOnIdle: true,
    });
    // An idle client's error (the server restarting) must not crash the worker; the next load retries.
    this.#pool.on('error', () => undefined);
  }

  /** Creates or migrates the schema once per process (again after a failure). */
  async ready(): Promise<void> {
    this.#migrated ??= (async () => {
      const client = await this.#pool.connect();
      try {
        await migrate(client, this.#keys);
      } finally {
        client.release();
      }
    })().catch((err: unknown) => {
      this.#migrated = undefined;
      throw err;
    });
    return this.#migrated;
  }

  /** Loads one ZIP (see loadZip); the connection is discarded after a failure, so no session state survives. */
  async load(input: Omit<LoadZipInput, 'keys'>): Promise<LoadZipResult> {
    await this.ready();
    const client = await this.#pool.connect();
    let failed = false;
    try {
      return await loadZip(client, { ...input, keys: this.#keys });
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      client.release(failed);
    }
  }

  /** Runs a read-only query (reports, tests). */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.#pool.query<R>(sql, params)).rows;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
