import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CcfsClient } from '../../ccfs/client';
import { DOWNLOAD_BILL_FILE_PATH } from '../../ccfs/protocol';

// Its own file, so that vitest's forks pool gives it a process whose RSS no other test moves.

const TOTAL = 500 * 1024 * 1024;
const FILLER = Buffer.alloc(1024 * 1024, 0x5a);

let server: http.Server;
let dir: string;
let baseUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ccfs-memory-'));
  // A ZIP-looking body generated on the fly, respecting backpressure, so the fake holds no copy.
  server = http.createServer((req, res) => {
    req.resume();
    if (req.url !== DOWNLOAD_BILL_FILE_PATH) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'Application/Octet-stream;charset=UTF-8',
      'content-length': String(TOTAL),
    });
    function* body(): Generator<Buffer> {
      yield Buffer.from('PK\x03\x04');
      let left = TOTAL - 4;
      while (left > 0) {
        const n = Math.min(left, FILLER.length);
        yield n === FILLER.length ? FILLER : FILLER.subarray(0, n);
        left -= n;
      }
    }
    pipeline(Readable.from(body()), res).catch(() => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

it('streams a 500 MB bill file to disk with RSS growing by less than 100 MB', async () => {
  const client = new CcfsClient({ baseUrl, credentials: { ak: 'ak', sk: 'sk' } });
  const dest = join(dir, 'big.zip');
  const before = process.memoryUsage().rss;
  let peak = before;
  let calls = 0;
  const started = performance.now();
  const result = await client.downloadBillFile('20240102_9239cb50a8384bb0ab503441bf089446.zip', dest, {
    onProgress: () => {
      if (++calls % 16 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  peak = Math.max(peak, process.memoryUsage().rss);
  await client.close();
  const growthMb = (peak - before) / 1024 / 1024;
  console.log(
    `downloaded ${TOTAL / 1048576} MB in ${seconds.toFixed(1)} s (${(TOTAL / 1048576 / seconds).toFixed(0)} MB/s); ` +
      `RSS ${(before / 1048576).toFixed(0)} MB → peak ${(peak / 1048576).toFixed(0)} MB (+${growthMb.toFixed(1)} MB)`,
  );
  expect(result.bytes).toBe(TOTAL);
  expect((await stat(dest)).size).toBe(TOTAL);
  expect(calls).toBeGreaterThan(100);
  expect(growthMb).toBeLessThan(100);
  await rm(dest);
});
