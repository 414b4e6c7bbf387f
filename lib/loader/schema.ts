import type { ClientBase } from 'pg';
import { CDR_COLUMNS, RECORD_COLUMNS } from '../../ccfs/protocol';

/**
 * The loader's tables (issue 17), created and migrated by the product itself: `migrate()` applies the
 * ordered MIGRATIONS that `ccfs_schema_version` does not list yet, one transaction each, under an
 * advisory lock so that several workers starting at once migrate once.
 */

// The documented column lists live with the rest of the wire format; re-exported for the loader's users.
export { CDR_COLUMNS, RECORD_COLUMNS } from '../../ccfs/protocol';

export type LoadKind = 'call' | 'record';

/** Per kind: target table, documented columns, which of them are times (`<name>_at timestamptz`). */
export interface KindTable {
  table: string;
  columns: readonly string[];
  times: readonly string[];
}

export const TABLES: Record<LoadKind, KindTable> = {
  call: {
    table: 'ccfs_cdr',
    columns: CDR_COLUMNS,
    times: ['wait_begin', 'wait_end', 'ack_begin', 'ack_end', 'call_begin', 'call_end'],
  },
  record: { table: 'ccfs_recording_index', columns: RECORD_COLUMNS, times: ['call_begin', 'call_end'] },
};

/** The natural keys of issue 17: a call's CDR rows by call_id_num, a call's recordings by file. */
export const DEFAULT_KEYS: Record<LoadKind, readonly string[]> = {
  call: ['tenant', 'call_id', 'call_id_num'],
  record: ['tenant', 'call_id', 'file_name'],
};

function tableSql(kind: LoadKind): string {
  const t = TABLES[kind];
  const cols = [
    'tenant text NOT NULL',
    ...t.columns.map((c) => `${c} text`),
    ...t.times.map((c) => `${c}_at timestamptz`),
    // Columns a file has beyond the documented ones (by header name, or `col_<n>` without header).
    "extra jsonb NOT NULL DEFAULT '{}'::jsonb",
    // Where the row was first seen: a later file holding it again only counts it as already present.
    'export_id text',
    'chunk integer',
    'source_sha256 text',
    'source_entry text',
    'loaded_at timestamptz NOT NULL DEFAULT now()',
  ];
  return `CREATE TABLE IF NOT EXISTS ${t.table} (\n  ${cols.join(',\n  ')}\n)`;
}

/**
 * Ordered, append-only: a released migration is never edited, a change is a new entry. Keys are not
 * here but in ensureKeys, since installations may configure them.
 */
export const MIGRATIONS: readonly { version: number; description: string; sql: string[] }[] = [
  {
    version: 1,
    description: 'ccfs_cdr, ccfs_recording_index and ccfs_load',
    sql: [
      tableSql('call'),
      tableSql('record'),
      `CREATE TABLE IF NOT EXISTS ccfs_load (
        id bigserial PRIMARY KEY,
        export_id text NOT NULL,
        chunk integer NOT NULL,
        file_name text NOT NULL,
        sha256 text NOT NULL,
        entry text NOT NULL,
        kind text NOT NULL,
        tenant text NOT NULL,
        rows_read bigint NOT NULL,
        rows_inserted bigint NOT NULL,
        rows_already_present bigint NOT NULL,
        records_with_cdr bigint,
        loaded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (sha256, entry)
      )`,
      'CREATE INDEX IF NOT EXISTS ccfs_load_export ON ccfs_load (export_id, chunk)',
      'CREATE INDEX IF NOT EXISTS ccfs_cdr_call_begin ON ccfs_cdr (tenant, call_begin_at)',
      'CREATE INDEX IF NOT EXISTS ccfs_recording_index_call ON ccfs_recording_index (tenant, call_id)',
    ],
  },
  {
    version: 2,
    description: 'ccfs_load.days: rows read and inserted per day of call_begin, for daily reconciliation',
    sql: ['ALTER TABLE ccfs_load ADD COLUMN IF NOT EXISTS days jsonb'],
  },
];

/** The latest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** A constant of our own for pg_advisory_lock, so that concurrent migrations serialise. */
const MIGRATION_LOCK = 0x63636673;

export class LoaderConfigError extends Error {
  override readonly name = 'LoaderConfigError';
}

/**
 * Validates configured keys: known columns of the kind (or `tenant`), at least one. Throws
 * LoaderConfigError naming the bad column.
 */
export function resolveKeys(keys?: Partial<Record<LoadKind, readonly string[]>>): Record<LoadKind, string[]> {
  const out = {} as Record<LoadKind, string[]>;
  for (const kind of ['call', 'record'] as const) {
    const list = [...(keys?.[kind] ?? DEFAULT_KEYS[kind])];
    if (list.length === 0) throw new LoaderConfigError(`loader key for ${kind} is empty`);
    for (const c of list) {
      if (c !== 'tenant' && !TABLES[kind].columns.includes(c))
        throw new LoaderConfigError(`loader key column "${c}" is not a ${TABLES[kind].table} column`);
    }
    out[kind] = list;
  }
  return out;
}

/** Name of the unique index behind a key, so a configured key gets its own index. */
export function keyIndexName(kind: LoadKind, key: readonly string[]): string {
  return `${TABLES[kind].table}_key_${key.join('_')}`.slice(0, 63);
}

/**
 * Brings the database to SCHEMA_VERSION and makes sure the unique index of each configured key
 * exists (ON CONFLICT needs it). Returns the version found before. Throws when the database holds a
 * newer version than this code knows (an older worker must not write into a newer schema).
 */
export async function migrate(
  client: ClientBase,
  keys: Record<LoadKind, string[]> = resolveKeys(),
): Promise<{ from: number; to: number }> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS ccfs_schema_version (
      version integer PRIMARY KEY,
      description text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const found = await client.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM ccfs_schema_version',
    );
    const from = found.rows[0]?.v ?? 0;
    if (from > SCHEMA_VERSION) {
      throw new LoaderConfigError(
        `the loader database has schema version ${from}, newer than this release's ${SCHEMA_VERSION}`,
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await client.query('BEGIN');
      try {
        for (const sql of m.sql) await client.query(sql);
        await client.query('INSERT INTO ccfs_schema_version (version, description) VALUES ($1, $2)', [
          m.version,
          m.description,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
    for (const kind of ['call', 'record'] as const) {
      await client.query(
        `CREATE UNIQUE INDEX IF NOT EXISTS ${keyIndexName(kind, keys[kind])} ON ${TABLES[kind].table} (${keys[kind].join(', ')})`,
      );
    }
    return { from, to: SCHEMA_VERSION };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
