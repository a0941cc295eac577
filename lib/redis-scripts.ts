/**
 * Lua scripts on ioredis: defined once per client (EVALSHA with automatic reload on NOSCRIPT) and
 * called by name, so every atomic step of the platform goes through one small typed door.
 */
import type { RedisClient } from './redis.js';

export interface ScriptDef {
  /** Number of keys; 'variable' when each call passes its key count first (a batch of any size). */
  keys: number | 'variable';
  lua: string;
}

type Caller = (...args: Array<string | number>) => Promise<unknown>;

export function defineScripts(redis: RedisClient, scripts: Record<string, ScriptDef>): void {
  for (const [name, def] of Object.entries(scripts)) {
    if (name in redis) continue;
    redis.defineCommand(name, def.keys === 'variable' ? { lua: def.lua } : { numberOfKeys: def.keys, lua: def.lua });
  }
}

export function callScript<T>(redis: RedisClient, name: string, ...args: Array<string | number>): Promise<T> {
  const fn = (redis as unknown as Record<string, Caller | undefined>)[name];
  if (typeof fn !== 'function') throw new Error(`redis script ${name} is not defined on this client`);
  return fn.apply(redis, args) as Promise<T>;
}
