import type { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

/** `temporal.api.enums.v1.IndexedValueType` wire values of the types the attributes use (stable across servers). */
const INDEXED_VALUE_TYPE: Record<(typeof SEARCH_ATTRIBUTES)[string], number> = {
  Keyword: 2,
  Datetime: 6,
  KeywordList: 7,
};

/** What listing a namespace's search attributes needs: a client Connection or a worker's NativeConnection. */
export interface SearchAttributeLister {
  operatorService: {
    listSearchAttributes(
      request: temporal.api.operatorservice.v1.IListSearchAttributesRequest,
    ): Promise<temporal.api.operatorservice.v1.IListSearchAttributesResponse>;
  };
}

/**
 * The namespace cannot take this product's workflows: it lacks attributes the workflows set (or has
 * them with another type), or does not exist. The message names what is missing and what to run.
 */
export class SearchAttributesMissingError extends Error {
  override readonly name = 'SearchAttributesMissingError';
  constructor(
    readonly namespace: string,
    readonly missing: string[],
    message?: string,
  ) {
    super(
      message ??
        `namespace ${namespace} lacks the search attributes the workflows set: ${missing.join(', ')}. ` +
          `Register them with \`npm run register-search-attributes\` (same TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE as this process; ` +
          '`npm run register-search-attributes -- --dry-run` prints the Temporal CLI command; on Temporal Cloud add them with tcld or in the Cloud UI), then start again',
    );
  }
}

/** gRPC status of a failed call, from the client's or the native connection's error. */
function grpcCode(err: unknown): number | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/**
 * Which of SEARCH_ATTRIBUTES (workflows/search-attributes.ts) `namespace` lacks, as `Name (Type)`, an
 * attribute of another type counted as missing (`Name (Type; the namespace has it as another type)`).
 * Throws what the server answered when it cannot be asked (unreachable, no such namespace, no permission).
 */
export async function missingSearchAttributes(
  connection: SearchAttributeLister,
  namespace: string,
): Promise<string[]> {
  const listed = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Map(
    Object.entries({ ...listed.systemAttributes, ...listed.customAttributes }).map(([k, v]) => [
      k,
      Number(v),
    ]),
  );
  const missing: string[] = [];
  for (const [name, kind] of Object.entries(SEARCH_ATTRIBUTES)) {
    const have = known.get(name);
    if (have === undefined) missing.push(`${name} (${kind})`);
    else if (have !== INDEXED_VALUE_TYPE[kind])
      missing.push(`${name} (${kind}; the namespace has it as another type)`);
  }
  return missing;
}

/** What the start-up check found: `checked: false` when the server does not let this client list attributes. */
export type SearchAttributeCheck = { checked: true } | { checked: false; reason: string };

/**
 * Start-up check of the worker and the API: without the attributes, the first export start or child
 * start fails with a gRPC error and scheduled runs get stuck; refusing to start says why at once.
 * Throws SearchAttributesMissingError naming every missing attribute and the command that registers
 * them (or naming a namespace that does not exist). A server that refuses the listing itself
 * (PERMISSION_DENIED, UNIMPLEMENTED: some managed clusters) answers `checked: false`, for a warning;
 * anything else (Temporal unreachable) is thrown as it came, for the caller to retry.
 */
export async function requireSearchAttributes(
  connection: SearchAttributeLister,
  namespace: string,
): Promise<SearchAttributeCheck> {
  let missing: string[];
  try {
    missing = await missingSearchAttributes(connection, namespace);
  } catch (err) {
    const code = grpcCode(err);
    if (code === 5)
      throw new SearchAttributesMissingError(
        namespace,
        [],
        `namespace ${namespace} does not exist on this Temporal server (TEMPORAL_NAMESPACE); create it, then run \`npm run register-search-attributes\``,
      );
    if (code === 7 || code === 12)
      return { checked: false, reason: err instanceof Error ? err.message : String(err) };
    throw err;
  }
  if (missing.length > 0) throw new SearchAttributesMissingError(namespace, missing);
  return { checked: true };
}
