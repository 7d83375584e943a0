//go:build !linux

package vmm

import "github.com/reachvm/reachvm/internal/osmem"

// nativeDiscard returns nil: W^X needs Linux rules (see ErrWXWindows), and
// the simulator models no memory to return.
func nativeDiscard(osmem.OS) func(addr, size uintptr) error { return nil }
