package privload

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs testCleanups after the tests, and lowers the default
// time the fuzzer spends minimizing each new interesting input from 60 s
// to 2 s, unless -fuzzminimizetime is given.
// Go's byte-slice minimizer is quadratic in the input's length and an ELF
// shared object is at least several kilobytes (its segments are
// page-aligned in the file): with the default, a short fuzzing run (CI
// gives each target 20 s) spends all its time minimizing and executes
// almost nothing.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	for _, c := range testCleanups {
		c()
	}
	os.Exit(code)
}

// testCleanups run once all tests have: they remove what tests share
// (the fixture directory).
var testCleanups []func()
