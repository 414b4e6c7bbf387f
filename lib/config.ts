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
  // Connection to a real cluster, with the names of Temporal's environment configuration
  // (docs.temporal.io/references/client-environment-configuration). TLS is on when any of these is
  // set; TEMPORAL_TLS=false turns it off, TEMPORAL_TLS=true turns it on with the system's CAs.
  TEMPORAL_TLS: bool.optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: optionalString,
  TEMPORAL_TLS_CLIENT_CERT_DATA: optionalString,
  TEMPORAL_TLS_CLIENT_KEY_PATH: optionalString,
  TEMPORAL_TLS_CLIENT_KEY_DATA: z
    .string()
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: optionalString,
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  TEMPORAL_API_KEY: z
    .string()
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),

  // Required by the worker and the API (requireCcfs), not by the CLI.
  CCFS_BASE_URL: url.optional(),
  /** JSON or YAML file of tenants (AK/SK and time zone per accountId); see lib/tenants.ts. */
  TENANTS_FILE: optionalString,
  CCFS_AK: z.string().min(1).max(128).optional(),
  CCFS_SK: secret.optional(),
  CCFS_CA_FILE: optionalString,
  CCFS_INSECURE_TLS: bool.default(false),
  CCFS_SIGNED_HEADERS: z
    .string()
    .default('content-length;content-type;host')
    .transform((v) =>
      v
        .split(';')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
    ),
  CCFS_REQUEST_TIMEOUT_MS: duration.default(60_000),
  CCFS_VERIFY_CALLBACK_SIGNATURE: bool.default(true),
  CCFS_CALLBACK_MAX_SKEW_SECONDS: z.coerce.number().int().min(0).default(900),
  /** Upper bound of CC-FS calls per second across every worker (Temporal task-queue rate limit). */
  CCFS_MAX_CALLS_PER_SECOND: z.coerce.number().positive().default(5),
  CCFS_MAX_CONCURRENT_CALLS: z.coerce.number().int().positive().default(8),

  /**
   * The URL CC-FS reaches the API at, as CC-FS sees it (through any gateway): callbacks are signed
   * against its host and path as well as against what arrives. Kept as written (no trailing slash
   * dropped): with CALLBACK_ROUTING=response-id it is sent verbatim, and an installation that bound
   * `https://host:8000/` may compare the string.
   */
  CALLBACK_BASE_URL: z
    .url({ protocol: /^https?$/ })
    .refine((v) => !/[?#]/.test(v), 'must not have a query or fragment')
    .default('http://localhost:3000'),
  /**
   * `token`: callBackURL is CALLBACK_BASE_URL + `/callbacks/ccfs/<MACed chunk ID>`. `response-id`: it is
   * exactly CALLBACK_BASE_URL (installations that bind one callback URL) and the API finds the chunk by
   * the callback's responseId through Temporal visibility (search attribute CcfsResponseIds).
   */
  CALLBACK_ROUTING: z.enum(['token', 'response-id']).default('token'),
  /** `callback`: wait for CC-FS's callbacks (and probe). `none`: CC-FS cannot reach the API; probe downloads only. */
  CALLBACK_MODE: z.enum(['callback', 'none']).default('callback'),
  /** Key of the HMAC that makes callback URLs unforgeable; derived from CCFS_SK when unset. */
  CALLBACK_SECRET: z
    .string()
    .min(16)
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),

  API_PORT: port.default(3000),
  API_HOST: z.string().default('0.0.0.0'),
  /** PEM certificate (chain) and key: the API serves HTTPS itself, as CC-FS calls an https callback URL. */
  API_TLS_CERT_FILE: optionalString,
  API_TLS_KEY_FILE: optionalString,
  API_TOKENS: z
    .string()
    .optional()
    .transform((v) =>
      v
        ? v
            .split(',')
            .map((t) => new Secret(t.trim()))
            .filter((t) => t.reveal().length > 0)
        : [],
    ),
  /**
   * `token` (default): without API_TOKENS the management API refuses every request (401). `none`
   * opens it without tokens — for development and tests only, and only when said explicitly.
   */
  API_AUTH: z.enum(['token', 'none']).default('token'),
  WORKER_METRICS_PORT: port.default(9464),
  /**
   * Where the worker's `/metrics` listens: loopback unless set (`0.0.0.0`/`::` for every interface, as
   * a Prometheus in another container needs) — the counters say which tenants export what.
   */
  WORKER_METRICS_HOST: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9.:%-]+$/, 'must be an address or host name')
    .default('127.0.0.1'),
  /** On SIGTERM, how long running activities may finish before they are cancelled and handed back. */
  WORKER_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).default(30),
  /** Prebuilt workflow bundle (`npm run build`); the image sets it, development bundles at start. */
  WORKFLOW_BUNDLE_PATH: optionalString,
  /** On SIGTERM, how long the API lets in-flight requests finish before it closes their connections. */
  API_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).default(10),

  OUTPUT_DIR: z.string().min(1).default('data/exports'),
  // Optional shared copy of every verified ZIP and manifest in an S3-compatible store; credentials
  // come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, roles).
  OUTPUT_S3_BUCKET: optionalString,
  OUTPUT_S3_PREFIX: z
    .string()
    .default('')
    .transform((v) => v.replace(/^\/+|\/+$/g, '')),
  OUTPUT_S3_ENDPOINT: url.optional(),
  OUTPUT_S3_REGION: optionalString,
  /** Path-style URLs (`endpoint/bucket/key`); on by default when OUTPUT_S3_ENDPOINT is set. */
  OUTPUT_S3_FORCE_PATH_STYLE: bool.optional(),
  OUTPUT_S3_PART_SIZE_MB: z.coerce.number().min(5).max(5120).default(16),
  OUTPUT_S3_QUEUE_SIZE: z.coerce.number().int().min(1).max(32).default(4),
  TENANT_TIME_ZONE: timeZone.default('UTC'),

  // Loader (issue 17): when set, every verified chunk is loaded into this PostgreSQL database. The URL
  // may hold a password, so it is a Secret: never logged, never in workflow inputs or histories.
  LOAD_DATABASE_URL: z
    .string()
    .optional()
    .transform((v) => (v ? new Secret(v) : undefined)),
  /** Natural keys as comma-separated columns, for installations whose files differ (lib/loader/schema.ts). */
  LOAD_CDR_KEY: optionalString,
  LOAD_RECORD_KEY: optionalString,

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
});
export type Config = z.infer<typeof EnvSchema>;

