import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../lib/config';
import { temporalConnectionOptions } from '../lib/temporal';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

/**
 * `npm run register-search-attributes`: registers the custom search attributes the workflows set
 * (workflows/search-attributes.ts) on TEMPORAL_NAMESPACE of the cluster at TEMPORAL_ADDRESS (TLS and
 * API key as for the worker). Run it once per namespace before the first worker starts: a workflow
 * that sets an unregistered attribute fails its task. Idempotent: attributes already there with the
 * same type are left alone; one there with another type is an error, named.
 *
 * The Temporal CLI equivalent (`--dry-run` prints it):
 *   temporal operator search-attribute create --namespace NS --name CcfsExportId --type Keyword …
 * Temporal Cloud does not take this call from a namespace's clients: add them with `tcld namespace
 * search-attributes add` or in the Cloud UI, with the same names and types.
 */

type Kind = (typeof SEARCH_ATTRIBUTES)[string];

export interface RegisterResult {
  added: string[];
  present: string[];
}

/** `temporal.api.enums.v1.IndexedValueType` wire values (stable across server versions). */
const INDEXED_VALUE_TYPE: Record<Kind, number> = { Keyword: 2, Datetime: 6, KeywordList: 7 };

export function cliCommand(namespace: string): string {
  const args = Object.entries(SEARCH_ATTRIBUTES).map(([name, kind]) => `--name ${name} --type ${kind}`);
  return `temporal operator search-attribute create --namespace ${namespace} ${args.join(' ')}`;
}

/** Adds whichever of SEARCH_ATTRIBUTES the namespace lacks. */
export async function registerSearchAttributes(
  connection: Connection,
  namespace: string,
): Promise<RegisterResult> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Map<string, number>(
    Object.entries({ ...existing.systemAttributes, ...existing.customAttributes }).map(([k, v]) => [
      k,
      Number(v),
    ]),
  );
  const missing: Record<string, number> = {};
  const present: string[] = [];
  const conflicts: string[] = [];
  for (const [name, kind] of Object.entries(SEARCH_ATTRIBUTES)) {
    const wanted = INDEXED_VALUE_TYPE[kind];
    const have = known.get(name);
    if (have === undefined) missing[name] = wanted;
    else if (have === wanted) present.push(name);
    else conflicts.push(`${name} exists with another type (wanted ${kind})`);
  }
  if (conflicts.length > 0)
    throw new Error(`cannot register search attributes in namespace ${namespace}: ${conflicts.join('; ')}`);
  if (Object.keys(missing).length > 0)
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  return { added: Object.keys(missing), present };
}

async function main(argv: string[]): Promise<void> {
  const config = loadConfig();
  if (argv.includes('--dry-run')) {
    console.log(cliCommand(config.TEMPORAL_NAMESPACE));
    return;
  }
  const connection = await Connection.connect({
    ...temporalConnectionOptions(config),
    connectTimeout: 10_000,
  });
  try {
    const { added, present } = await registerSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
    for (const name of added)
      console.log(`added ${name} (${SEARCH_ATTRIBUTES[name]}) to namespace ${config.TEMPORAL_NAMESPACE}`);
    for (const name of present) console.log(`already registered: ${name} (${SEARCH_ATTRIBUTES[name]})`);
  } finally {
    await connection.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
