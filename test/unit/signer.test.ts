import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalRequest, hmacHex, normalize, sign, verify } from '../../ccfs/signer';

// The protocol page's test vector (docs: shared/docs/ccfs-protocol.md §2).
const body = Buffer.from(
  '{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}',
);
const vector = {
  credentials: { ak: 'ak', sk: 'sk-example' },
  timestamp: new Date('2018-07-02T02:43:08Z'),
  method: 'POST',
  path: '/CCFS/resource/ccfs/downloadBillFile',
  headers: {
    host: '10.22.26.181:28080',
    'content-type': 'application/json;charset=UTF-8',
    'content-length': '104',
  },
  body,
};

describe('auth-v2 signer', () => {
  it('derives the documented signing key', () => {
    expect(hmacHex('sk-example', 'auth-v2/ak/2018-07-02T02:43:08Z/content-length;content-type;host')).toBe(
      'b83e924a1dc180dfa564717669ba7b019013314bcb97b3938c1f5fec1c66e140',
    );
  });

  it('builds the documented canonical request', () => {
    expect(canonicalRequest({ ...vector, signedHeaders: ['content-length', 'content-type', 'host'] })).toBe(
      [
        'POST',
        '/CCFS/resource/ccfs/downloadBillFile',
        'content-length;content-type;host',
        'content-length:104',
        'content-type:application%2Fjson%3Bcharset%3DUTF-8',
        'host:10.22.26.181%3A28080',
        '%7B%22request%22%3A%7B%22version%22%3A%222.0%22%7D%2C%22msgBody%22%3A%7B%22billFileName%22%3A%2220180702_9239cb50a8384bb0ab503441bf089446.zip%22%7D%7D',
      ].join('\n'),
    );
  });

  it('signs the test vector with three signed headers', () => {
    expect(sign(vector)).toBe(
      'auth-v2/ak/2018-07-02T02:43:08Z/content-length;content-type;host/bfcdf5d44a9ebb79f5c1abf343b348931d927e14ea3b7a3edf703fcd3927b316',
    );
  });

  it('signs the test vector with only host signed', () => {
    expect(sign({ ...vector, signedHeaders: ['host'] })).toBe(
      'auth-v2/ak/2018-07-02T02:43:08Z/host/d4e81fbf8d0fd479ea0b9b0519ab4aa794e49583239ab3f20beb51db6416d300',
    );
  });

  it('encodes reserved characters that encodeURIComponent leaves alone', () => {
    expect(normalize("a!'()*~ é")).toBe('a%21%27%28%29%2A~%20%C3%A9');
  });

  it('adds a sorted canonical query line only when there is a query', () => {
    const base = {
      method: 'get',
      path: '/p',
      headers: { host: 'h' },
      signedHeaders: ['host'],
      body: Buffer.alloc(0),
    };
    expect(canonicalRequest(base).split('\n')).toEqual(['GET', '/p', 'host', 'host:h', '']);
    expect(
      canonicalRequest({
        ...base,
        query: [
          ['b', '2 3'],
          ['a', '1'],
        ],
      }).split('\n')[2],
    ).toBe('a=1&b=2%203');
  });
});

describe('auth-v2 verification', () => {
  const now = vector.timestamp;
  const verifyVector = (overrides: Partial<Parameters<typeof verify>[0]>) =>
    verify({
      ...vector,
      authorization: sign(vector),
      secretFor: (ak) => (ak === 'ak' ? 'sk-example' : undefined),
      now,
      maxSkewSeconds: 900,
      ...overrides,
    });

  it('accepts the signed test vector', () => {
    expect(verifyVector({})).toEqual({ ok: true, ak: 'ak' });
  });

  it('rejects a missing, malformed, unknown-key, stale or incomplete request', () => {
    expect(verifyVector({ authorization: undefined })).toMatchObject({ reason: 'missing' });
    expect(verifyVector({ authorization: 'Bearer x' })).toMatchObject({ reason: 'malformed' });
    expect(verifyVector({ secretFor: () => undefined })).toMatchObject({ reason: 'unknown-key' });
    expect(verifyVector({ now: new Date(now.getTime() + 901_000) })).toMatchObject({ reason: 'stale' });
    expect(verifyVector({ headers: { host: vector.headers.host } })).toMatchObject({
      reason: 'missing-signed-header',
    });
    expect(verifyVector({ body: Buffer.from('{}') })).toMatchObject({ reason: 'mismatch' });
  });

  const header = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() === s && s.length > 0);
  const request = fc.record({
    ak: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/),
    sk: fc.string({ minLength: 1, maxLength: 64 }),
    body: fc.uint8Array({ maxLength: 512 }),
    host: header,
    contentType: header,
    seconds: fc.integer({ min: 0, max: 4_000_000_000 }),
  });

  it('round-trips sign → verify for random bodies and headers', () => {
    fc.assert(
      fc.property(request, (r) => {
        const timestamp = new Date(r.seconds * 1000);
        const req = {
          method: 'POST',
          path: '/CCFS/resource/ccfs/queryBillData',
          headers: { host: r.host, 'content-type': r.contentType, 'content-length': String(r.body.length) },
          body: r.body,
        };
        const authorization = sign({ ...req, credentials: { ak: r.ak, sk: r.sk }, timestamp });
        const result = verify({
          ...req,
          authorization,
          secretFor: () => r.sk,
          now: timestamp,
          maxSkewSeconds: 0,
        });
        expect(result).toEqual({ ok: true, ak: r.ak });
      }),
    );
  });

  it('fails verification when any one byte of the body, a header or the signature changes', () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, position, delta) => {
        const timestamp = new Date(r.seconds * 1000);
        const headers = {
          host: r.host,
          'content-type': r.contentType,
          'content-length': String(r.body.length),
        };
        const base: { method: string; path: string; headers: Record<string, string>; body: Uint8Array } = {
          method: 'POST',
          path: '/x',
          headers,
          body: r.body,
        };
        const authorization = sign({ ...base, credentials: { ak: r.ak, sk: r.sk }, timestamp });
        const check = (changes: Partial<typeof base> & { authorization?: string }) =>
          verify({
            ...base,
            authorization,
            ...changes,
            secretFor: () => r.sk,
            now: timestamp,
            maxSkewSeconds: 0,
          }).ok;

        const flip = (bytes: Uint8Array): Uint8Array => {
          const copy = new Uint8Array(bytes);
          const i = position % copy.length;
          copy[i] = (copy[i]! + delta) % 256;
          return copy;
        };
        if (r.body.length > 0) expect(check({ body: flip(r.body) })).toBe(false);
        const hostBytes = Buffer.from(flip(Buffer.from(r.host, 'utf8'))).toString('latin1');
        if (hostBytes.trim() !== r.host)
          expect(check({ headers: { ...headers, host: hostBytes } })).toBe(false);
        const sig = authorization.slice(-64);
        const i = position % 64;
        const swapped = sig[i] === '0' ? '1' : '0';
        expect(
          check({
            authorization: authorization.slice(0, -64) + sig.slice(0, i) + swapped + sig.slice(i + 1),
          }),
        ).toBe(false);
      }),
    );
  });
});
