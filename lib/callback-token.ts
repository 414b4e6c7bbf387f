import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The callback URL names the chunk workflow to signal, so CC-FS's callback reaches it without any
 * database. The name is MACed with a server-side key: guessing or altering a workflow ID gets
 * nowhere, and the token carries nothing secret itself.
 */

const MAC_BYTES = 16;

function mac(key: string, workflowId: string): Buffer {
  return createHmac('sha256', key).update(`ccfs-callback:${workflowId}`).digest().subarray(0, MAC_BYTES);
}

export function createCallbackToken(key: string, workflowId: string): string {
  return `${Buffer.from(workflowId, 'utf8').toString('base64url')}.${mac(key, workflowId).toString('base64url')}`;
}

/** The workflow ID a token names, or undefined when the token is malformed or forged. */
export function readCallbackToken(key: string, token: string): string | undefined {
  const match = /^([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{22})$/.exec(token);
  if (!match) return undefined;
  const workflowId = Buffer.from(match[1]!, 'base64url').toString('utf8');
  const given = Buffer.from(match[2]!, 'base64url');
  // Only the canonical encoding: base64 leaves spare bits in a last character, and a token must
  // have exactly one spelling (so that changing any character of it fails).
  if (
    Buffer.from(workflowId, 'utf8').toString('base64url') !== match[1] ||
    given.toString('base64url') !== match[2]
  )
    return undefined;
  const expected = mac(key, workflowId);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  return workflowId;
}

/** The callback key: CALLBACK_SECRET, or one derived from the SK so a single secret suffices. */
export function callbackKey(callbackSecret: string | undefined, sk: string): string {
  return callbackSecret ?? createHmac('sha256', sk).update('ccfs-export callback token key v1').digest('hex');
}

export const CALLBACK_ROUTE = '/callbacks/ccfs';

/** The token route's callBackURL: the base URL (trailing slashes dropped) + `/callbacks/ccfs/<token>`. */
export function callbackUrl(baseUrl: string, key: string, workflowId: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${CALLBACK_ROUTE}/${createCallbackToken(key, workflowId)}`;
}

/** How CC-FS's callbacks find their chunk (CALLBACK_ROUTING): a MACed token in the path, or the responseId. */
export type CallbackRouting = 'token' | 'response-id';
/** Whether the workflow waits for callbacks (CALLBACK_MODE); `none` relies on probing downloads only. */
export type CallbackMode = 'callback' | 'none';

/**
 * The callBackURL a chunk workflow sends with queryBillData. `token`: {@link callbackUrl}. `response-id`:
 * the base URL exactly as configured, the one URL an installation has bound (routing is by responseId).
 */
export function chunkCallbackUrl(
  callback: { baseUrl: string; key: string; routing?: CallbackRouting },
  workflowId: string,
): string {
  return callback.routing === 'response-id'
    ? callback.baseUrl
    : callbackUrl(callback.baseUrl, callback.key, workflowId);
}
