/**
 * The ZeroClaw gateway's in-memory guards, for the emulator (zeroclaw-emulator.ts): the per-client
 * sliding-window rate limits, the auth brute-force limiter, the idempotency store and the pairing
 * guard. All of it is process memory upstream too: a restart forgets it. Sources (15d2866):
 * crates/zeroclaw-gateway/src/lib.rs (SlidingWindowRateLimiter, IdempotencyStore),
 * crates/zeroclaw-gateway/src/auth_rate_limit.rs, crates/zeroclaw-config/src/pairing.rs.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { isIP } from 'node:net';

/** lib.rs RATE_LIMIT_WINDOW_SECS: also the `retry_after` of a rate-limited /webhook or /pair. */
export const RATE_WINDOW_S = 60;

/** lib.rs SlidingWindowRateLimiter: `limit` requests per key per minute; 0 = unlimited. */
export class SlidingWindow {
  private readonly hits = new Map<string, number[]>();

  constructor(private readonly limit: number, private readonly maxKeys: number) {}

  allow(key: string, now = Date.now()): boolean {
    if (this.limit === 0) return true;
    const cutoff = now - RATE_WINDOW_S * 1000;
    if (!this.hits.has(key) && this.hits.size >= this.maxKeys) {
      for (const [k, ts] of this.hits) if (ts.every((t) => t <= cutoff)) this.hits.delete(k);
      // Still full: drop the key that was seen longest ago.
      if (this.hits.size >= this.maxKeys) {
        const oldest = [...this.hits].sort((a, b) => (a[1].at(-1) ?? 0) - (b[1].at(-1) ?? 0))[0];
        if (oldest) this.hits.delete(oldest[0]);
      }
    }
    const recent = (this.hits.get(key) ?? []).filter((t) => t > cutoff);
    this.hits.set(key, recent);
    if (recent.length >= this.limit) return false;
    recent.push(now);
    return true;
  }
}

const AUTH_MAX_ATTEMPTS = 10;
const AUTH_WINDOW_S = 60;
const AUTH_LOCKOUT_S = 300;

/** auth_rate_limit.rs: 10 failed auths a minute lock a client out for 300 s; loopback is exempt. */
export class AuthLimiter {
  private readonly attempts = new Map<string, number[]>();
  private readonly lockouts = new Map<string, number>();

  /** Seconds to wait when locked out, else undefined. Counts nothing by itself. */
  check(key: string, now = Date.now()): number | undefined {
    if (isLoopback(key)) return undefined;
    const locked = this.lockouts.get(key);
    if (locked !== undefined) {
      const elapsed = Math.floor((now - locked) / 1000);
      if (elapsed < AUTH_LOCKOUT_S) return AUTH_LOCKOUT_S - elapsed;
      this.lockouts.delete(key);
      this.attempts.delete(key);
    }
    const recent = (this.attempts.get(key) ?? []).filter((t) => now - t < AUTH_WINDOW_S * 1000);
    this.attempts.set(key, recent);
    if (recent.length >= AUTH_MAX_ATTEMPTS) {
      this.lockouts.set(key, now);
      return AUTH_LOCKOUT_S;
    }
    return undefined;
  }

  /** Called on a failed attempt only. */
  record(key: string, now = Date.now()): void {
    if (isLoopback(key)) return;
    const list = this.attempts.get(key) ?? [];
    list.push(now);
    this.attempts.set(key, list);
  }
}

/** lib.rs IdempotencyStore: keys live `ttlS` seconds, at most `maxKeys` (the oldest goes first). */
export class IdempotencyStore {
  private readonly keys = new Map<string, number>();

  constructor(private readonly ttlS: number, private readonly maxKeys: number) {}

