import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isValidTimeZone } from '../domain/wall-time';
import { callbackKey } from './callback-token';
import { ConfigError, issueLines, Secret, type Config } from './config';

/**
 * Several CC-FS tenants in one deployment. An export's tenant is its `accountId` filter (or
 * `default` without one); the tenants file maps each tenant to its own AK/SK, time zone and, when
 * they differ, CC-FS base URL. The SK stays in configuration: inline, in a file (a mounted secret)
 * or in a named environment variable; it never reaches a workflow argument, a history or a log.
 *
 * ```yaml
 * tenants:
 *   acc0001: { ak: AK1, skFile: /run/secrets/acc0001-sk, timeZone: Asia/Shanghai }
 *   acc0002: { ak: AK2, skEnv: ACC0002_SK, timeZone: Europe/Berlin }
 * default: acc0001   # optional: the tenant of exports that name no accountId
 * ```
 *
 * Without TENANTS_FILE there is one tenant, `default`, from CCFS_AK/CCFS_SK/TENANT_TIME_ZONE, and
 * every export uses it whatever its accountId (the single-tenant behaviour).
 */

export const DEFAULT_TENANT = 'default';

const TenantId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-"');

const TenantEntry = z
  .object({
    ak: z.string().min(1).max(128),
    sk: z.string().min(1).optional(),
    skFile: z.string().min(1).optional(),
    skEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    timeZone: z.string().refine(isValidTimeZone, 'must be an IANA time zone such as Asia/Shanghai'),
    baseUrl: z
      .url()
      .transform((v) => v.replace(/\/+$/, ''))
      .optional(),
  })
  .strict()
  .refine((t) => [t.sk, t.skFile, t.skEnv].filter((v) => v !== undefined).length === 1, {
    message: 'needs exactly one of sk, skFile, skEnv',
  });

export const TenantsFile = z
  .object({
    tenants: z
      .record(TenantId, TenantEntry)
      .refine((t) => Object.keys(t).length > 0, 'must name at least one tenant'),
    default: TenantId.optional(),
  })
  .strict()
  .superRefine((file, ctx) => {
    if (file.default !== undefined && !(file.default in file.tenants)) {
      ctx.addIssue({
        code: 'custom',
        path: ['default'],
        message: `names no tenant of this file ("${file.default}")`,
      });
    }
  });
export type TenantsFile = z.infer<typeof TenantsFile>;

export interface Tenant {
  id: string;
  ak: string;
  sk: Secret;
  timeZone: string;
  /** CC-FS base URL of this tenant; CCFS_BASE_URL when unset. */
  baseUrl?: string;
}

export class UnknownTenantError extends Error {
  override readonly name = 'UnknownTenantError';
  constructor(readonly tenant: string) {
    super(`no tenant "${tenant}" is configured (TENANTS_FILE)`);
  }
}

export class Tenants {
  readonly #byId: Map<string, Tenant>;
  readonly #defaultId: string | undefined;
  /** Single-tenant mode: every export uses this one, whatever its accountId. */
  readonly #only: Tenant | undefined;

  private constructor(tenants: Tenant[], options: { defaultId?: string; single?: boolean }) {
    this.#byId = new Map(tenants.map((t) => [t.id, t]));
    this.#defaultId = options.defaultId;
    this.#only = options.single ? tenants[0] : undefined;
  }

  /** One tenant for every export (no tenants file). */
  static single(tenant: Omit<Tenant, 'id'>): Tenants {
    return new Tenants([{ id: DEFAULT_TENANT, ...tenant }], { single: true });
  }

