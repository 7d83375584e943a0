package main

import (
	"flag"
	"os"
	"sync"
	"testing"
)

// cleanups are what the tests built to share (the PIE reachvm), removed
// after every test has run.
var (
	cleanupsMu sync.Mutex
	cleanups   []func()
)

// asChild, where `reachvm run` exists, runs this test binary as reachvm
// when a test started it as such (runChild), and reports whether it did.
var asChild func() (code int, ok bool)

// atExit registers f to run after every test.
func atExit(f func()) {
	cleanupsMu.Lock()
	defer cleanupsMu.Unlock()
	cleanups = append(cleanups, f)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if asChild != nil {
		if code, ok := asChild(); ok {
			os.Exit(code)
		}
	}
	code := m.Run()
	cleanupsMu.Lock()
	for _, f := range cleanups {
		f()
	}
	cleanupsMu.Unlock()
	os.Exit(code)
}
