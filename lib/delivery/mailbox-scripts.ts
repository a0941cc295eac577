/**
 * Lua scripts of the per-chat mailbox. Each runs atomically in Redis; the keys of one call share
 * their tenant's shard tag (lib/delivery/shards.ts) so they stay in one slot on a Redis Cluster. The invariants they keep are written down
 * in docs/architecture.md ("Delivery: the mailbox").
 */

/**
 * Lua reading the answer outbox (keys.ts outboxKey) at `key` beside a head: HMGET of id, answer,
 * sent, failed_turns (nil when absent). Only the head update has an outbox; the reader compares its
 * id with the head's envelope identity, so an outbox can never be taken for another update's.
 */
const outboxRead = (key: string): string => `redis.call('HMGET', ${key}, 'id', 'answer', 'sent', 'failed_turns')`;

/**
 * Lua: makes sure a runner serves the shard's ready list (KEYS `rs` runners, `ready`, `seq`): none
 * alive, or the ready list longer than `backlog` per runner (they are all busy) and fewer than
 * `maxRunners` → a new runner id is registered with a lease until `now + ttl` and returned (the
 * caller adds its run job); else ''. Runners renew their lease while they run; one that never
 * started (its job add lost with a crash) expires, and the next opening registers another.
 */
const ENSURE_RUNNER = `
local function ensureRunner(rs, ready, seq, now, ttl, backlog, maxRunners, len)
  if len and len <= backlog then
    -- The common case in one read: few chats wait, and the latest runner lease is live.
    local last = redis.call('ZRANGE', rs, -1, -1, 'WITHSCORES')
    if last[2] and tonumber(last[2]) > now then return '' end
  end
  redis.call('ZREMRANGEBYSCORE', rs, '-inf', now)
  local n = redis.call('ZCARD', rs)
  if n == 0 or (n < maxRunners and (len or redis.call('LLEN', ready)) > backlog * n) then
    local id = 'r' .. redis.call('INCR', seq)
    redis.call('ZADD', rs, now + ttl, id)
    return id
  end
  return ''
end
`;

/**
 * Lua: a slot of the tenant's concurrency (KEYS `active`, the tenant's holders: token → lease end)
 * for `token`. slotFree: the tenant is below `limit`, or `token` holds a slot already (a lease the
 * accept took, claimed late). Holders whose leases ran out (a crashed drainer's) are trimmed only
 * when they would count against the limit: a trim per take costs a call each, and below the limit
 * they change nothing. holdSlot takes it until `now + lease` and makes the set outlive that lease
 * (holders whose drains end within lease/3 never renew it): a TTL below one lease is extended to
 * three, so most takes read the TTL instead of writing it.
 */
const TENANT_SLOT = `
local function slotFree(active, token, now, limit)
  local n = redis.call('ZCARD', active)
  if n >= limit then
    redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
    n = redis.call('ZCARD', active)
  end
  return n < limit or redis.call('ZSCORE', active, token) ~= false
end
local function holdSlot(active, token, now, lease)
  redis.call('ZADD', active, now + lease, token)
  if redis.call('PTTL', active) < lease then redis.call('PEXPIRE', active, lease * 3) end
end
`;

/**
 * accept(KEYS per update: seen, mailbox, drain, scheduled, seq, ready, runners, lease, tenantActive;
 *        ARGV: dedupWindowMs, dedupMax, runnerTtlMs, runnerBacklog, maxRunners, leaseMs, tenantLimit,
 *              batchNonce, then per update: envelope, member, nowMs, updateId)
 * → per update two entries: accepted (1|0), the id of a runner to start or ''.
 * One call accepts a batch of updates (the ingress batches what arrives in one event-loop turn), in
 * order, each exactly as if alone: a later update of the same chat joins the generation an earlier
 * one created, a repeated update_id is a duplicate. An update that opens its chat creates the chat's
 * generation and puts the chat on its shard's ready list (`<member>\n<generation>`), where a runner
 * takes it (no BullMQ job per chat opening); a runner is registered when the shard needs one
 * (ENSURE_RUNNER). A duplicate of a chat that still has a responsible generation checks the runner
 * too, so a runner whose job a crash lost between this script and queue.add is replaced by
 * Telegram's retry. Each update names its own shard's keys (a batch spans shards on a single node;
 * on a cluster the caller sends one call per shard).
 * The opening also takes the chat's lease for the runner, as CLAIM would, when a runner will take
 * the chat soon (tenantLimit > 0, fewer than `runnerBacklog` chats ahead of it on the ready list)
 * and the tenant is below its limit: the entry then carries the lease's token
 * (`<member>\n<generation>\n<token>`), and the runner that takes it drains under that lease without
 * a claim of its own while most of it is left (one script per update less; drain-contract.ts
 * parseReadyEntry, Mailbox.heldHead).
 * Dedup is a per-tenant sorted set (update_id → accepted ms) bounded by age (dedupWindowMs) and
 * count (dedupMax, oldest dropped first) and expiring a window (at most 9/8 of one) after its
 * newest id, so an idle tenant holds none.
 */
