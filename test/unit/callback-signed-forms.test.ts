import { describe, expect, it } from 'vitest';
import { receivedCallback, signedForms } from '../../api/callback-signed-forms';
import { sign, verifyAs } from '../../ccfs/signer';

/**
 * Issue 13, item 2: a callback's signature is checked against what CC-FS signed, which a gateway may
 * have rewritten (Host, path prefix) — each form below is signed as CC-FS would, then received as the
 * API would see it behind the gateway.
 */

const AK = 'ak';
const SK = 'sk-for-the-signed-forms-test';
const body = Buffer.from(
  '{"request":{"version":"2.0"},"msgBody":{"responseId":"9239cb50a8384bb0ab503441bf089446","billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip","accountId":""}}',
);
const NOW = new Date('2026-11-29T12:00:00Z');

/** Signs as CC-FS does for `signedHost` + `signedPath`, and verifies as the API does for what arrived. */
function check(opts: {
  publicUrl?: string;
  fixedPath?: string;
  signedHost: string;
  signedPath: string;
  receivedHost: string;
  receivedPath: string;
  extraHeaders?: Record<string, string>;
  signedHeaders?: string[];
  sk?: string;
  receivedBody?: Buffer;
}) {
  const signed = {
    host: opts.signedHost,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': String(body.length),
  };
  const authorization = sign({
    credentials: { ak: AK, sk: opts.sk ?? SK },
    method: 'POST',
    path: opts.signedPath,
    headers: signed,
    body,
    timestamp: NOW,
    ...(opts.signedHeaders && { signedHeaders: opts.signedHeaders }),
  });
  const headers: Record<string, string> = { ...signed, host: opts.receivedHost, ...opts.extraHeaders };
  const forms = signedForms(opts.publicUrl, opts.fixedPath)(receivedCallback(headers, opts.receivedPath));
  return verifyAs(
    {
      authorization,
      method: 'POST',
      path: opts.receivedPath,
      headers,
      body: opts.receivedBody ?? body,
      secretFor: (ak) => (ak === AK ? SK : undefined),
      now: NOW,
      maxSkewSeconds: 900,
    },
    forms,
  );
}

const TOKEN_PATH = '/callbacks/ccfs/abc.def';

