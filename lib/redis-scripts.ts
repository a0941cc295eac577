/**
 * Every Lua script of the platform, in one table: its name, its key count and its source. Every
 * client createRedis makes has all of them defined (EVALSHA, ioredis reloading a script on
 * NOSCRIPT), so no caller depends on another having defined one first, and a name that is not in
 * the table does not compile. Multi-key scripts keep their keys in one hash slot (docs/architecture.md,
 * "Redis Cluster"); test/redis-scripts.test.ts loads each on a real Redis and checks its key count.
 */
import type { RedisClient } from './redis.js';
import {
  ACCEPT, CLAIM, COUNT_ATTEMPT, DEAD_LETTER, FINISH, HANDOFF, HEAD, KEEP_ANSWER, POP_NEXT, RECORD_SENT, RELEASE, RENEW, RUNNER_EXIT, RUNNER_RETIRE, SWEEP_FORGET,
} from './delivery/mailbox-scripts.js';
import { TOKEN_BUCKET } from './admin-api/token-bucket-lua.js';

export interface ScriptDef {
  /** Number of keys; 'variable' when each call passes its key count first (a batch of any size). */
  keys: number | 'variable';
  lua: string;
}

/** Deletes a key only if it still holds the given value (an endpoint that failed, a lock we own). */
const COMPARE_AND_DELETE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Takes up to N tenants whose idle deadline passed, removing them in the same step (one stopper each). */
const TAKE_EXPIRED = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZREM', KEYS[1], id) end
return ids
`;

/**
 * Takes the wake lock over from an earlier run of the same wake job (its value starts with the
 * job's id): BullMQ gives a job back only once its previous run stopped renewing its job lock, i.e.
 * that waker died (or hung) mid-wake and will not release the wake lock. Without this, a waker
 * killed mid-wake would block the tenant for the lock's whole TTL (WAKE_LOCK_TTL_S, 240 s).
 */
const TAKE_OVER_LOCK = `
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
`;

/**
 * Renews the wake lock while its wake makes progress (a cold start may outlast WAKE_LOCK_TTL_S):
 * 1 renewed; 2 taken again (it had expired or been cleared, nobody else holds it); 0 another
 * wake holds it now (this one lost it, and must not extend someone else's).
 */
const RENEW_WAKE_LOCK = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 2
end
return 0
`;

/**
 * Adds each tenant's delivered messages (ARGV pairs tenant, n after the TTL) to the day's hash; sets
 * the TTL when a tenant's count is its first of the day (lib/tenants/tenant-stats.ts countMessage).
 */
const COUNT_MESSAGES = `
local expire = false
for i = 2, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1])
  if redis.call('HINCRBY', KEYS[1], ARGV[i], n) == n then expire = true end
end
if expire then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return 1
`;

export const SCRIPTS = {
  // The mailbox (lib/delivery/mailbox.ts), every key under {mbox}.
  mbAcceptBatch: { keys: 'variable', lua: ACCEPT },
  mbClaim: { keys: 6, lua: CLAIM },
  mbPopNext: { keys: 8, lua: POP_NEXT },
  mbRenew: { keys: 2, lua: RENEW },
  mbRelease: { keys: 3, lua: RELEASE },
  mbFinish: { keys: 3, lua: FINISH },
  mbHandoff: { keys: 3, lua: HANDOFF },
  mbHead: { keys: 2, lua: HEAD },
  mbKeepAnswer: { keys: 3, lua: KEEP_ANSWER },
  mbRecordSent: { keys: 2, lua: RECORD_SENT },
  mbCountAttempt: { keys: 4, lua: COUNT_ATTEMPT },
  // The dead letters (lib/delivery/dead-letters.ts), under {mbox} with the mailbox they leave.
  mbDeadLetter: { keys: 7, lua: DEAD_LETTER },
  mbRunnerExit: { keys: 3, lua: RUNNER_EXIT },
  mbRunnerRetire: { keys: 1, lua: RUNNER_RETIRE },
  mbSweepForget: { keys: 2, lua: SWEEP_FORGET },
  // Single-key scripts: endpoints, wake and pool-keeper locks, the idle index.
  ztmCompareAndDelete: { keys: 1, lua: COMPARE_AND_DELETE },
  ztmTakeExpired: { keys: 1, lua: TAKE_EXPIRED },
  ztmTakeOverWakeLock: { keys: 1, lua: TAKE_OVER_LOCK },
  ztmCountMessages: { keys: 1, lua: COUNT_MESSAGES },
  // The admin API's per-token rate limit (lib/admin-api/rate-limiter.ts).
  ztmApiTokenBucket: { keys: 1, lua: TOKEN_BUCKET },
  ztmRenewWakeLock: { keys: 1, lua: RENEW_WAKE_LOCK },
} as const satisfies Record<string, ScriptDef>;

export type ScriptName = keyof typeof SCRIPTS;

type Caller = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Defines every script on a client. createRedis does it for every client it makes, before any
 * command: an auto-pipelined client batches commands in pipelines that know only the scripts
 * defined when they were made.
 */
export function defineAllScripts(redis: RedisClient): void {
  for (const [name, def] of Object.entries(SCRIPTS) as Array<[ScriptName, ScriptDef]>) {
    if (typeof (redis as unknown as Record<string, unknown>)[name] === 'function') continue;
    redis.defineCommand(name, def.keys === 'variable' ? { lua: def.lua } : { numberOfKeys: def.keys, lua: def.lua });
  }
}

/** Runs script `name` on `redis` (a client not made by createRedis gets every script defined first). */
export function callScript<T>(redis: RedisClient, name: ScriptName, ...args: Array<string | number>): Promise<T> {
  const client = redis as unknown as Record<string, Caller | undefined>;
  if (typeof client[name] !== 'function') defineAllScripts(redis);
  return (client[name] as Caller).apply(redis, args) as Promise<T>;
}
