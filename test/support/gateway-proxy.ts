import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A reverse proxy as ordinary deployments put in front of the API (nginx `location /gw/ { proxy_pass
 * http://api:3000/; }`): it strips a path prefix and sends the upstream's Host (nginx's default
 * `Host $proxy_host`), optionally with X-Forwarded-Host / X-Forwarded-Prefix. Loopback only, for tests.
 */
export interface GatewayOptions {
  /** Where requests go, e.g. `http://127.0.0.1:3000`. May be set after start (see `setUpstream`). */
  upstream?: string;
  /** Stripped from the path; requests outside it get 404 from the gateway itself. E.g. `/gw`. */
  prefix: string;
  /** Add X-Forwarded-Host (the Host the client sent) and X-Forwarded-Prefix. Default false (nginx's default). */
  forwardedHeaders?: boolean;
}

export interface Gateway {
  /** `http://127.0.0.1:<port>` + prefix: the public URL clients are given. */
  url: string;
  port: number;
  /** Every request forwarded: the path and Host as received and as sent upstream, and the upstream's status. */
  forwarded: Array<{
    path: string;
    host: string | undefined;
    upstreamPath: string;
    upstreamHost: string;
    status: number;
  }>;
  setUpstream(url: string): void;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const prefix = options.prefix.replace(/\/+$/, '');
  let upstream = options.upstream ? new URL(options.upstream) : undefined;
  const forwarded: Gateway['forwarded'] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (
      !upstream ||
      (prefix && path !== prefix && !path.startsWith(`${prefix}/`) && !path.startsWith(`${prefix}?`))
    ) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no route at the gateway');
      return;
    }
    const rest = path.slice(prefix.length);
    const upstreamPath = rest.startsWith('/') ? rest : `/${rest}`;
    const headers: IncomingHttpHeaders = { ...req.headers, host: upstream.host };
    if (options.forwardedHeaders) {
      headers['x-forwarded-host'] = req.headers.host;
      headers['x-forwarded-prefix'] = prefix || '/';
    }
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: upstreamPath, headers },
      (up) => {
        forwarded.push({
          path,
          host: req.headers.host,
          upstreamPath,
          upstreamHost: upstream!.host,
          status: up.statusCode ?? 0,
        });
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    port,
    forwarded,
    setUpstream(url) {
      upstream = new URL(url);
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
