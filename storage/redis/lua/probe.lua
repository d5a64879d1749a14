-- The load-time probe of the server's ACL (misconfig.go): which of the
-- commands the store needs its user may not run. Nothing is run: each is
-- only checked (redis.acl_check_cmd, Redis 7 and later; an older server
-- cannot tell, and nothing is reported).
--
-- KEYS[1] a key of the deployment, never written.
-- ARGV: for each command, its count of words and then its words.
--
-- Returns the names of the commands the ACL refuses.
local refused = {}
if not redis.acl_check_cmd then return refused end
local i = 1
while i <= #ARGV do
	local n = tonumber(ARGV[i])
	local words = {unpack(ARGV, i + 1, i + n)}
	if not redis.acl_check_cmd(unpack(words)) then
		table.insert(refused, words[1])
	end
	i = i + n + 1
end
return refused