export const ACCEPT = `${ENSURE_RUNNER}${TENANT_SLOT}
local window = tonumber(ARGV[1])
local maxSeen = tonumber(ARGV[2])
local ttl, backlog, maxRunners = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
for i = 0, #KEYS / 9 - 1 do
  local k, a = 1 + i * 9, 9 + i * 4
  local now = tonumber(ARGV[a + 2])
  local fresh = redis.call('ZADD', KEYS[k], 'NX', now, ARGV[a + 3]) == 1
  local gen = redis.call('GET', KEYS[k + 2])
  if not fresh then
    out[#out + 1] = 0
    out[#out + 1] = gen and ensureRunner(KEYS[k + 6], KEYS[k + 5], KEYS[k + 4], now, ttl, backlog, maxRunners) or ''
  else
    -- By age every 16th update_id (ids are sequential per bot): a trim per update costs a call
    -- each; the count bound below and the key's TTL hold at every update.
    if tonumber(ARGV[a + 3]) % 16 == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - window) end
    local n = redis.call('ZCARD', KEYS[k])
    if n > maxSeen then redis.call('ZREMRANGEBYRANK', KEYS[k], 0, n - maxSeen - 1) end
    -- The key outlives its newest id by a window at least and by 9/8 of one at most: extended
    -- only once its TTL fell below a window, so most accepts read the TTL instead of writing it
    -- (a write is propagated to the AOF and the replicas; a read is not).
    if redis.call('PTTL', KEYS[k]) < window then redis.call('PEXPIRE', KEYS[k], math.floor(window * 9 / 8)) end
    redis.call('RPUSH', KEYS[k + 1], ARGV[a])
    out[#out + 1] = 1
    if gen then
      out[#out + 1] = ''
    else
      gen = tostring(redis.call('INCR', KEYS[k + 4]))
      redis.call('SET', KEYS[k + 2], gen)
      redis.call('ZADD', KEYS[k + 3], now, ARGV[a + 1])
      local entry = ARGV[a + 1] .. '\\n' .. gen
      -- The runner's lease, taken as CLAIM takes it, unless chats queue before this one (the slot
      -- would be held while it waits), a holder is left from an earlier generation, or the tenant
      -- is at its limit: then none, and the runner claims.
      if limit > 0 and redis.call('LLEN', KEYS[k + 5]) < backlog then
        local token = ARGV[8] .. '.' .. i
        if redis.call('SET', KEYS[k + 7], token, 'NX', 'PX', lease) then
          if slotFree(KEYS[k + 8], token, now, limit) then
            holdSlot(KEYS[k + 8], token, now, lease)
            entry = entry .. '\\n' .. token
          else
            redis.call('DEL', KEYS[k + 7])
          end
        end
      end
      local len = redis.call('RPUSH', KEYS[k + 5], entry)
      out[#out + 1] = ensureRunner(KEYS[k + 6], KEYS[k + 5], KEYS[k + 4], now, ttl, backlog, maxRunners, len)
    end
  end
end
return out
`;

/**
 * sweepForget(KEYS: drain, scheduled; ARGV: member) → 1 when the chat has no responsible generation
 * and left the sweeper's index; 0 when one exists (an accept re-opened it since the sweeper looked).
 */
export const SWEEP_FORGET = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/**
 * runnerRetire(KEYS: runners; ARGV: runnerId, nowMs) → 1 when this runner was removed because other
 * live runners serve the shard, 0 when it is the last (it stays). One step, so runners retiring at
 * once never leave the shard with none.
 */
