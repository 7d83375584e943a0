//go:build race

package jit

// raceEnabled is set when the race detector is on: long-running tests
// then do less, since the detector slows Go code tenfold and the emitted
// code, which it does not see, not at all.
const raceEnabled = true
