import type { SignedForm } from '../ccfs/signer';

/**
 * The forms of a callback request that CC-FS may have signed (protocol §2, README "Callback routing
 * and gateways"). CC-FS signs the `host` and path of the callBackURL it was given; a gateway between
 * it and the API may rewrite both (strip a path prefix, send the upstream's Host), and an
 * implementation may sign the host with or without the scheme's default port, or without any port
 * (the seed's own example: callBackURL `https://10.57.118.171:8000`, `Host: 10.57.118.171`).
 */

/** What a callback request carried, as the API received it. */
export interface ReceivedCallback {
  /** The Host header. */
  host: string | undefined;
  /** The request path without the query (e.g. `/` or `/callbacks/ccfs/<token>`). */
  path: string;
  /** First value of `X-Forwarded-Host` / the `host=` of `Forwarded`, when a gateway set one. */
  forwardedHost?: string;
  /** First value of `X-Forwarded-Prefix`, when a gateway set one. */
  forwardedPrefix?: string;
}

/** Labels of the forms, as logged and counted (`ccfs_export_callback_signatures_total{signed_as}`). */
export type SignedAs =
  | 'received'
  | 'received-empty-path'
  | 'forwarded'
  | 'public-url'
  | 'public-url-default-port'
  | 'public-url-no-port'
  | 'public-host'
  | 'public-path';

interface HostVariant {
  host: string;
  label: 'public-url' | 'public-url-default-port' | 'public-url-no-port';
}

/** `/a/b/` → `/a/b`, `/` → `` (so that prefix + path joins without a double slash). */
const trimSlash = (p: string) => p.replace(/\/+$/, '');

function join(prefix: string, path: string): string {
  if (!prefix) return path;
  return path === '/' || path === '' ? prefix : `${prefix}${path.startsWith('/') ? '' : '/'}${path}`;
}

/**
 * Precomputes, once per public URL, the candidate forms; `formsFor(received)` then yields them for one
 * request lazily, the received form first (the common case costs one HMAC). With no public URL only
 * the received and forwarded forms are tried.
 *
 * @param publicBaseUrl CALLBACK_BASE_URL, e.g. `https://gw.example:8443/ccfs`.
 * @param fixedPath with CALLBACK_ROUTING=response-id, the full public path CC-FS posts to (the base
 *   URL's own path, `/` for none), tried as such whatever path arrives.
 */
export function signedForms(
  publicBaseUrl: string | undefined,
  fixedPath?: string,
): (received: ReceivedCallback) => Iterable<SignedForm> {
  const hosts: HostVariant[] = [];
  let prefix = '';
  if (publicBaseUrl) {
    const url = new URL(publicBaseUrl);
    const defaultPort = url.protocol === 'https:' ? '443' : '80';
    // WHATWG URL drops a default port from `host`: `https://h:443` has host `h`.
    hosts.push({ host: url.host, label: 'public-url' });
    hosts.push({
      host: `${url.hostname}:${url.port || defaultPort}`,
      label: url.port ? 'public-url' : 'public-url-default-port',
    });
    hosts.push({ host: url.hostname, label: 'public-url-no-port' });
    prefix = trimSlash(url.pathname);
  }
  const uniqueHosts = hosts.filter((h, i) => hosts.findIndex((o) => o.host === h.host) === i);

  return function* formsFor(received: ReceivedCallback): Iterable<SignedForm> {
    yield { label: 'received' };
    // A URL with no path: Java's URI.getPath() gives "" where the request line says "/".
    if (received.path === '/') yield { label: 'received-empty-path', path: '' };
    if (received.forwardedHost !== undefined || received.forwardedPrefix !== undefined) {
      const host = received.forwardedHost ?? received.host;
      const fwdPrefix = trimSlash(received.forwardedPrefix ?? '');
      yield { label: 'forwarded', host, path: join(fwdPrefix, received.path) };
      if (fwdPrefix) yield { label: 'forwarded', host };
    }
    if (uniqueHosts.length === 0) return;
    const paths = [join(prefix, received.path)];
    if (fixedPath !== undefined) paths.push(fixedPath, fixedPath === '/' ? '' : fixedPath);
    if (paths[0] === '/') paths.push('');
    for (const { host, label } of uniqueHosts) for (const path of paths) yield { label, host, path };
    for (const { host } of uniqueHosts) yield { label: 'public-host', host };
    for (const path of paths) yield { label: 'public-path', path };
  };
}

/** The first value of a header that may be repeated or a comma-separated list. */
function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  const head = v?.split(',')[0]?.trim();
  return head ? head : undefined;
}

/** Reads Host, path and the gateway headers (`X-Forwarded-Host`, `X-Forwarded-Prefix`, `Forwarded: host=`). */
export function receivedCallback(
  headers: Record<string, string | string[] | undefined>,
  path: string,
): ReceivedCallback {
  const forwarded = first(headers.forwarded);
  const forwardedHost =
    first(headers['x-forwarded-host']) ?? /(?:^|;)\s*host="?([^";]+)"?/i.exec(forwarded ?? '')?.[1];
  const forwardedPrefix = first(headers['x-forwarded-prefix']);
  return {
    host: first(headers.host),
    path,
    ...(forwardedHost !== undefined && { forwardedHost }),
    ...(forwardedPrefix !== undefined && { forwardedPrefix }),
  };
}