export const RUNNER_RETIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) > 1 and redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then return 1 end
return 0
`;

/**
 * runnerExit(KEYS: runners, ready, seq; ARGV: runnerId, nowMs, runnerTtlMs) → the id of a runner to
 * start in its place, or '': a runner leaving while chats wait and no other runner is alive hands
 * the ready list to a successor (a chat opened meanwhile saw this runner alive and added none).
 */
export const RUNNER_EXIT = `
redis.call('ZREM', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('LLEN', KEYS[2]) == 0 or redis.call('ZCARD', KEYS[1]) > 0 then return '' end
local id = 'r' .. redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
return id
`;

/**
 * claim(KEYS: drain, lease, tenantActive, mailbox, slotWaiters, outbox; ARGV: generation, token, nowMs,
 *       leaseMs, tenantLimit, jobId, waited (1: the job may be queued in slotWaiters, 0: a runner's
 *       drain of a fresh opening, never queued))
 * → {status, head, outbox}: status 'ok' | 'stale' (another generation is responsible) | 'busy' (chat
 * leased) | 'full' (tenant at limit); head is the mailbox's oldest envelope when 'ok' (saves a round
 * trip), outbox the head's answer outbox as outboxRead returns it (the caller checks its id).
 * A 'full' claim queues its job id in slotWaiters (oldest first): the drain that frees a slot of the
 * tenant hands it to the oldest waiter (see RELEASE), so waiting chats take turns in order.
 */
export const CLAIM = `${TENANT_SLOT}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'stale'} end
local now = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', lease) then
  -- Held already by this token: the lease the accept took for a runner (ACCEPT), claimed late.
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {'busy'} end
  redis.call('PEXPIRE', KEYS[2], lease)
end
if not slotFree(KEYS[3], ARGV[2], now, tonumber(ARGV[5])) then
  redis.call('DEL', KEYS[2])
  redis.call('ZADD', KEYS[5], 'NX', now, ARGV[6])
  redis.call('PEXPIRE', KEYS[5], lease * 4)
  return {'full'}
end
holdSlot(KEYS[3], ARGV[2], now, lease)
if ARGV[7] ~= '0' then redis.call('ZREM', KEYS[5], ARGV[6]) end
local head = redis.call('LINDEX', KEYS[4], 0)
if not head then return {'ok', false} end
return {'ok', head, ${outboxRead('KEYS[6]')}}
`;

/** renew(KEYS: lease, tenantActive; ARGV: token, nowMs, leaseMs) → 1 if still held. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local lease = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[2], lease * 2)
return 1
`;

/**
 * release(KEYS: lease, tenantActive, slotWaiters; ARGV: token) → the job id of the oldest drain
 * waiting for a slot of this tenant when this release freed one (the caller promotes it), or ''.
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  local w = redis.call('ZPOPMIN', KEYS[3])
  if w[1] then return w[1] end
end
return ''
`;

/**
 * finish(KEYS: mailbox, drain, scheduled; ARGV: generation, member) → 1 when the mailbox was empty
 * and this generation gave up responsibility; 0 when mail arrived meanwhile (keep draining).
 * Emptiness check and release are one step, so an update accepted concurrently either lands before
 * it (and is drained by us) or sees no drain and schedules a new one: never stranded.
 */
export const FINISH = `
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return 1
`;

/**
 * popNext(KEYS: mailbox, lease, scheduled, drain, tenantActive, attempts, slotWaiters, outbox;
 *         ARGV: envelope's identity (its `update_id|accepted_at|` prefix), token, member, nowMs,
 *         generation, attemptsField)
 * → {-1} lease lost | {0} the head is not that envelope | {1, next} popped, next head |
 *   {2, waiter} popped, mailbox empty: this generation gave up responsibility and the lease is
 *   released (waiter: as RELEASE returns it).
 * Pop + the attempt counter's and the answer outbox's cleanup + HEAD + FINISH + RELEASE in one round
 * trip: the steady-state
 * step of a drain. The empty check and the release are one step, as in FINISH. The head is matched
 * by its prefix (update ids are unique per tenant) so the update is not sent back to Redis.
 */
export const POP_NEXT = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {-1} end
local head = redis.call('LPOP', KEYS[1])
if not head then return {0} end
if string.sub(head, 1, #ARGV[1]) ~= ARGV[1] then
  redis.call('LPUSH', KEYS[1], head) -- not ours to pop: put back, in the same atomic step
  return {0}
end
redis.call('HDEL', KEYS[6], ARGV[6])
local nxt = redis.call('LINDEX', KEYS[1], 0)
if nxt then
  redis.call('DEL', KEYS[8])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[3])
  return {1, nxt}
