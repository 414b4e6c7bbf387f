import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { callbackKey, callbackUrl, createCallbackToken, readCallbackToken } from '../../lib/callback-token';
import { chunkWorkflowId } from '../../workflows/definitions';

const KEY = callbackKey(undefined, 'sk-for-the-token-tests');
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const workflowIds = fc.oneof(
  fc
    .tuple(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/), fc.nat(9999))
    .map(([id, i]) => chunkWorkflowId(id, i)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
);

describe('callback routing token', () => {
  it('names the workflow it was made for, for any workflow ID', () => {
    fc.assert(
      fc.property(workflowIds, (id) => {
        expect(readCallbackToken(KEY, createCallbackToken(KEY, id))).toBe(id);
      }),
    );
  });

  it('is URL-safe: the callback URL path holds the token unescaped', () => {
    fc.assert(
      fc.property(workflowIds, (id) => {
        const url = callbackUrl('https://cb.example:8443', KEY, id);
        expect(new URL(url).pathname).toBe(`/callbacks/ccfs/${createCallbackToken(KEY, id)}`);
      }),
    );
  });

  it('never verifies a random string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (token) => {
        expect(readCallbackToken(KEY, token)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('never verifies a well-formed token with a guessed MAC', () => {
    const mac = fc.string({ unit: fc.constantFrom(...B64URL), minLength: 22, maxLength: 22 });
    fc.assert(
      fc.property(workflowIds, mac, (id, guess) => {
        const token = `${Buffer.from(id, 'utf8').toString('base64url')}.${guess}`;
        fc.pre(token !== createCallbackToken(KEY, id));
        expect(readCallbackToken(KEY, token)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('never verifies a token made with another key', () => {
    fc.assert(
      fc.property(workflowIds, fc.string({ minLength: 1 }), (id, otherKey) => {
        fc.pre(otherKey !== KEY);
        expect(readCallbackToken(KEY, createCallbackToken(otherKey, id))).toBeUndefined();
      }),
    );
  });

  it('fails when any single character of a valid token is changed', () => {
    fc.assert(
      fc.property(
        workflowIds,
        fc.nat(),
        fc.constantFrom(...B64URL, '.', '=', '%', '/', ' '),
        (id, at, replacement) => {
          const token = createCallbackToken(KEY, id);
          const i = at % token.length;
          fc.pre(token[i] !== replacement);
          const flipped = token.slice(0, i) + replacement + token.slice(i + 1);
          expect(readCallbackToken(KEY, flipped)).toBeUndefined();
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('fails when the token is cut, extended or has its halves swapped', () => {
    fc.assert(
      fc.property(
        workflowIds,
        fc.string({ unit: fc.constantFrom(...B64URL), minLength: 1, maxLength: 4 }),
        (id, extra) => {
          const token = createCallbackToken(KEY, id);
          const [name, mac] = token.split('.') as [string, string];
          for (const variant of [
            token.slice(0, -1),
            token.slice(1),
            `${token}${extra}`,
            `${extra}${token}`,
            `${mac}.${name}`,
            `${name}${extra}.${mac}`,
          ]) {
            expect(readCallbackToken(KEY, variant), variant).toBeUndefined();
          }
        },
      ),
    );
  });

  it('does not move to another chunk: a token for chunk 0 never names chunk 1', () => {
    const t0 = createCallbackToken(KEY, chunkWorkflowId('e', 0));
    const t1 = createCallbackToken(KEY, chunkWorkflowId('e', 1));
    const spliced = `${t1.split('.')[0]}.${t0.split('.')[1]}`;
    expect(readCallbackToken(KEY, spliced)).toBeUndefined();
  });

  it('derives a key from the SK that is neither the SK nor equal across SKs, and prefers CALLBACK_SECRET', () => {
    expect(callbackKey(undefined, 'sk-a')).not.toContain('sk-a');
    expect(callbackKey(undefined, 'sk-a')).not.toBe(callbackKey(undefined, 'sk-b'));
    expect(callbackKey('a-dedicated-callback-secret', 'sk-a')).toBe('a-dedicated-callback-secret');
  });
});
