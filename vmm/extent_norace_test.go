//go:build !race

package vmm

// extentRace reports a -race build, where the benchmark layouts take too
// long to build for a test.
const extentRace = false