describe('callback signature forms', () => {
  it('matches the request as received first', () => {
    const r = check({
      publicUrl: 'http://api.example:3000',
      signedHost: 'api.example:3000',
      signedPath: TOKEN_PATH,
      receivedHost: 'api.example:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'received' });
  });

  it('matches the seed example: callBackURL https://10.57.118.171:8000 signed as Host 10.57.118.171, received with another Host', () => {
    const r = check({
      publicUrl: 'https://10.57.118.171:8000',
      fixedPath: '/',
      signedHost: '10.57.118.171',
      signedPath: '/',
      receivedHost: '127.0.0.1:3000',
      receivedPath: '/',
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url-no-port' });
  });

  it('matches the public host as written in CALLBACK_BASE_URL behind a Host-rewriting gateway', () => {
    const r = check({
      publicUrl: 'https://gw.example:8443',
      signedHost: 'gw.example:8443',
      signedPath: TOKEN_PATH,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url' });
  });

  it('matches a public host signed with the default port spelled out', () => {
    const r = check({
      publicUrl: 'https://gw.example',
      signedHost: 'gw.example:443',
      signedPath: TOKEN_PATH,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url-default-port' });
  });

  it('matches a public host signed without the default port when the base URL spells it out', () => {
    const r = check({
      publicUrl: 'http://gw.example:80',
      signedHost: 'gw.example',
      signedPath: TOKEN_PATH,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url' });
  });

  it('matches the public path prefix + the received path behind a prefix-stripping gateway', () => {
    const r = check({
      publicUrl: 'http://gw:3999/gw',
      signedHost: 'gw:3999',
      signedPath: `/gw${TOKEN_PATH}`,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url' });
  });

  it('matches the full public path of a fixed callback URL whatever path arrives', () => {
    const r = check({
      publicUrl: 'http://gw:3999/gw/hook',
      fixedPath: '/gw/hook',
      signedHost: 'gw:3999',
      signedPath: '/gw/hook',
      receivedHost: 'api:3000',
      receivedPath: '/',
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-url' });
  });

  it('matches the public host with the path as received (a gateway that keeps the prefix)', () => {
    const r = check({
      publicUrl: 'http://gw:3999/gw',
      signedHost: 'gw:3999',
      signedPath: `/gw${TOKEN_PATH}`,
      receivedHost: 'api:3000',
      receivedPath: `/gw${TOKEN_PATH}`,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-host' });
  });

  it('matches the received Host with the public path (a gateway that keeps Host and strips the prefix)', () => {
    const r = check({
      publicUrl: 'http://gw:3999/gw',
      signedHost: 'api:3000',
      signedPath: `/gw${TOKEN_PATH}`,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: true, matched: 'public-path' });
  });

  it('matches X-Forwarded-Host and X-Forwarded-Prefix when a gateway sets them', () => {
    const r = check({
      signedHost: 'edge.example:8443',
      signedPath: `/edge${TOKEN_PATH}`,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
      extraHeaders: { 'x-forwarded-host': 'edge.example:8443', 'x-forwarded-prefix': '/edge' },
    });
    expect(r).toMatchObject({ ok: true, matched: 'forwarded' });
  });

  it('matches the host of a Forwarded header (RFC 7239)', () => {
    const r = check({
      signedHost: 'edge.example',
      signedPath: TOKEN_PATH,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
      extraHeaders: { forwarded: 'for=10.0.0.1;host=edge.example;proto=https' },
    });
    expect(r).toMatchObject({ ok: true, matched: 'forwarded' });
  });

  it('matches an empty path signed for a URL without one (Java URI.getPath() of https://host:port)', () => {
    const r = check({
      publicUrl: 'https://10.57.118.171:8000',
      fixedPath: '/',
      signedHost: '10.57.118.171:8000',
      signedPath: '',
      receivedHost: '10.57.118.171:8000',
      receivedPath: '/',
    });
    expect(r).toMatchObject({ ok: true, matched: 'received-empty-path' });
  });

  it('tries each distinct canonical request once when host is not signed', () => {
    const r = check({
      publicUrl: 'http://gw:3999/gw',
      signedHost: 'whatever',
      signedPath: '/elsewhere',
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
      signedHeaders: ['content-length', 'content-type'],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.tried!.map((t) => t.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths).toEqual([TOKEN_PATH, `/gw${TOKEN_PATH}`]);
  });

  it.each([
    ['a host no form names', { signedHost: 'evil.example:1', signedPath: TOKEN_PATH }],
    ['a path no form names', { signedHost: 'gw:3999', signedPath: `/other${TOKEN_PATH}` }],
    ['another secret key', { signedHost: 'gw:3999', signedPath: `/gw${TOKEN_PATH}`, sk: 'not-the-sk' }],
    [
      'a body changed on the way',
      {
        signedHost: 'gw:3999',
        signedPath: `/gw${TOKEN_PATH}`,
        receivedBody: Buffer.from(body.toString().replace('""', '"x"')),
      },
    ],
  ])('still rejects a signature made for %s, naming what was tried', (_t, opts) => {
    const r = check({
      publicUrl: 'http://gw:3999/gw',
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
      ...opts,
    });
    expect(r).toMatchObject({ ok: false, reason: 'mismatch' });
    if (r.ok) return;
    expect(r.tried?.[0]).toEqual({ label: 'received', host: 'api:3000', path: TOKEN_PATH });
    expect(r.tried?.map((t) => t.label)).toEqual(
      expect.arrayContaining(['public-url', 'public-url-no-port', 'public-host', 'public-path']),
    );
  });

  it('rejects a rewritten form when no public URL is configured', () => {
    const r = check({
      signedHost: 'gw:3999',
      signedPath: `/gw${TOKEN_PATH}`,
      receivedHost: 'api:3000',
      receivedPath: TOKEN_PATH,
    });
    expect(r).toMatchObject({ ok: false, reason: 'mismatch' });
  });
});
