//go:build !linux

package vmm

import "github.com/reachvm/reachvm/internal/osmem"

// nativeDiscard returns nil: the memfd W^X (dual) needs Linux rules, and
// the simulator models no memory to return.
func nativeDiscard(osmem.OS) func(addr, size uintptr) error { return nil }
