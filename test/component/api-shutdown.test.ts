import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/temporal-server';
import { startService, type ServiceProcess } from '../support/processes';

/**
 * The API process on SIGTERM: it stops accepting connections at once, lets a request that is already
 * in flight finish (here one whose body is still arriving), then exits 0. Temporal is not needed: the
 * API connects lazily, and the request fails validation before it would reach Temporal.
 */

let api: ServiceProcess | undefined;
afterEach(async () => {
  await api?.stop('SIGKILL');
});

function rawRequest(port: number, head: string): Promise<{ socket: Socket; response: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      const response = new Promise<string>((res, rej) => {
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => res(text));
        socket.on('error', rej);
      });
      resolve({ socket, response });
    });
    socket.once('error', reject);
  });
}

describe('API shutdown', () => {
  it('finishes a request in flight after SIGTERM, refuses new connections, and exits 0', async () => {
    const port = await freePort();
    api = await startService('api', {
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      CCFS_BASE_URL: 'http://127.0.0.1:1',
      CCFS_AK: 'ak',
      CCFS_SK: 'sk-shutdown-test',
      API_PORT: String(port),
      API_HOST: '127.0.0.1',
      API_SHUTDOWN_GRACE_SECONDS: '20',
    });
    const body = JSON.stringify({ from: '2024-03-01 00:00:00', to: '2024-02-01 00:00:00', dataType: 'call' });
    const half = Math.floor(body.length / 2);
    const { socket, response } = await rawRequest(
      port,
      `POST /exports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, half)}`,
    );

    api.child.kill('SIGTERM');
    await api.waitForLog('api shutting down: draining in-flight requests');
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    socket.write(body.slice(half));

    const text = await response;
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).toContain('"to"');
    expect(await api.exited).toEqual({ code: 0, signal: null });
  });
});
