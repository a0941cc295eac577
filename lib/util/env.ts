/**
 * Reading one environment variable strictly. Shared by the platform's config (lib/config.ts) and the
 * shim's (agent/shim-config.ts): the only two places that read the environment.
 */
import { ConfigError } from '../errors.js';

export type Env = Record<string, string | undefined>;

/** The trimmed value, or undefined when unset or blank. */
export function envStr(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** A whole number within [min, max], `def` when unset; ConfigError naming the variable otherwise. */
export function envInt(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = envStr(env, name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^-?[0-9]+$/.test(raw) || n < min || n > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw.slice(0, 30))}`);
  }
  return n;
}
