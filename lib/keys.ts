/**
 * Redis key names. The runbook's keys keep their exact names and meaning; everything new lives
 * under a delivery shard's hash tag (`{mbox:<s>.<j>}`) so that the multi-key scripts of the delivery
 * path stay in one slot on a Redis Cluster.
 */
import { deliveryLayout, type DeliveryLayout } from './delivery/shards.js';

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

/**
 * The delivery keys live under their tenant's shard tag (lib/delivery/shards.ts: `{mbox:<s>.<j>}`,
 * or `{mbox}` in the legacy layout), so one tenant's multi-key scripts stay in one slot while the
 * shards spread over a cluster's masters. `layout` defaults to the process's (DELIVERY_SHARDS).
 */
const tagOf = (tenantId: string, layout?: DeliveryLayout): string => (layout ?? deliveryLayout()).tagOf(tenantId);
/** Per-chat FIFO of accepted updates (a list of JSON envelopes). */
export const mailboxKey = (tenantId: string, chatId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:q:${tenantId}:${chatId}`;
/** Drain generation of a chat: present while a drain job is responsible for its mailbox. */
export const drainKey = (tenantId: string, chatId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:drain:${tenantId}:${chatId}`;
/**
 * The tenant's recently accepted update_ids (dedup of Telegram retries): a sorted set update_id →
 * accepted ms, bounded by DEDUP_WINDOW_S and DEDUP_MAX_PER_TENANT, expiring 1 to 9/8 windows after
 * its newest id (an idle tenant holds none). The legacy layout had a key per update (`{mbox}:seen:<t>:<id>`, 24 h TTL).
 */
export const seenKey = (tenantId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:seen:${tenantId}`;
/** A shard's chats with a responsible drain, scored by last progress: the sweeper's index. */
export const scheduledKey = (tag: string): string => `${tag}:scheduled`;
/** A shard's generation counter (drain job ids) and runner ids. */
export const drainSeqKey = (tag: string): string => `${tag}:seq`;
/**
 * A shard's chats opened and waiting for a runner (list of `<tenant>\n<chat>\n<generation>`,
 * drain-contract.ts readyEntry): the shard's runners take them in arrival order.
 */
export const readyKey = (tag: string): string => `${tag}:ready`;
/** A shard's live runner jobs (sorted set runner id → lease expiry ms; renewed while they run). */
export const runnersKey = (tag: string): string => `${tag}:runners`;
/** Delivery attempts of a tenant's updates (`<tenant>.<chat>.<update_id>` → count), cleared when each leaves its mailbox. */
export const attemptsKey = (tenantId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:attempts:${tenantId}`;
/**
 * Answer outbox of a chat's head update: hash {id: the head's envelope identity, answer: the agent's
 * answer, sent: chunks of it already sent, failed_turns: agent turns that ended in an error}. Only
 * the head has one; it leaves with the head (popNext, dead letter).
 */
export const outboxKey = (tenantId: string, chatId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:outbox:${tenantId}:${chatId}`;
/** Lease that makes one drainer at a time own a chat. */
export const chatLeaseKey = (tenantId: string, chatId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:lease:${tenantId}:${chatId}`;
/** Zset of the tenant's leased chats (per-tenant concurrency, TENANT_CONCURRENCY). */
export const tenantActiveKey = (tenantId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:active:${tenantId}`;
/** Drain jobs waiting for a slot of the tenant's concurrency, oldest first. */
export const slotWaitersKey = (tenantId: string, layout?: DeliveryLayout): string => `${tagOf(tenantId, layout)}:slotwait:${tenantId}`;
/** A shard's dead letters: zset of ids by failure time, and hash id → letter (lib/delivery/dead-letters.ts). */
export const deadIndexKey = (tag: string): string => `${tag}:dead`;
export const deadDataKey = (tag: string): string => `${tag}:dead:data`;

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
/**
 * Hash tenant → updates delivered on one UTC day (`YYYY-MM-DD`), with a TTL (lib/tenants/tenant-stats.ts),
 * one per delivery shard (`tag`: the tenants' shard tag), so the counting spreads over a cluster's
 * masters with the deliveries. Without `tag`: the one key of earlier versions, still read for the
 * day of an upgrade.
 */
export const messagesDayKey = (day: string, tag?: string): string => (tag === undefined ? `ztm:messages:${day}` : `${tag}:messages:${day}`);

/**
 * Admin API bearer tokens (lib/admin-api/api-tokens.ts), under one hash tag so a create or revoke
 * is one MULTI on a Redis Cluster too. A token's hash holds its SHA-256, never the token.
 */
export const apiTokenKey = (tokenId: string): string => `{ztm-api}:token:${tokenId}`;
/** Sorted set of every API token id, scored by creation time (ms): what `ztm api-token list` reads. */
export const API_TOKEN_INDEX = '{ztm-api}:tokens';
/** A token's rate-limit bucket (hash {tokens, at}), with a TTL; its `at` is the token's last use. */
export const apiRateKey = (tokenId: string): string => `ztm:api-rate:${tokenId}`;
