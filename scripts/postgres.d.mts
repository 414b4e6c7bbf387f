/** Types of scripts/postgres.mjs (plain JS because the bootstrap runs it before `npm ci`). */
export interface PrivatePostgres {
  url: string;
  port: number;
  dir: string;
  bin: string;
  createDatabase(name: string): string;
  stop(): void;
}
export function findPostgresBin(): string | undefined;
export function ensurePostgres(log?: (line: string) => void): void;
export function startPostgres(options?: { parent?: string; port?: number }): Promise<PrivatePostgres>;
