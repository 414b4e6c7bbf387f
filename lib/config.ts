import { existsSync } from 'node:fs';
import { z } from 'zod';
import { isValidTimeZone } from '../domain/wall-time';

/**
 * Every setting of the worker, the API and the CLI: one schema over the environment, parsed once at
 * start-up. A bad or missing key fails fast and is named. Secrets are wrapped so that they cannot be
 * logged or serialised by accident.
 */

export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[redacted]';
  }
}

const secret = z
  .string()
  .min(1)
  .transform((v) => new Secret(v));
const port = z.coerce.number().int().min(0).max(65535);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const duration = z.coerce.number().int().positive();
const timeZone = z.string().refine(isValidTimeZone, 'must be an IANA time zone such as Asia/Shanghai');
const url = z.url().transform((v) => v.replace(/\/+$/, ''));
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

export const EnvSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('ccfs-export'),
  TEMPORAL_UI_URL: url.default('http://localhost:8233'),
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  TEMPORAL_API_KEY: z
    .string()
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),

  // Required by the worker and the API (requireCcfs), not by the CLI.
  CCFS_BASE_URL: url.optional(),
  CCFS_AK: z.string().min(1).max(128).optional(),
  CCFS_SK: secret.optional(),
  CCFS_CA_FILE: optionalString,
  CCFS_INSECURE_TLS: bool.default(false),
  CCFS_SIGNED_HEADERS: z
    .string()
    .default('content-length;content-type;host')
    .transform((v) => v.split(';').map((h) => h.trim().toLowerCase()).filter(Boolean)),
  CCFS_REQUEST_TIMEOUT_MS: duration.default(60_000),
  CCFS_VERIFY_CALLBACK_SIGNATURE: bool.default(true),
  CCFS_CALLBACK_MAX_SKEW_SECONDS: z.coerce.number().int().min(0).default(900),
  /** Upper bound of CC-FS calls per second across every worker (Temporal task-queue rate limit). */
  CCFS_MAX_CALLS_PER_SECOND: z.coerce.number().positive().default(5),
  CCFS_MAX_CONCURRENT_CALLS: z.coerce.number().int().positive().default(8),

  CALLBACK_BASE_URL: url.default('http://localhost:3000'),
  /** Key of the HMAC that makes callback URLs unforgeable; derived from CCFS_SK when unset. */
  CALLBACK_SECRET: z
    .string()
    .min(16)
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),

  API_PORT: port.default(3000),
  API_HOST: z.string().default('0.0.0.0'),
  API_TOKENS: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',').map((t) => new Secret(t.trim())).filter((t) => t.reveal().length > 0) : [])),
  WORKER_METRICS_PORT: port.default(9464),

  OUTPUT_DIR: z.string().min(1).default('data/exports'),
  TENANT_TIME_ZONE: timeZone.default('UTC'),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
});
export type Config = z.infer<typeof EnvSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment (and `.env` when present); throws a ConfigError naming each bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, envFile = '.env'): Config {
  if (env === process.env && envFile && existsSync(envFile)) process.loadEnvFile(envFile);
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = i.path.join('.');
      const missing = i.code === 'invalid_type' && env[key] === undefined;
      return `  ${key}: ${missing ? 'is required but not set' : i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

export type CcfsConfig = Config & { CCFS_BASE_URL: string; CCFS_AK: string; CCFS_SK: Secret };

/** Narrows a config to one with CC-FS settings, naming each missing key. */
export function requireCcfs(config: Config): CcfsConfig {
  const missing = (['CCFS_BASE_URL', 'CCFS_AK', 'CCFS_SK'] as const).filter((k) => config[k] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(`invalid configuration:\n${missing.map((k) => `  ${k}: is required but not set`).join('\n')}`);
  }
  return config as CcfsConfig;
}
