package limiter_test

import (
	"fmt"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

func ExampleClientKey() {
	for _, ip := range []string{
		"192.0.2.7",
		"::ffff:192.0.2.7",
		"2001:db8:1:2:aaaa:bbbb:cccc:dddd",
		"fe80::1%eth0",
	} {
		fmt.Println(limiter.ClientKey(ip))
	}
	// Output:
	// 192.0.2.7
	// 192.0.2.7
	// 2001:db8:1:2::/64
	// fe80::/64
}