/** `  path: message`, one line per issue of a zod error: how every configuration problem is named. */
export function issueLines(error: z.ZodError, whole = '(file)'): string {
  return error.issues.map((i) => `  ${i.path.join('.') || whole}: ${i.message}`).join('\n');
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment (and `.env` when present); throws a ConfigError naming each bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, envFile = '.env'): Config {
  if (env === process.env && envFile && existsSync(envFile)) process.loadEnvFile(envFile);
  // An empty variable counts as unset (compose files pass `${NAME:-}` for every optional setting).
  const parsed = EnvSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')),
    // zod's own messages, named by the issue's path; a key that must be set reads as such, not as
    // "expected string, received undefined". Messages a schema gives itself take precedence.
    { error: (issue) => (issue.input === undefined ? 'is required but not set' : undefined) },
  );
  if (!parsed.success) throw new ConfigError(`invalid configuration:\n${issueLines(parsed.error)}`);
  return parsed.data;
}

export type CcfsConfig = Config & { CCFS_BASE_URL: string };

/**
 * Narrows a config to one with CC-FS settings, naming each missing key: the base URL, and the AK/SK
 * unless a tenants file holds them (then CALLBACK_SECRET keys the callback tokens, unless an SK is set).
 */
export function requireCcfs(config: Config): CcfsConfig {
  const required: Array<keyof Config> = config.TENANTS_FILE
    ? ['CCFS_BASE_URL', ...(config.CCFS_SK ? [] : (['CALLBACK_SECRET'] as const))]
    : ['CCFS_BASE_URL', 'CCFS_AK', 'CCFS_SK'];
  const missing = required.filter((k) => config[k] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n${missing.map((k) => `  ${k}: is required but not set`).join('\n')}`,
    );
  }
  return config as CcfsConfig;
}
