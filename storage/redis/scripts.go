package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The store's Lua scripts, one file each in lua/. Each names its
// operation (the first argument, compared by name) and its positional
// arguments at its top, and takes every key it can know before it runs in
// KEYS. count.lua is no script but the counter step that plan.lua and
// counter.lua share, put in front of them.
var (
	//go:embed lua/count.lua
	countLua string
	//go:embed lua/counter.lua
	counterLua string
	//go:embed lua/plan.lua
	planLua string
	//go:embed lua/plans.lua
	plansLua string
	//go:embed lua/tokens.lua
	tokensLua string
	//go:embed lua/impose.lua
	imposeLua string
	//go:embed lua/epoch.lua
	epochLua string
	//go:embed lua/trail.lua
	trailLua string
)

var (
	// counterScript is ulule's limiter.Store on one counter (count.go).
	counterScript = redis.NewScript(countLua + counterLua)
	// planScript runs one plan on KEYS and ARGV, plansScript several
	// (plan.go, batch.go).
	planScript  = redis.NewScript(countLua + planLua + "return plan(KEYS, ARGV)\n")
	plansScript = redis.NewScript(countLua + planLua + plansLua)
	// tokensScript holds, releases and spends a token (store.go).
	tokensScript = redis.NewScript(tokensLua)
	// imposeScript imposes and lifts a lock (impose.go, store.go).
	imposeScript = redis.NewScript(imposeLua)
	// epochScript learns and acknowledges the epoch (epoch.go).
	epochScript = redis.NewScript(epochLua)
	// trailScript appends support's trail entries (trail.go).
	trailScript = redis.NewScript(trailLua)
)
