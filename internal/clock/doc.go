// Package clock is the time the project reads: Real for production, Manual
// for tests that move time themselves instead of waiting for it.
//
// Both satisfy recovery.Clock, the port the flow declares. The package
// imports nothing of the project's, so that every package, recovery's own
// tests included, may use it; and it never keeps a clock in a package
// variable: a clock is passed in.
package clock
