//go:build !linux

package vmm

import "github.com/reachvm/reachvm/mem"

// nativeDiscard returns nil: the memfd W^X (dual) needs Linux rules, and
// the simulator models no memory to return.
func nativeDiscard(mem.OS) func(addr, size uintptr) error { return nil }
