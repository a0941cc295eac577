/**
 * Redis key names. The runbook's keys keep their exact names and meaning; everything new lives
 * under the `{mbox}` hash tag so that the multi-key scripts of the delivery path stay in one slot
 * on a Redis Cluster.
 */

/** `ip:port` of the tenant's live, ready pod (with a TTL). Runbook key. */
export const endpointKey = (tenantId: string): string => `router:endpoint:${tenantId}`;
/** Wake lock, `SET NX EX WAKE_LOCK_TTL_S`. Runbook key. */
export const wakeLockKey = (tenantId: string): string => `tenant:waking:${tenantId}`;
/** Drain jobs parked until the tenant's wake ends (a set of job ids; the waker promotes them). */
export const parkedDrainsKey = (tenantId: string): string => `ztm:parked:${tenantId}`;
/** The last failed wake of a tenant (lib/wake/wake-contract.ts encodeWakeFailure), with a TTL. */
export const wakeFailedKey = (tenantId: string): string => `ztm:wake-failed:${tenantId}`;
/**
 * Hash {phase, detail, since, started, deadline, at}: where the tenant's current (or just ended)
 * wake is (lib/wake/wake-progress.ts), written on phase changes only; lives as long as the wake lock.
 */
export const wakeProgressKey = (tenantId: string): string => `ztm:wake-progress:${tenantId}`;
/** The tenant's last failed wake, kept for days (`ztm tenant get`): JSON {code, reason, start_reason?, at}. */
export const lastWakeFailureKey = (tenantId: string): string => `ztm:wake-last-failure:${tenantId}`;
/**
 * Stale endpoints one update met (a count, with a TTL): the agent at the tenant's endpoint refused
 * the tenant's own credential. The second one after a fresh wake dead-letters the update.
 */
export const staleEndpointKey = (tenantId: string, chatId: string, updateId: number): string => `ztm:stale-endpoint:${tenantId}:${chatId}:${updateId}`;

const MB = '{mbox}';
/** Per-chat FIFO of accepted updates (a list of JSON envelopes). */
export const mailboxKey = (tenantId: string, chatId: string): string => `${MB}:q:${tenantId}:${chatId}`;
/** Drain generation of a chat: present while a drain job is responsible for its mailbox. */
export const drainKey = (tenantId: string, chatId: string): string => `${MB}:drain:${tenantId}:${chatId}`;
/** update_id already accepted for a tenant (dedup of Telegram retries), with a TTL. */
export const seenKey = (tenantId: string, updateId: number): string => `${MB}:seen:${tenantId}:${updateId}`;
/** Every chat with a responsible drain, scored by last progress: the sweeper's index. */
export const scheduledKey = `${MB}:scheduled`;
/** Delivery attempts per update (`<tenant>.<chat>.<update_id>` → count), cleared when it leaves the mailbox. */
export const attemptsKey = `${MB}:attempts`;
/**
 * Answer outbox of a chat's head update: hash {id: the head's envelope identity, answer: the agent's
 * answer, sent: chunks of it already sent, failed_turns: agent turns that ended in an error}. Only
 * the head has one; it leaves with the head (popNext, dead letter).
 */
export const outboxKey = (tenantId: string, chatId: string): string => `${MB}:outbox:${tenantId}:${chatId}`;
/** Lease that makes one drainer at a time own a chat. */
export const chatLeaseKey = (tenantId: string, chatId: string): string => `${MB}:lease:${tenantId}:${chatId}`;

/** Activity index: tenant id scored by last activity (ms). Read by the idle check. */
export const activityKey = 'ztm:activity';
/**
 * The tenant's incarnation (lib/registry/tenant.ts), written at create and removed at delete: what
 * the ingress reads (Redis only, no registry) to know which webhook secret is current. Absent: a
 * record from before incarnations (id-only secrets), or no such tenant.
 */
export const incarnationKey = (tenantId: string): string => `ztm:incarnation:${tenantId}`;
/** "⏳ Starting up..." already sent for this wake of this tenant. */
export const startingNoticeKey = (tenantId: string): string => `ztm:starting:${tenantId}`;
/** Hash {size, target, at}: the warm pool as the pool-keeper last counted it (ztm status, metrics). */
export const warmPoolKey = 'ztm:warm-pool';
/** The waker's record of recent wakes (`<ms>:w|c`, a bounded list) the pool-keeper sizes the pool from (lib/warm-pool/wake-stats.ts). */
export const WARM_POOL_WAKES_KEY = 'ztm:{warm-pool}:wakes';
/** Recent cold-start durations (`<ms>:<duration ms>`, a bounded list); same hash tag as the wakes (one MULTI). */
export const WARM_POOL_COLD_STARTS_KEY = 'ztm:{warm-pool}:cold-starts';
/** Hash {sandboxed, line, at}: whether `npm start` runs its agents sandboxed (ztm status). */
export const isolationKey = 'ztm:isolation';
/** Address of a local platform's Redis, written by `npm start` for `ztm` to find. */
export const ADMIN_HEARTBEAT_KEY = 'ztm:admin:heartbeat';
/** Pub/sub channel: a tenant's wake ended (its id); drains waiting in place go on (lib/delivery/endpoint-watch.ts). */
export const WAKE_DONE_CHANNEL = 'ztm:wake-done';
/** Sorted set tenant → the time it goes idle (the idle check's index; lib/tenants/activity.ts). */
export const IDLE_DEADLINE_KEY = 'ztm:idle-deadline';
/** Hash tenant → when its presigned state URLs were issued (lib/state/state-urls.ts). */
export const STATE_URLS_ISSUED_KEY = 'ztm:state-urls-issued';
/** The one pool-keeper that counts and fills the warm pool (`SET NX PX`). */
export const POOL_KEEPER_LOCK = 'ztm:pool-keeper:lock';
/** SCAN pattern of every wake lock (the reconciler clears stale ones); see wakeLockKey. */
export const WAKE_LOCK_PATTERN = 'tenant:waking:*';

/** List of a tenant's last wake durations in ms, newest first (capped, with a TTL; lib/tenants/tenant-stats.ts). */
export const wakeTimesKey = (tenantId: string): string => `ztm:wake-times:${tenantId}`;
/** Hash tenant → updates delivered on one UTC day (`YYYY-MM-DD`), with a TTL (lib/tenants/tenant-stats.ts). */
export const messagesDayKey = (day: string): string => `ztm:messages:${day}`;

/**
 * Admin API bearer tokens (lib/admin-api/api-tokens.ts), under one hash tag so a create or revoke
 * is one MULTI on a Redis Cluster too. A token's hash holds its SHA-256, never the token.
 */
export const apiTokenKey = (tokenId: string): string => `{ztm-api}:token:${tokenId}`;
/** Sorted set of every API token id, scored by creation time (ms): what `ztm api-token list` reads. */
export const API_TOKEN_INDEX = '{ztm-api}:tokens';
/** A token's rate-limit bucket (hash {tokens, at}), with a TTL; its `at` is the token's last use. */
export const apiRateKey = (tokenId: string): string => `ztm:api-rate:${tokenId}`;
