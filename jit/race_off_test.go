//go:build !race

package jit

// raceEnabled is set when the race detector is on.
const raceEnabled = false
