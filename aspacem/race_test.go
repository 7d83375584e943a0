//go:build race

package aspacem

// raceEnabled scales the randomised tests down under the race detector,
// which makes them ~10x slower without finding more (they are
// single-goroutine; TestConcurrentUse is the race test).
const raceEnabled = true
