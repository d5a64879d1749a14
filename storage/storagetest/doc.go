// Package storagetest is the contract suite every storage backend passes:
// what recovery.Store and recovery.Store promise, including that
// concurrent use succeeds at most once, checked the same way for each
// backend. A backend's tests call Run, and Benchmark, with a Harness that
// builds it.
//
// It must never depend on a particular backend, and never weaken a check
// to suit one: a backend that cannot pass is the one to fix.
package storagetest