  /** From a parsed tenants file; `env` resolves `skEnv`, `readFile` resolves `skFile`. */
  static fromFile(
    file: TenantsFile,
    options: { env?: NodeJS.ProcessEnv; readFile?: (path: string) => string; source?: string } = {},
  ): Tenants {
    const env = options.env ?? process.env;
    const read = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
    const where = options.source ?? 'TENANTS_FILE';
    const problems: string[] = [];
    const tenants: Tenant[] = [];
    for (const [id, entry] of Object.entries(file.tenants)) {
      let sk: string | undefined = entry.sk;
      if (entry.skEnv !== undefined) {
        sk = env[entry.skEnv];
        if (!sk) problems.push(`tenants.${id}.skEnv: environment variable ${entry.skEnv} is not set`);
      } else if (entry.skFile !== undefined) {
        try {
          sk = read(entry.skFile).trim();
        } catch (err) {
          problems.push(
            `tenants.${id}.skFile: cannot read ${entry.skFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          );
        }
        if (sk === '') problems.push(`tenants.${id}.skFile: ${entry.skFile} is empty`);
      }
      if (sk)
        tenants.push({
          id,
          ak: entry.ak,
          sk: new Secret(sk),
          timeZone: entry.timeZone,
          baseUrl: entry.baseUrl,
        });
    }
    // Callbacks are verified by the AK they name, so one AK must always mean one SK.
    const skByAk = new Map<string, { id: string; sk: string }>();
    for (const t of tenants) {
      const seen = skByAk.get(t.ak);
      if (seen && seen.sk !== t.sk.reveal())
        problems.push(`tenants.${t.id}.ak: tenant ${seen.id} has the same AK with another SK`);
      skByAk.set(t.ak, { id: t.id, sk: t.sk.reveal() });
    }
    if (problems.length > 0)
      throw new ConfigError(`invalid tenants in ${where}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    return new Tenants(tenants, { defaultId: file.default });
  }

  /** Reads and validates a tenants file: `.yaml`/`.yml` as YAML, anything else as JSON. */
  static load(path: string, env: NodeJS.ProcessEnv = process.env): Tenants {
    return Tenants.fromFile(readTenantsFile(path), { env, source: path });
  }

  /**
   * The deployment's tenants: TENANTS_FILE when set (plus CCFS_AK/CCFS_SK as tenant `default` when
   * both are set and the file has no `default`), otherwise the single tenant from CCFS_AK/CCFS_SK.
   */
  static fromConfig(config: Config, env: NodeJS.ProcessEnv = process.env): Tenants {
    const legacy =
      config.CCFS_AK && config.CCFS_SK
        ? { ak: config.CCFS_AK, sk: config.CCFS_SK, timeZone: config.TENANT_TIME_ZONE }
        : undefined;
    if (!config.TENANTS_FILE) {
      if (!legacy)
        throw new ConfigError(
          'invalid configuration:\n  CCFS_AK, CCFS_SK: are required when TENANTS_FILE is not set',
        );
      return Tenants.single(legacy);
    }
    const fromFile = Tenants.load(config.TENANTS_FILE, env);
    if (legacy && !fromFile.#byId.has(DEFAULT_TENANT) && fromFile.#defaultId === undefined) {
      return new Tenants([...fromFile.#byId.values(), { id: DEFAULT_TENANT, ...legacy }], {});
    }
    return fromFile;
  }

  ids(): string[] {
    return [...this.#byId.keys()];
  }

  /** The tenant an export's `tenant` label names, or undefined. */
  get(tenant: string): Tenant | undefined {
    if (this.#only) return this.#only;
    return (
      this.#byId.get(tenant) ??
      (tenant === DEFAULT_TENANT && this.#defaultId ? this.#byId.get(this.#defaultId) : undefined)
    );
  }

  require(tenant: string): Tenant {
    const found = this.get(tenant);
    if (!found) throw new UnknownTenantError(tenant);
    return found;
  }

  /** The time zone of a tenant, for exports that give none. */
  timeZoneOf(tenant: string): string | undefined {
    return this.get(tenant)?.timeZone;
  }

  /** The SK that goes with an AK, to verify CC-FS's signed callbacks. */
  secretForAk(ak: string): string | undefined {
    for (const t of this.#byId.values()) if (t.ak === ak) return t.sk.reveal();
    return undefined;
  }

  toJSON(): unknown {
    return {
      tenants: [...this.#byId.values()].map(({ id, ak, timeZone, baseUrl }) => ({
        id,
        ak,
        timeZone,
        baseUrl,
      })),
    };
  }
}

/**
 * Reads and validates a tenants file (`.yaml`/`.yml` as YAML, anything else as JSON) without resolving
 * any secret. Throws a ConfigError naming the file and each bad entry (`tenants.<id>.<key>`).
 */
export function readTenantsFile(path: string): TenantsFile {
  if (!existsSync(path))
    throw new ConfigError(`invalid configuration:\n  TENANTS_FILE: ${path} does not exist`);
  const text = readFileSync(path, 'utf8');
  let raw: unknown;
  try {
    raw = ['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      `invalid configuration:\n  TENANTS_FILE: ${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML/JSON'} (${(err as Error).message.split('\n')[0]})`,
    );
  }
  const parsed = TenantsFile.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`invalid tenants in ${path}:\n${issueLines(parsed.error)}`);
  return parsed.data;
}

/**
 * The time zone of each configured tenant, by the rules of `Tenants.fromConfig` and `Tenants.get`, but
 * without reading any SK: the CLI, which talks to Temporal only, has no secrets and must still cut days
 * in the tenant's zone and refuse a tenant the API refuses. Returns undefined for a tenant that is not
 * configured. Without TENANTS_FILE every tenant is the single one, in TENANT_TIME_ZONE.
 */
export function tenantTimeZones(
  config: Pick<Config, 'TENANTS_FILE' | 'TENANT_TIME_ZONE' | 'CCFS_AK' | 'CCFS_SK'>,
): (tenant: string) => string | undefined {
  if (!config.TENANTS_FILE) return () => config.TENANT_TIME_ZONE;
  const file = readTenantsFile(config.TENANTS_FILE);
  // CCFS_AK/CCFS_SK beside a file without a default stand for tenant `default` (Tenants.fromConfig).
  const legacyDefault =
    config.CCFS_AK !== undefined &&
    config.CCFS_SK !== undefined &&
    !(DEFAULT_TENANT in file.tenants) &&
    file.default === undefined;
  return (tenant) => {
    if (Object.hasOwn(file.tenants, tenant)) return file.tenants[tenant]!.timeZone;
    if (tenant !== DEFAULT_TENANT) return undefined;
    if (file.default !== undefined) return file.tenants[file.default]?.timeZone;
    return legacyDefault ? config.TENANT_TIME_ZONE : undefined;
  };
}

/**
 * The key of the callback tokens: CALLBACK_SECRET, or derived from CCFS_SK when there is one SK
 * (requireCcfs demands CALLBACK_SECRET when a tenants file replaces CCFS_SK). API and workers must agree.
 */
export function callbackKeyFromConfig(config: Pick<Config, 'CALLBACK_SECRET' | 'CCFS_SK'>): string {
  const sk = config.CCFS_SK?.reveal();
  if (!config.CALLBACK_SECRET && !sk)
    throw new ConfigError('invalid configuration:\n  CALLBACK_SECRET: is required but not set');
  return callbackKey(config.CALLBACK_SECRET?.reveal(), sk ?? '');
}
