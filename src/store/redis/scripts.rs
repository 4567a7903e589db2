//! Lua scripts, each one atomic on the Redis server.

/// GCRA check-and-take with the server's clock (`TIME`), so replicas with skewed clocks agree.
/// KEYS[1] bucket; ARGV[1] interval (µs); ARGV[2] burst.
/// Returns {allowed, remaining, retry_after_us, reset_us}. The key expires when the bucket is full.
pub const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local used = new_tat - now
if used > tolerance then
  return {0, 0, used - tolerance, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000) + 1)
return {1, math.floor((tolerance - used) / interval), 0, used}
"#;

/// Compare-and-set of a session's JSON on its `version`.
/// KEYS[1] session; ARGV[1] expected version (0: absent); ARGV[2] new JSON; ARGV[3] TTL (ms).
/// Returns {1} when written, {0, current JSON or false} on a conflict.
pub const SESSION_CAS: &str = r#"
local current = redis.call('GET', KEYS[1])
local version = 0
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and decoded['version'] then version = tonumber(decoded['version']) end
end
if version ~= tonumber(ARGV[1]) then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {1}
"#;

/// Adds to token and micro-dollar counters of each period and returns the new totals.
/// KEYS: tokens and usd keys, alternating; ARGV[1] tokens; ARGV[2] micro-dollars; ARGV[3] TTL (s).
pub const ADD_USAGE: &str = r#"
local out = {}
for i = 1, #KEYS, 2 do
  local tokens = redis.call('INCRBY', KEYS[i], ARGV[1])
  local usd = redis.call('INCRBY', KEYS[i + 1], ARGV[2])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[3])
  table.insert(out, tokens)
  table.insert(out, usd)
end
return out
"#;
