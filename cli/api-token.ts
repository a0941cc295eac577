/**
 * `ztm api-token create|list|revoke`: the admin HTTP API's bearer tokens, kept in Redis
 * (lib/admin-api/api-tokens.ts) and managed here directly, like `ztm status` reads Redis: whoever
 * can run ztm against the platform's Redis is an admin already. A new token is printed once, on
 * stdout alone (the one value ztm prints unredacted: it is the point of the command); Redis keeps
 * only its SHA-256. In cluster mode it runs inside the janitor pod through `kubectl exec`.
 */
import { ValidationError } from '../lib/errors.js';
import type { RedisClient } from '../lib/redis.js';
import { ApiTokenStore, assertScopes, assertTokenId, assertTokenName, type ApiTokenRecord } from '../lib/admin-api/api-tokens.js';
import { printFailure, printJson, printRecord, printTable, type Printer } from './output.js';

export type ApiTokenInvocation =
  | { action: 'create'; name: string; scopes?: string[]; ratePerMin?: number; burst?: number }
  | { action: 'list' }
  | { action: 'revoke'; id: string };

function limitOption(v: unknown, flag: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(String(v)) || Number(v) < 1 || Number(v) > max) throw new ValidationError(`invalid ${flag} ${JSON.stringify(String(v).slice(0, 20))}: a whole number from 1 to ${max}`);
  return Number(v);
}

/** `create`'s options as cac parsed them (`--scope` repeated or comma-separated), validated. */
export function createInvocation(o: { name?: unknown; scope?: unknown; ratePerMin?: unknown; burst?: unknown }): ApiTokenInvocation {
  if (o.name === undefined || o.name === true) throw new ValidationError('give the token a --name (who or what uses it, e.g. --name signup-flow)');
  const scopes = o.scope === undefined ? undefined : assertScopes((Array.isArray(o.scope) ? o.scope : [o.scope]).flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean));
  const ratePerMin = limitOption(o.ratePerMin, '--rate-per-min', 100_000);
  const burst = limitOption(o.burst, '--burst', 10_000);
  return {
    action: 'create', name: assertTokenName(String(o.name)),
    ...(scopes ? { scopes } : {}), ...(ratePerMin ? { ratePerMin } : {}), ...(burst ? { burst } : {}),
  };
}

export const revokeInvocation = (id: unknown): ApiTokenInvocation => ({ action: 'revoke', id: assertTokenId(String(id)) });

const row = (r: ApiTokenRecord) => ({
  id: r.id, name: r.name, scopes: r.scopes.join(','), created_at: r.created_at, last_used_at: r.last_used_at,
  rate: r.rate_per_min || r.burst ? `${r.rate_per_min ?? 'default'}/min burst ${r.burst ?? 'default'}` : 'default',
});

export async function runApiToken(inv: ApiTokenInvocation, redisUrl: string, p: Printer, cluster?: boolean): Promise<number> {
  // Loaded when run, not when parsed: `ztm --help` must not load ioredis (lib/admin-api/api-tokens.ts does not).
  const { connectRedis } = await import('./status.js');
  const { closeRedis } = await import('../lib/redis.js');
  let redis: RedisClient | undefined;
  try {
    redis = await connectRedis(redisUrl, 'ztm', cluster);
    const store = new ApiTokenStore(redis);
    if (inv.action === 'create') {
      const { token, record } = await store.create({ name: inv.name, ...(inv.scopes ? { scopes: inv.scopes } : {}), ...(inv.ratePerMin ? { ratePerMin: inv.ratePerMin } : {}), ...(inv.burst ? { burst: inv.burst } : {}) });
      // Built by hand, not printJson/printRecord: those redact a field named token, as they should.
      if (p.json) p.out(JSON.stringify({ token, ...record }, null, 2));
      else {
        p.out(token);
        p.err(`ztm: api token ${record.id} (${record.name}; scopes ${record.scopes.join(',')}) created: the line above is shown once, only its SHA-256 is kept; use it as Authorization: Bearer <token>`);
      }
    } else if (inv.action === 'list') {
      const items = await store.list();
      if (p.json) printJson(p, items);
      else printTable(p, items.map(row), ['id', 'name', 'scopes', 'rate', 'created_at', 'last_used_at']);
    } else {
      const result = await store.revoke(inv.id);
      if (p.json) printJson(p, result);
      else printRecord(p, result);
    }
    return 0;
  } catch (err) {
    printFailure(p, err);
    return 1;
  } finally {
    await closeRedis(redis);
  }
}
