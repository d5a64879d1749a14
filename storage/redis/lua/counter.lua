-- ulule's limiter.Store on one counter, by count.lua's count.
--
-- KEYS[1] the counter.
-- ARGV: op, 'count' or 'reset' (forget the counter first); events (0
-- reads); window (ms).
-- Returns {count, ms left of the window}.
local op, events, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if op == 'reset' then redis.call('DEL', KEYS[1]) end
return {count(KEYS[1], events, window, 0)}
