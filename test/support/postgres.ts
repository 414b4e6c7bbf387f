import { type PrivatePostgres, startPostgres as start } from '../../scripts/postgres.mjs';

/** A private PostgreSQL cluster (Debian's server, started by scripts/postgres.mjs) for one test file. */
export type PostgresServer = PrivatePostgres;

/** Starts a throw-away cluster on a free loopback port; the caller stops it. */
export function startPostgres(): Promise<PostgresServer> {
  return start();
}
