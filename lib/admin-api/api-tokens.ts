/**
 * Bearer tokens of the admin HTTP API. A token is `ztm_<id>_<secret>`: the id (public, 12 hex) finds
 * its record, the secret is 256 random bits. Only the SHA-256 of the whole token is kept (lib/keys.ts
 * apiTokenKey), so Redis, a backup or a MONITOR never shows a usable token; it is shown once, by
 * `ztm api-token create`. Revoking deletes the record: the next request with it is refused.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundError, ValidationError } from '../errors.js';
import { API_TOKEN_INDEX, apiRateKey, apiTokenKey } from '../keys.js';
import type { RedisClient } from '../redis.js';

/** What a token may do; a route names the one it needs (lib/admin-api/routes.ts). */
export const API_SCOPES = ['tenants:read', 'tenants:write', 'tenants:operate', 'dead-letters'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export const API_TOKEN_PATTERN = /^ztm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const TOKEN_ID_PATTERN = /^[0-9a-f]{12}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/;

export interface ApiTokenRecord {
  id: string;
  name: string;
  scopes: ApiScope[];
  created_at: string;
  /** Per-token limits; absent: the API's defaults (ADMIN_API_RATE_PER_MIN, ADMIN_API_BURST). */
  rate_per_min?: number;
  burst?: number;
  /** When it was last presented (from its rate bucket, which expires once full again). */
  last_used_at?: string;
}

export interface CreateTokenOptions {
  name: string;
  scopes?: readonly string[];
  ratePerMin?: number;
  burst?: number;
}

/** What an unknown id's token is compared with (no token hashes to 32 zero bytes). */
const NO_TOKEN_HASH = Buffer.alloc(32);

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

export function assertTokenName(value: unknown): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new ValidationError('invalid token name: 1-64 characters of letters, digits, space, . _ @ -, starting with a letter or digit');
  }
  return value;
}

export function assertScopes(values: readonly string[]): ApiScope[] {
  const out = new Set<ApiScope>();
  for (const v of values) {
    if (!(API_SCOPES as readonly string[]).includes(v)) {
      throw new ValidationError(`invalid scope ${JSON.stringify(v.slice(0, 40))}: expected one of ${API_SCOPES.join(', ')}`);
    }
    out.add(v as ApiScope);
  }
  if (out.size === 0) throw new ValidationError(`give at least one scope (${API_SCOPES.join(', ')})`);
  return [...out];
}

export function assertTokenId(value: unknown): string {
  if (typeof value !== 'string' || !TOKEN_ID_PATTERN.test(value)) throw new ValidationError('invalid token id: the 12 hex characters after ztm_ (see ztm api-token list)');
  return value;
}

function optionalLimit(v: number | undefined, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new ValidationError(`${name} must be a whole number from 1 to ${max}`);
  return v;
}

function recordFrom(id: string, h: Record<string, string>): ApiTokenRecord | undefined {
  if (!h.sha256 || !h.name || !h.created_at) return undefined;
  const scopes = (h.scopes ?? '').split(',').filter((s): s is ApiScope => (API_SCOPES as readonly string[]).includes(s));
  return {
    id, name: h.name, scopes, created_at: h.created_at,
    ...(h.rate_per_min ? { rate_per_min: Number(h.rate_per_min) } : {}),
    ...(h.burst ? { burst: Number(h.burst) } : {}),
  };
}

export class ApiTokenStore {
  constructor(private readonly redis: RedisClient) {
    if (!redis) throw new TypeError('ApiTokenStore: redis is required');
  }

  /** A new token: the raw value is returned here and nowhere else, ever. */
  async create(o: CreateTokenOptions): Promise<{ token: string; record: ApiTokenRecord }> {
    const name = assertTokenName(o.name);
    const scopes = o.scopes === undefined ? [...API_SCOPES] : assertScopes(o.scopes);
    const ratePerMin = optionalLimit(o.ratePerMin, 'rate per minute', 100_000);
    const burst = optionalLimit(o.burst, 'burst', 10_000);
    const id = randomBytes(6).toString('hex');
    const token = `ztm_${id}_${randomBytes(32).toString('base64url')}`;
    const record: ApiTokenRecord = {
      id, name, scopes, created_at: new Date().toISOString(),
      ...(ratePerMin ? { rate_per_min: ratePerMin } : {}), ...(burst ? { burst } : {}),
    };
    const fields: Record<string, string> = { sha256: sha256Hex(token), name, scopes: scopes.join(','), created_at: record.created_at };
    if (ratePerMin) fields.rate_per_min = String(ratePerMin);
    if (burst) fields.burst = String(burst);
    // HSETNX-like: a 48-bit id collision is unlikely, but it must never overwrite another token.
    const created = await this.redis.hsetnx(apiTokenKey(id), 'sha256', fields.sha256 as string);
    if (created !== 1) throw new Error('token id collision: run the command again');
    await this.redis.multi().hset(apiTokenKey(id), fields).zadd(API_TOKEN_INDEX, Date.now(), id).exec();
    return { token, record };
  }

  /** The record of a presented token when it is well-formed, known and matches; else undefined. */
  async verify(presented: string): Promise<ApiTokenRecord | undefined> {
    const m = API_TOKEN_PATTERN.exec(presented);
    if (!m) return undefined;
    const id = m[1] as string;
    // Hashed before the read, and compared against a stand-in when the id is unknown: the same
    // work whether or not the id exists, so timing does not tell a guesser which ids do.
    const got = createHash('sha256').update(presented).digest();
    const h = await this.redis.hgetall(apiTokenKey(id));
    const record = recordFrom(id, h);
    const stored = record && h.sha256 && /^[0-9a-f]{64}$/.test(h.sha256) ? Buffer.from(h.sha256, 'hex') : undefined;
    const equal = timingSafeEqual(stored ?? NO_TOKEN_HASH, got);
    return stored && equal ? record : undefined;
  }

  /** Every token, oldest first: id, name, scopes, limits, last use. Never a hash or a secret. */
  async list(): Promise<ApiTokenRecord[]> {
    const ids = await this.redis.zrange(API_TOKEN_INDEX, 0, -1);
    const out: ApiTokenRecord[] = [];
    for (const id of ids) {
      const record = recordFrom(id, await this.redis.hgetall(apiTokenKey(id)));
      if (!record) continue;
      const at = await this.redis.hget(apiRateKey(id), 'at');
      out.push(at && /^[0-9]+$/.test(at) ? { ...record, last_used_at: new Date(Number(at)).toISOString() } : record);
    }
    return out;
  }

  /** Deletes the token's record (the API refuses it from then on); NotFoundError when unknown. */
  async revoke(id: string): Promise<{ id: string; revoked: true }> {
    assertTokenId(id);
    const res = await this.redis.multi().del(apiTokenKey(id)).zrem(API_TOKEN_INDEX, id).exec();
    await this.redis.del(apiRateKey(id));
    const deleted = Number(res?.[0]?.[1] ?? 0);
    if (deleted !== 1) throw new NotFoundError(`api token ${id} not found`);
    return { id, revoked: true };
  }
}
