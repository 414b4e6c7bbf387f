import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A transparent HTTP proxy in front of the simulator that can answer a request itself the way a
 * gateway or a broken network does: HTTP 429 / 502 / 503 (with Retry-After), or a connection reset
 * before any answer. Headers are passed on unchanged, so auth-v2 signatures (which cover `host`)
 * still verify at the simulator.
 */

export type ProxyAction = 'pass' | 'reset' | { status: number; retryAfterSeconds?: number };

export interface ProxyRecord {
  at: number;
  path: string;
  action: 'pass' | 'reset' | number;
}

export interface FaultProxy {
  url: string;
  /** Every request the proxy saw, in order. */
  records: ProxyRecord[];
  /** Decides what to do with a request: `n` counts requests to that path, from 1. */
  decide: (path: string, n: number) => ProxyAction;
  /** Forgets the records and the counts, and passes everything again. */
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: () => string): Promise<FaultProxy> {
  const counts = new Map<string, number>();
  const proxy: FaultProxy = {
    url: '',
    records: [],
    decide: () => 'pass',
    reset() {
      counts.clear();
      proxy.records.length = 0;
      proxy.decide = () => 'pass';
    },
    close: () => Promise.resolve(),
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const action = proxy.decide(path, n);
    proxy.records.push({ at: Date.now(), path, action: typeof action === 'object' ? action.status : action });
    if (action === 'reset') {
      req.socket.destroy();
      return;
    }
    if (typeof action === 'object') {
      req.resume();
      const headers: Record<string, string> = { 'content-type': 'text/html' };
      if (action.retryAfterSeconds !== undefined) headers['retry-after'] = String(action.retryAfterSeconds);
      res
        .writeHead(action.status, headers)
        .end(`<html><body>${action.status} from the gateway</body></html>`);
      return;
    }
    const upstream = new URL(target());
    const forward = httpRequest(
      { hostname: upstream.hostname, port: upstream.port, method: req.method, path, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return proxy;
}
