import { describe, expect, it } from 'vitest';
import express from 'express';
import pino from 'pino';
import type { Client } from '@temporalio/client';
import { callbackRouter } from '../../api/callback-route';
import { chunkCallbackUrl } from '../../lib/callback-token';
import { ConfigError, loadConfig } from '../../lib/config';

/** Issue 13, item 3: the callback settings, and the callBackURL each routing sends. */

const load = (env: Record<string, string>) => loadConfig(env, '');

describe('callback settings', () => {
  it('defaults to token routing with callbacks expected', () => {
    expect(load({})).toMatchObject({
      CALLBACK_ROUTING: 'token',
      CALLBACK_MODE: 'callback',
      CALLBACK_BASE_URL: 'http://localhost:3000',
    });
  });

  it('reads response-id routing and callback mode none', () => {
    expect(load({ CALLBACK_ROUTING: 'response-id', CALLBACK_MODE: 'none' })).toMatchObject({
      CALLBACK_ROUTING: 'response-id',
      CALLBACK_MODE: 'none',
    });
  });

  it.each([
    ['CALLBACK_ROUTING', 'path'],
    ['CALLBACK_MODE', 'off'],
    ['CALLBACK_BASE_URL', 'ftp://cb.example/'],
    ['CALLBACK_BASE_URL', 'https://cb.example/hook?x=1'],
    ['CALLBACK_BASE_URL', 'not a url'],
  ])('refuses %s=%s and names the key', (key, value) => {
    expect(() => load({ [key]: value })).toThrow(ConfigError);
    expect(() => load({ [key]: value })).toThrow(key);
  });

  it('keeps CALLBACK_BASE_URL as written, trailing slash included', () => {
    expect(load({ CALLBACK_BASE_URL: 'https://10.57.118.171:8000/' }).CALLBACK_BASE_URL).toBe(
      'https://10.57.118.171:8000/',
    );
  });
});

describe('callBackURL of a chunk', () => {
  const key = 'k'.repeat(32);
  it('is exactly CALLBACK_BASE_URL with response-id routing', () => {
    for (const baseUrl of [
      'https://10.57.118.171:8000',
      'https://10.57.118.171:8000/',
      'http://gw:3999/gw/hook',
    ]) {
      expect(chunkCallbackUrl({ baseUrl, key, routing: 'response-id' }, 'ccfs-export/x/chunk-0000')).toBe(
        baseUrl,
      );
    }
  });

  it('is the base URL + /callbacks/ccfs/<token> with token routing, without a double slash', () => {
    const url = chunkCallbackUrl({ baseUrl: 'http://gw:3999/gw/', key }, 'ccfs-export/x/chunk-0000');
    expect(url).toMatch(/^http:\/\/gw:3999\/gw\/callbacks\/ccfs\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
  });
});

describe('fixed callback route', () => {
  const deps = {
    client: {} as Client,
    tokenKey: 'k'.repeat(32),
    verifySignature: true,
    secretFor: () => undefined,
    maxSkewSeconds: 900,
    logger: pino({ level: 'silent' }),
  };
  it('refuses at start-up a base URL whose path belongs to the management API', () => {
    expect(() =>
      callbackRouter({ ...deps, routing: 'response-id', publicBaseUrl: 'https://api.example/exports' }),
    ).toThrow(/management API/);
    expect(() =>
      callbackRouter({ ...deps, routing: 'response-id', publicBaseUrl: 'https://api.example/' }),
    ).not.toThrow();
    expect(() =>
      express().use(
        callbackRouter({ ...deps, routing: 'token', publicBaseUrl: 'https://api.example/exports' }),
      ),
    ).not.toThrow();
  });
});
