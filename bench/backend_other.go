//go:build !windows

package bench

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/reachvm/reachvm/mem"
)

// windowsBackend is only available on Windows (or under Wine: reachvm
// strategies --backend wine cross-builds for Windows and runs there).
func windowsBackend(Config, *rand.Rand, *[][2]uintptr) (mem.OS, func(free mem.Range), error) {
	return nil, nil, errors.New("backend windows needs Windows, backend wine a Windows build under Wine (reachvm strategies --backend wine does both)")
}

var wallEpoch = time.Now()

// wallNow reads a monotonic clock for the matrix's wall times.
func wallNow() time.Duration { return time.Since(wallEpoch) }
