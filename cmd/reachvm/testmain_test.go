package main

import (
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

// atExit registers f to run after every test.
func atExit(f func()) {
	cleanupsMu.Lock()
	defer cleanupsMu.Unlock()
	cleanups = append(cleanups, f)
}

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupsMu.Lock()
	for _, f := range cleanups {
		f()
	}
	cleanupsMu.Unlock()
	os.Exit(code)
}