  /** True when the key is new (it is recorded now); false for a repeat within the TTL. */
  recordIfNew(key: string, now = Date.now()): boolean {
    for (const [k, at] of this.keys) if (now - at >= this.ttlS * 1000) this.keys.delete(k);
    if (this.keys.has(key)) return false;
    if (this.keys.size >= this.maxKeys) {
      const oldest = this.keys.keys().next();
      if (!oldest.done) this.keys.delete(oldest.value);
    }
    this.keys.set(key, now);
    return true;
  }
}

const PAIR_MAX_ATTEMPTS = 5;
const PAIR_LOCKOUT_S = 300;

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
const isTokenHash = (v: string): boolean => /^[0-9a-fA-F]{64}$/.test(v);

/**
 * pairing.rs PairingGuard: configured tokens are kept as SHA-256 hashes (a 64-hex value is taken
 * as a hash already); with pairing required and no token, a 6-digit one-time code is made.
 */
export class PairingGuard {
  private readonly tokens: Set<string>;
  private code: string | undefined;
  private readonly failures = new Map<string, { count: number; lockedUntil?: number }>();

  constructor(readonly requirePairing: boolean, configured: readonly string[]) {
    this.tokens = new Set(configured.map((t) => (isTokenHash(t) ? t : hashToken(t))));
    if (requirePairing && this.tokens.size === 0) this.code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  }

  get pairingCode(): string | undefined {
    return this.code;
  }

  get paired(): boolean {
    return this.tokens.size > 0;
  }

  hashes(): string[] {
    return [...this.tokens];
  }

  isAuthenticated(token: string): boolean {
    return !this.requirePairing || this.tokens.has(hashToken(token));
  }

  /** A token for the right code (consumed), undefined for a wrong one, or the lockout seconds. */
  tryPair(code: string, client: string, now = Date.now()): { token?: string; lockoutS?: number } {
    const f = this.failures.get(client);
    if (f?.lockedUntil !== undefined) {
      if (now < f.lockedUntil) return { lockoutS: Math.max(1, Math.floor((f.lockedUntil - now) / 1000)) };
      this.failures.delete(client);
    }
    if (this.code !== undefined && code.trim() === this.code) {
      this.failures.delete(client);
      const token = `zc_${randomBytes(32).toString('hex')}`;
      this.tokens.add(hashToken(token));
      this.code = undefined;
      return { token };
    }
    const entry = this.failures.get(client) ?? { count: 0 };
    entry.count += 1;
    if (entry.count >= PAIR_MAX_ATTEMPTS) entry.lockedUntil = now + PAIR_LOCKOUT_S * 1000;
    this.failures.set(client, entry);
    return {};
  }

  /** Undo a pairing whose persistence failed (lib.rs handle_pair rolls the token back). */
  revoke(hash: string): void {
    this.tokens.delete(hash);
  }
}

function isLoopback(key: string): boolean {
  if (key === '127.0.0.1' || key === '::1') return true;
  return isIP(key) === 4 ? key.startsWith('127.') : false;
}

/**
 * lib.rs client_key_from_request: the peer's IP, or with trust_forwarded_headers the first parseable
 * X-Forwarded-For entry, else X-Real-IP. Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d.
 */
export function clientKey(peer: string | undefined, headers: Record<string, string | string[] | undefined>, trustForwarded: boolean): string {
  if (trustForwarded) {
    const xff = one(headers['x-forwarded-for']);
    for (const candidate of (xff ?? '').split(',')) {
      const ip = parseIp(candidate);
      if (ip) return ip;
    }
    const real = parseIp(one(headers['x-real-ip']) ?? '');
    if (real) return real;
  }
  if (peer === undefined) return 'unknown';
  return peer.startsWith('::ffff:') && isIP(peer.slice(7)) === 4 ? peer.slice(7) : peer;
}

function parseIp(raw: string): string | undefined {
  const v = raw.trim().replace(/^"|"$/g, '').trim();
  if (isIP(v)) return v;
  const hostPort = /^\[?([^\]]+?)\]?(?::\d+)?$/.exec(v)?.[1];
  return hostPort && isIP(hostPort) ? hostPort : undefined;
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
