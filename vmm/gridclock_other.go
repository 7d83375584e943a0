//go:build !windows

package vmm

import "time"

// gridClock returns nil: the grid's default clock, Go's monotonic time, is
// fine-grained off Windows.
func gridClock() func() time.Duration { return nil }
