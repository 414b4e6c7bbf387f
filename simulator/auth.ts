import type { Request } from 'express';
import { type VerifyResult, verify } from '../ccfs/signer';

/** auth-v2 verification and the IP lock CC-FS applies after repeated bad signatures (protocol §2). */

const REASONS: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** The Spring Boot error body CC-FS answers 401/403/500 with. */
export function springError(status: number, path: string, now: Date): Record<string, unknown> {
  return {
    timestamp: now.toISOString(),
    status,
    error: REASONS[status] ?? 'Error',
    message: 'No message available',
    path,
  };
}

export function headerMap(req: Request): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export function verifyRequest(
  req: Request,
  body: Buffer,
  secretFor: (ak: string) => string | undefined,
  now: Date,
  skewSeconds: number,
): VerifyResult {
  return verify({
    method: req.method,
    path: req.path,
    query: new URLSearchParams(req.originalUrl.split('?')[1] ?? ''),
    headers: headerMap(req),
    body,
    authorization: req.headers.authorization,
    secretFor,
    now,
    maxSkewSeconds: skewSeconds,
  });
}

/** Counts consecutive failures per IP; at the threshold the IP is locked for a while. */
export class IpLock {
  private readonly failures = new Map<string, number>();
  private readonly lockedUntil = new Map<string, number>();
  totalFailures = 0;

  constructor(
    private readonly threshold: () => number,
    private readonly durationMs: () => number,
  ) {}

  isLocked(ip: string, nowMs: number): boolean {
    const until = this.lockedUntil.get(ip);
    if (until === undefined) return false;
    if (nowMs < until) return true;
    this.lockedUntil.delete(ip);
    this.failures.delete(ip);
    return false;
  }

  fail(ip: string, nowMs: number): void {
    this.totalFailures++;
    const n = (this.failures.get(ip) ?? 0) + 1;
    this.failures.set(ip, n);
    if (n >= this.threshold()) this.lockedUntil.set(ip, nowMs + this.durationMs());
  }

  succeed(ip: string): void {
    this.failures.delete(ip);
  }

  locked(nowMs: number): string[] {
    return [...this.lockedUntil.entries()].filter(([, until]) => nowMs < until).map(([ip]) => ip);
  }

  reset(): void {
    this.failures.clear();
    this.lockedUntil.clear();
    this.totalFailures = 0;
  }
}
