/**
 * The admin API's per-token rate limit as one Lua script (registered in lib/redis-scripts.ts): a
 * token bucket in Redis, so every replica of the API shares one budget per token. The clock is
 * Redis's own (TIME), not each replica's.
 *
 * KEYS[1] the bucket (hash {tokens, at}); ARGV[1] capacity (burst), ARGV[2] refill per minute,
 * ARGV[3] the bucket's TTL in ms. Returns {allowed 0|1, tokens left (floor), ms until one is back}.
 */
export const TOKEN_BUCKET = `
local cap = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2]) / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then tokens = cap; at = now end
if now > at then tokens = math.min(cap, tokens + (now - at) * perMs) end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / perMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {allowed, math.floor(tokens), wait}
`;
