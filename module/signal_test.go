package module

import "time"

// awaitTimeout ends a wait for an event that does not come: it fails a
// test, it never decides one.
const awaitTimeout = 10 * time.Second