end
-- The outbox, the lease and (while this generation is responsible) the generation: one DEL.
if redis.call('GET', KEYS[4]) == ARGV[5] then
  redis.call('DEL', KEYS[8], KEYS[2], KEYS[4])
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  redis.call('DEL', KEYS[8], KEYS[2])
end
if redis.call('ZREM', KEYS[5], ARGV[2]) == 1 then
  local w = redis.call('ZPOPMIN', KEYS[7])
  if w[1] then return {2, w[1]} end
end
return {2, ''}
`;

/**
 * handoff(KEYS: drain, scheduled, seq; ARGV: generation, member, nowMs) → the new generation, or ''
 * when this one is no longer responsible. Used to yield a chat to a fresh job (shutdown, fairness).
 */
export const HANDOFF = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return '' end
local gen = tostring(redis.call('INCR', KEYS[3]))
redis.call('SET', KEYS[1], gen)
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
return gen
`;

/**
 * deadLetter(KEYS: mailbox, lease, deadIndex, deadData, scheduled, attempts, outbox;
 *            ARGV: envelope, token, id, json, nowMs, member, attemptsField)
 * → 1 when the head was moved to the dead-letter store, its attempt counter and answer outbox
 * cleared; -1 lease lost, 0 the head is another envelope (the same fence as POP_NEXT).
 */
export const DEAD_LETTER = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]), ARGV[3])
redis.call('ZADD', KEYS[5], tonumber(ARGV[5]), ARGV[6])
redis.call('HDEL', KEYS[6], ARGV[7])
redis.call('DEL', KEYS[7])
return 1
`;

/** Lua: true when the mailbox KEYS[mb]'s head is the envelope of identity `id`. */
const HEAD_IS = `
local function headIs(mb, id)
  local head = redis.call('LINDEX', mb, 0)
  return head and string.sub(head, 1, #id) == id
end
`;

/**
 * head(KEYS: mailbox, outbox) → {head, outbox}: the oldest envelope (nil when empty) and its answer
 * outbox (outboxRead), for a drain that has to read the head again (after a wake, a moved head).
 */
export const HEAD = `
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return {false} end
return {head, ${outboxRead('KEYS[2]')}}
`;

/**
 * keepAnswer(KEYS: lease, mailbox, outbox; ARGV: token, identity, answer, ttlS) → 1 kept, -1 lease
 * lost, 0 the head is another envelope. Stores the agent's answer with the head update before it is
 * sent, so a redelivery sends it instead of asking the agent again. The TTL only bounds a leak (the
 * outbox leaves with its update); far longer than any update stays the head.
 */
export const KEEP_ANSWER = `${HEAD_IS}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if not headIs(KEYS[2], ARGV[2]) then return 0 end
local kept = redis.call('HGET', KEYS[3], 'id')
if kept and kept ~= ARGV[2] then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[3], 'id', ARGV[2], 'answer', ARGV[3], 'sent', 0)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
return 1
`;

/**
 * recordSent(KEYS: lease, outbox; ARGV: token, identity, sent) → 1, -1 lease lost, 0 no outbox of
 * that update. How many chunks of a long answer are sent, so a retry does not repeat them. The
 * outbox's id is enough of a fence: it only exists while its update is the head.
 */
export const RECORD_SENT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'id') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'sent', tonumber(ARGV[3]))
return 1
`;

/**
 * countAttempt(KEYS: attempts, lease, mailbox, outbox; ARGV: attemptsField, token, identity,
 *              turnEnded (1|0), ttlS)
 * → {attempts, failedTurns}: counts a failed delivery; when the agent ended its turn in an error
 * (turnEnded) and this drainer still holds the head, also counts that in the head's outbox, so the
 * next delivery presents a new idempotency key (outcomes.ts idempotencyKey). failedTurns is 0 when
 * not counted.
 */
export const COUNT_ATTEMPT = `${HEAD_IS}
local attempts = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[4] ~= '1' or redis.call('GET', KEYS[2]) ~= ARGV[2] or not headIs(KEYS[3], ARGV[3]) then return {attempts, 0} end
if redis.call('HGET', KEYS[4], 'id') ~= ARGV[3] then
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'id', ARGV[3])
end
local turns = redis.call('HINCRBY', KEYS[4], 'failed_turns', 1)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
return {attempts, turns}
`;
