import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yazl from 'yazl';
import { verifyZip } from '../../ccfs/zip';
import { LoadMismatchError, loadZip, type LoadZipInput } from '../../lib/loader/load-zip';
import { CDR_COLUMNS, MIGRATIONS, RECORD_COLUMNS, SCHEMA_VERSION, migrate } from '../../lib/loader/schema';
import { type PostgresServer, startPostgres } from '../support/postgres';

// The loader against a real PostgreSQL server (Debian's, private cluster) and real ZIP files built
// here in the shapes CC-FS may write them (protocol §5, §8): no header, BOM, CRLF, several files per
// kind, unclosed quotes, GBK, extra columns.

let server: PostgresServer;
let dir: string;
let dbCount = 0;

beforeAll(async () => {
  server = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), 'loader-test-'));
});

afterAll(async () => {
  server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function freshDb(): Promise<pg.Pool> {
  const url = server.createDatabase(`t${dbCount++}`);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const c = await pool.connect();
  try {
    await migrate(c);
  } finally {
    c.release();
  }
  return pool;
}

let zips = 0;
async function makeZip(
  entries: { name: string; data: string | Buffer }[],
): Promise<{ path: string; sha256: string }> {
  const path = join(dir, `z${zips++}.zip`);
  const zip = new yazl.ZipFile();
  for (const e of entries)
    zip.addBuffer(Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data, 'utf8'), e.name);
  zip.end();
  const out = createWriteStream(path);
  zip.outputStream.pipe(out);
  await finished(out);
  const sha256 = createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
  return { path, sha256 };
}

/** A CDR row in the documented order; `n` is call_id_num. */
function cdr(callId: string, n: number, begin: string, extra: string[] = []): string {
  const row: string[] = CDR_COLUMNS.map((c) => c);
  row[0] = 'dev';
  row[1] = 'acc0001';
  row[4] = callId;
  row[11] = begin;
  row[12] = begin;
  row[17] = String(n);
  return [...row, ...extra].join(',');
}

function rec(callId: string, file: string, begin: string): string {
  const row: string[] = RECORD_COLUMNS.map((c) => c);
  row[0] = 'dev';
  row[1] = 'acc0001';
  row[4] = callId;
  row[7] = begin;
  row[9] = file;
  return row.join(',');
}

async function load(pool: pg.Pool, zip: { path: string; sha256: string }, over: Partial<LoadZipInput> = {}) {
  const summary = await verifyZip(zip.path);
  const expectedRows = Object.fromEntries(summary.entries.map((e) => [e.name, e.rows]));
  const client = await pool.connect();
  try {
    return await loadZip(client, {
      path: zip.path,
      sha256: zip.sha256,
      fileName: 'x.zip',
      exportId: 'exp',
      chunk: 0,
      tenant: 'acc0001',
      timeZone: 'Asia/Shanghai',
      expectedRows,
      ...over,
    });
  } finally {
    client.release();
  }
}

async function count(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<number> {
  const r = await pool.query<{ n: string }>(sql, params);
  return Number(r.rows[0]!.n);
}

describe('loader schema', () => {
  it('creates the versioned schema once and migrates nothing the second time', async () => {
    const pool = await freshDb();
    try {
      const c = await pool.connect();
      try {
        expect(await migrate(c)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
      } finally {
        c.release();
      }
      expect(await count(pool, 'SELECT max(version) AS n FROM ccfs_schema_version')).toBe(SCHEMA_VERSION);
      const keys = await pool.query<{ indexdef: string }>(
        "SELECT indexdef FROM pg_indexes WHERE tablename IN ('ccfs_cdr','ccfs_recording_index') AND indexdef LIKE 'CREATE UNIQUE%' ORDER BY tablename",
      );
      expect(keys.rows.map((r) => r.indexdef.replace(/.*\(/, '('))).toEqual([
        '(tenant, call_id, call_id_num)',
        '(tenant, call_id, file_name)',
      ]);
    } finally {
      await pool.end();
    }
  });
});

describe('loadZip', () => {
  it('loads header-less files of both kinds, several per kind, with times in the tenant zone and extra columns kept', async () => {
    const pool = await freshDb();
    try {
      const zip = await makeZip([
        {
          name: '20240301000000000123_call_1.csv',
          data: `${cdr('c1', 1, '2024-03-01 08:00:00', ['x22', 'x23'])}\n${cdr('c1', -1, '2024-03-01 08:00:05')}\n`,
        },
        { name: '20240301000000000123_call_2.csv', data: `${cdr('c2', -1, '2024-03-01 09:00:00')}\n` },
        {
          name: '20240301000000000123_record_1.csv',
          data: `${rec('c1', '/r/c1.wav', '2024-03-01 08:00:00')}\n`,
        },
        {
          name: '20240301000000000123_record_2.csv',
          data: `${rec('c9', '/r/c9.wav', '2024-03-01 10:00:00')}\n`,
        },
      ]);
      const result = await load(pool, zip);
      expect(result.reconciliation).toMatchObject({
        rowsInFiles: 5,
        rowsInserted: 5,
        rowsAlreadyPresent: 0,
        recordRows: 2,
        recordsWithCdr: 1,
        recordCdrShare: 0.5,
        ok: true,
      });
      const row = await pool.query<Record<string, unknown>>(
        "SELECT call_begin, call_begin_at, extra, caller_no FROM ccfs_cdr WHERE call_id = 'c1' AND call_id_num = '1'",
      );
      expect(row.rows[0]!.call_begin).toBe('2024-03-01 08:00:00');
      expect((row.rows[0]!.call_begin_at as Date).toISOString()).toBe('2024-03-01T00:00:00.000Z');
      expect(row.rows[0]!.extra).toEqual({ col_22: 'x22', col_23: 'x23' });
      expect(row.rows[0]!.caller_no).toBe('caller_no');
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_load')).toBe(4);
    } finally {
      await pool.end();
    }
  });

  it('maps columns by header name (BOM, CRLF, reordered, unknown names into extra, missing ones null)', async () => {
    const pool = await freshDb();
    try {
      const header = '\ufeffdeveloper,call_id,call_id_num,call_begin,Satisfaction\r\n';
      const zip = await makeZip([
        { name: 'a_call.csv', data: `${header}d,c1,-1,2024-03-01 00:00:00,5\r\nd,c2,-1,bad time,4\r\n` },
      ]);
      const result = await load(pool, zip);
      expect(result.reconciliation).toMatchObject({ rowsInFiles: 2, rowsInserted: 2, ok: true });
      const rows = await pool.query<Record<string, unknown>>(
        'SELECT call_id, call_begin, call_begin_at, extra, caller_no FROM ccfs_cdr ORDER BY call_id',
      );
      expect(rows.rows.map((r) => [r.call_id, r.call_begin, r.extra, r.caller_no])).toEqual([
        ['c1', '2024-03-01 00:00:00', { Satisfaction: '5' }, null],
        ['c2', 'bad time', { Satisfaction: '4' }, null],
      ]);
      expect((rows.rows[0]!.call_begin_at as Date).toISOString()).toBe('2024-02-29T16:00:00.000Z');
      expect(rows.rows[1]!.call_begin_at).toBeNull();
    } finally {
      await pool.end();
    }
  });

  it('loads an unclosed quote line by line, as many rows as verifyZip counts', async () => {
    const pool = await freshDb();
    try {
      const zip = await makeZip([
        {
          name: 'q_call.csv',
          data: `${cdr('c1', -1, '2024-03-01 00:00:00')}\n"dev,acc,"broken,x,c2\n${cdr('c3', -1, '2024-03-01 00:00:00')}\n`,
        },
      ]);
      const summary = await verifyZip(zip.path);
      const result = await load(pool, zip);
      expect(result.reconciliation.rowsInFiles).toBe(summary.entries[0]!.rows);
      expect(result.reconciliation.ok).toBe(true);
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_cdr')).toBe(summary.entries[0]!.rows);
    } finally {
      await pool.end();
    }
  });

  it('decodes GBK text (bare CR endings) and stores the Chinese text', async () => {
    const pool = await freshDb();
    try {
      // "张三" in GBK: D5C5 C8FD.
      const gbk = Buffer.concat([
        Buffer.from('dev,acc0001,1,agent,c1,'),
        Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]),
        Buffer.from(',callee,,,,,2024-03-01 00:00:00,2024-03-01 00:00:09,2,101,0,0,-1\r'),
      ]);
      const zip = await makeZip([{ name: 'g_call.csv', data: gbk }]);
      const result = await load(pool, zip);
      expect(result.reconciliation).toMatchObject({ rowsInFiles: 1, rowsInserted: 1, ok: true });
      const r = await pool.query<Record<string, unknown>>(
        "SELECT caller_no, call_id_num, vdn_id FROM ccfs_cdr WHERE call_id = 'c1'",
      );
      expect(r.rows[0]).toEqual({ caller_no: '张三', call_id_num: '-1', vdn_id: null });
    } finally {
      await pool.end();
    }
  });

  it('loads a file once: the same file again inserts nothing, an overlapping file inserts only its new rows', async () => {
    const pool = await freshDb();
    try {
      const first = await makeZip([
        {
          name: 'a_call.csv',
          data: `${cdr('c1', -1, '2024-03-01 00:00:00')}\n${cdr('c2', -1, '2024-03-04 00:00:00')}\n`,
        },
      ]);
      // The next chunk repeats the boundary second's call c2 (CC-FS's end time is inclusive).
      const second = await makeZip([
        {
          name: 'b_call.csv',
          data: `${cdr('c2', -1, '2024-03-04 00:00:00')}\n${cdr('c3', -1, '2024-03-05 00:00:00')}\n`,
        },
      ]);
      expect((await load(pool, first)).reconciliation).toMatchObject({
        rowsInserted: 2,
        rowsAlreadyPresent: 0,
      });
      const again = await load(pool, first);
      expect(again.reconciliation).toMatchObject({
        rowsInFiles: 2,
        rowsInserted: 0,
        rowsAlreadyPresent: 2,
        ok: true,
      });
      expect(again.entries[0]!.alreadyLoaded).toBe(true);
      expect((await load(pool, second)).reconciliation).toMatchObject({
        rowsInFiles: 2,
        rowsInserted: 1,
        rowsAlreadyPresent: 1,
        ok: true,
      });
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_cdr')).toBe(3);
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_load')).toBe(2);
    } finally {
      await pool.end();
    }
  });

  it('redoes an entry from scratch after its connection dies mid-COPY: every row once', async () => {
    const pool = await freshDb();
    try {
      const lines = Array.from({ length: 60_000 }, (_, i) => cdr(`c${i}`, -1, '2024-03-01 00:00:00')).join(
        '\n',
      );
      const zip = await makeZip([
        { name: 'a_call.csv', data: `${cdr('first', -1, '2024-03-01 00:00:00')}\n` },
        { name: 'b_call.csv', data: lines },
      ]);
      const victim = await pool.connect();
      const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      victim.on('error', () => undefined);
      let killed = false;
      const summary = await verifyZip(zip.path);
      const failure = await loadZip(victim, {
        path: zip.path,
        sha256: zip.sha256,
        fileName: 'x.zip',
        exportId: 'exp',
        chunk: 0,
        tenant: 'acc0001',
        timeZone: 'UTC',
        expectedRows: Object.fromEntries(summary.entries.map((e) => [e.name, e.rows])),
        onProgress: ({ entry, rows }) => {
          if (!killed && entry === 'b_call.csv' && rows >= 20_000) {
            killed = true;
            void pool.query('SELECT pg_terminate_backend($1)', [pid]);
          }
        },
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      victim.release(true);
      expect(killed).toBe(true);
      expect(failure).toBeInstanceOf(Error);
      // The first entry committed before the kill; the second left nothing behind.
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_cdr')).toBe(1);
      const result = await load(pool, zip, { timeZone: 'UTC' });
      expect(result.entries.map((e) => [e.entry, e.alreadyLoaded, e.rowsInserted])).toEqual([
        ['a_call.csv', true, 0],
        ['b_call.csv', false, 60_000],
      ]);
      expect(await count(pool, 'SELECT count(*) AS n FROM ccfs_cdr')).toBe(60_001);
      expect(await count(pool, 'SELECT count(DISTINCT call_id) AS n FROM ccfs_cdr')).toBe(60_001);
    } finally {
      await pool.end();
    }
  });

  it('counts a recording whose CDR comes later in the same ZIP as having a CDR (calls are loaded first)', async () => {
    const pool = await freshDb();
    try {
      const zip = await makeZip([
        {
          name: 'z_record.csv',
          data: `${rec('c1', '/r/c1.wav', '2024-03-01 08:00:00')}\n${rec('c2', '/r/c2.wav', '2024-03-01 08:00:00')}\n`,
        },
        { name: 'z_call.csv', data: `${cdr('c1', -1, '2024-03-01 08:00:00')}\n` },
      ]);
      const result = await load(pool, zip);
      expect(result.entries.map((e) => e.entry)).toEqual(['z_record.csv', 'z_call.csv']);
      expect(result.reconciliation).toMatchObject({
        rowsInFiles: 3,
        recordRows: 2,
        recordsWithCdr: 1,
        recordCdrShare: 0.5,
        ok: true,
      });
    } finally {
      await pool.end();
    }
  });

  it('counts rows per day of call_begin in the tenant zone, inserted and already present', async () => {
    const pool = await freshDb();
    try {
      // 23:30 in Shanghai on 1 March and 00:30 on 2 March; one row without a valid time.
      const first = await makeZip([
        {
          name: 'a_call.csv',
          data: `${cdr('c1', -1, '2024-03-01 23:30:00')}\n${cdr('c2', -1, '2024-03-02 00:30:00')}\n${cdr('c3', -1, 'never')}\n`,
        },
      ]);
      const second = await makeZip([
        {
          name: 'b_call.csv',
          data: `${cdr('c2', -1, '2024-03-02 00:30:00')}\n${cdr('c4', -1, '2024-03-02 10:00:00')}\n`,
        },
      ]);
      expect((await load(pool, first)).reconciliation.days).toEqual({
        '2024-03-01': { rowsInFiles: 1, rowsInserted: 1, rowsAlreadyPresent: 0 },
        '2024-03-02': { rowsInFiles: 1, rowsInserted: 1, rowsAlreadyPresent: 0 },
        unknown: { rowsInFiles: 1, rowsInserted: 1, rowsAlreadyPresent: 0 },
      });
      expect((await load(pool, second)).reconciliation.days).toEqual({
        '2024-03-02': { rowsInFiles: 2, rowsInserted: 1, rowsAlreadyPresent: 1 },
      });
      // Loaded again: the same days, nothing inserted.
      expect((await load(pool, first)).reconciliation.days).toMatchObject({
        '2024-03-01': { rowsInFiles: 1, rowsInserted: 0, rowsAlreadyPresent: 1 },
      });
    } finally {
      await pool.end();
    }
  });

  it('migrates a database of schema version 1 to the current version, keeping its rows', async () => {
    const url = server.createDatabase(`t${dbCount++}`);
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await pool.query(
        'CREATE TABLE ccfs_schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      for (const sql of MIGRATIONS[0]!.sql) await pool.query(sql);
      await pool.query("INSERT INTO ccfs_schema_version (version, description) VALUES (1, 'v1')");
      await pool.query(
        "INSERT INTO ccfs_load (export_id, chunk, file_name, sha256, entry, kind, tenant, rows_read, rows_inserted, rows_already_present) VALUES ('e', 0, 'f', 'x', 'a_call.csv', 'call', 't', 3, 3, 0)",
      );
      const c = await pool.connect();
      try {
        expect(await migrate(c)).toEqual({ from: 1, to: SCHEMA_VERSION });
      } finally {
        c.release();
      }
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(2);
      const row = await pool.query<{ rows_read: string; days: unknown }>(
        'SELECT rows_read, days FROM ccfs_load',
      );
      expect(row.rows).toEqual([{ rows_read: '3', days: null }]);
    } finally {
      await pool.end();
    }
  });

  it('reports a mismatch when the rows read differ from the manifest count', async () => {
    const pool = await freshDb();
    try {
      const zip = await makeZip([{ name: 'a_call.csv', data: `${cdr('c1', -1, '2024-03-01 00:00:00')}\n` }]);
      const result = await load(pool, zip, { expectedRows: { 'a_call.csv': 2 } });
      expect(result.reconciliation.ok).toBe(false);
      expect(result.reconciliation.mismatches).toEqual(['a_call.csv: 1 rows loaded, the manifest counts 2']);
      expect(LoadMismatchError).toBeDefined();
    } finally {
      await pool.end();
    }
  });
});
