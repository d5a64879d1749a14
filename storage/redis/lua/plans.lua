-- Several plans (plan.lua), one after the other, as one script: a batch of
-- plans (batch.go) is one script on the server rather than one each, which
-- is most of what a plan costs there.
--
-- KEYS: the keys of each plan, one plan's after the other's.
-- ARGV: the count of plans; then for each, the count of its arguments, the
-- count of its keys, and its arguments.
-- Returns the result of each.
local plans = tonumber(ARGV[1])

local out, at, kat = {}, 2, 0
for p = 1, plans do
	local n, nk, A, K = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), {}, {}
	for j = 1, n do A[j] = ARGV[at + 1 + j] end
	for j = 1, nk do K[j] = KEYS[kat + j] end
	out[p] = plan(K, A)
	at, kat = at + n + 2, kat + nk
end
return out
