//go:build linux

package strategy

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
)

// The race property on the real kernel: the intruder is a real
// MAP_FIXED_NOREPLACE mmap into the hole the munmap strategy opened.
func TestRaceLinux(t *testing.T) { raceProperty(t, osmem.Native()) }

// Spilling on the real kernel: past its region, linux-spill maps wherever
// mmap puts it.
func TestSpillLinux(t *testing.T) { spillProperty(t, osmem.Native) }
