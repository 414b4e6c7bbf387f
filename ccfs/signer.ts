import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * auth-v2 request signing as CC-FS does it (see docs/ccfs-protocol.md §2). Pure functions: the
 * caller decides which bytes are sent, and signs exactly those.
 */

export const AUTH_SCHEME = 'auth-v2';

/** Headers signed by default: the set Huawei's documentation samples sign. */
export const DEFAULT_SIGNED_HEADERS = ['content-length', 'content-type', 'host'] as const;

export function hmacHex(key: string, message: string | Buffer): string {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(message).digest('hex');
}

const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~')
  UNRESERVED[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

/** Percent-encodes every UTF-8 byte except `A-Z a-z 0-9 - . _ ~`, with upper-case hex. */
export function normalize(input: string | Uint8Array): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  let out = '';
  for (const b of bytes) {
    out += UNRESERVED[b] ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

/** `yyyy-MM-ddTHH:mm:ssZ`, UTC, whole seconds. */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface CanonicalInput {
  method: string;
  /** The path as sent, not encoded, without the query. */
  path: string;
  query?: Iterable<[string, string]>;
  /** Header values by lower-case name. */
  headers: Readonly<Record<string, string | undefined>>;
  signedHeaders: readonly string[];
  body: Uint8Array;
}

export function canonicalRequest(input: CanonicalInput): string {
  const lines = [input.method.toUpperCase(), input.path];
  const query = [...(input.query ?? [])].map(([k, v]) => `${normalize(k)}=${normalize(v)}`).sort();
  if (query.length > 0) lines.push(query.join('&'));
  lines.push(input.signedHeaders.join(';'));
  const headerLines = input.signedHeaders.map((name) => {
    const value = input.headers[name];
    if (value === undefined) throw new Error(`signed header "${name}" is missing`);
    return `${normalize(name)}:${normalize(value.trim())}`;
  });
  lines.push(...headerLines.sort());
  lines.push(normalize(input.body));
  return lines.join('\n');
}

export interface Credentials {
  ak: string;
  sk: string;
}

export interface SignInput extends Omit<CanonicalInput, 'signedHeaders'> {
  credentials: Credentials;
  signedHeaders?: readonly string[];
  timestamp: Date;
}

/** Returns the `Authorization` header value for a request. */
export function sign(input: SignInput): string {
  const signedHeaders = [...(input.signedHeaders ?? DEFAULT_SIGNED_HEADERS)]
    .map((h) => h.toLowerCase())
    .sort();
  const prefix = `${AUTH_SCHEME}/${input.credentials.ak}/${formatTimestamp(input.timestamp)}/${signedHeaders.join(';')}`;
  const signingKey = hmacHex(input.credentials.sk, prefix);
  const signature = hmacHex(signingKey, canonicalRequest({ ...input, signedHeaders }));
  return `${prefix}/${signature}`;
}

export interface ParsedAuthorization {
  ak: string;
  timestamp: Date;
  signedHeaders: string[];
  signature: string;
}

const AUTHORIZATION =
  /^auth-v2\/([^/\s]{1,128})\/(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)\/([a-z0-9-]+(?:;[a-z0-9-]+)*)\/([0-9a-f]{64})$/;

export function parseAuthorization(value: string): ParsedAuthorization | undefined {
  const m = AUTHORIZATION.exec(value.trim());
  if (!m) return undefined;
  const [, ak, ts, headers, signature] = m as unknown as [string, string, string, string, string];
  const timestamp = new Date(ts);
  if (Number.isNaN(timestamp.getTime()) || formatTimestamp(timestamp) !== ts) return undefined;
  return { ak, timestamp, signedHeaders: headers.split(';'), signature };
}

export type VerifyResult =
  | { ok: true; ak: string }
  | {
      ok: false;
      reason: 'missing' | 'malformed' | 'unknown-key' | 'stale' | 'missing-signed-header' | 'mismatch';
    };

export interface VerifyInput extends Omit<CanonicalInput, 'signedHeaders'> {
  authorization: string | undefined;
  /** The secret key for an access key, or undefined when the key is unknown. */
  secretFor: (ak: string) => string | undefined;
  now: Date;
  /** Largest accepted distance between the signed timestamp and `now`. */
  maxSkewSeconds: number;
}

/** Verifies an auth-v2 request using the header list named inside its Authorization value. */
export function verify(input: VerifyInput): VerifyResult {
  const result = verifyAs(input, [{ label: 'received' }]);
  return result.ok ? { ok: true, ak: result.ak } : result;
}

/**
 * One form of the request that the sender may have signed: another `host` value and/or another path
 * than what arrived (a gateway rewrote them). Fields left out are taken from the request as received.
 */
export interface SignedForm {
  /** Names the form in logs and metrics (e.g. `received`, `public-url`); never secret. */
  label: string;
  host?: string;
  path?: string;
}

export type VerifyAsResult =
  | { ok: true; ak: string; matched: string }
  | (Extract<VerifyResult, { ok: false }> & {
      tried?: Array<{ label: string; host: string | undefined; path: string }>;
    });

/**
 * {@link verify} against several forms of the request, in the order given (put the received form
 * first: it is the common case and costs one HMAC more than parsing). The signing key is derived once;
 * each distinct canonical request costs one HMAC-SHA256. Returns the label of the first form whose
 * signature matches, or `mismatch` with the forms tried (label, host, path). Protocol §2; gateways:
 * README "Callback routing and gateways".
 */
export function verifyAs(input: VerifyInput, forms: Iterable<SignedForm>): VerifyAsResult {
  if (!input.authorization) return { ok: false, reason: 'missing' };
  const parsed = parseAuthorization(input.authorization);
  if (!parsed) return { ok: false, reason: 'malformed' };
  const sk = input.secretFor(parsed.ak);
  if (sk === undefined) return { ok: false, reason: 'unknown-key' };
  if (Math.abs(input.now.getTime() - parsed.timestamp.getTime()) > input.maxSkewSeconds * 1000) {
    return { ok: false, reason: 'stale' };
  }
  if (parsed.signedHeaders.some((h) => input.headers[h] === undefined)) {
    return { ok: false, reason: 'missing-signed-header' };
  }
  const prefix = `${AUTH_SCHEME}/${parsed.ak}/${formatTimestamp(parsed.timestamp)}/${parsed.signedHeaders.join(';')}`;
  // The header list is used in the order given: a sender that did not sort it signed that order.
  const signingKey = hmacHex(sk, prefix);
  const given = Buffer.from(parsed.signature, 'utf8');
  const signsHost = parsed.signedHeaders.includes('host');
  const seen = new Set<string>();
  const tried: Array<{ label: string; host: string | undefined; path: string }> = [];
  for (const form of forms) {
    const host = signsHost ? (form.host ?? input.headers.host) : input.headers.host;
    const path = form.path ?? input.path;
    // Forms that differ only in a header that is not signed give the same canonical request.
    const key = `${host ?? ''}\n${path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    tried.push({ label: form.label, host, path });
    const canonical = canonicalRequest({
      ...input,
      path,
      headers: { ...input.headers, host },
      signedHeaders: parsed.signedHeaders,
    });
    const expected = Buffer.from(hmacHex(signingKey, canonical), 'utf8');
    if (expected.length === given.length && timingSafeEqual(expected, given))
      return { ok: true, ak: parsed.ak, matched: form.label };
  }
  return { ok: false, reason: 'mismatch', tried };
}
