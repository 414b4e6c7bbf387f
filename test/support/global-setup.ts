import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startDevServer, freePort, type DevServer } from '../../dev/temporal-server';
// @ts-expect-error -- plain ESM helper shared with the bootstrap (Node built-ins only, no types)
import { ensureTemporalCli } from '../../scripts/temporal-cli.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCli: string;
  }
}

let server: DevServer | undefined;
let dir: string | undefined;

/** One real Temporal dev server for the whole run; integration tests never skip for want of one. */
export async function setup(project: TestProject): Promise<void> {
  const cli = (ensureTemporalCli as (log?: (l: string) => void) => string)();
  dir = mkdtempSync(join(tmpdir(), 'ccfs-temporal-'));
  server = await startDevServer({
    cli,
    port: await freePort(),
    dbFile: join(dir, 'temporal.db'),
    logFile: join(dir, 'server.log'),
  });
  project.provide('temporalAddress', server.address);
  project.provide('temporalCli', cli);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
