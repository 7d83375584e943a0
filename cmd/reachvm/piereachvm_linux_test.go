//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The test binary is linked at 0x400000, where a static program that is
// not a PIE (gcc -static) wants to be loaded: such programs run under a
// reachvm built as a PIE, which pieReachvm builds once per run of the
// tests and shares.
var pie struct {
	once sync.Once
	// path is the PIE reachvm, err why it could not be built; set
	// once.
	path string
	err  error
}

// pieReachvm returns the path of the reachvm command built with
// -buildmode=pie by the go command running the tests (go test puts its
// own first on PATH), building it on first use; the build is removed
// after the tests.
func pieReachvm(t testing.TB) string {
	t.Helper()
	pie.once.Do(func() {
		dir, err := os.MkdirTemp("", "reachvm-pie-")
		if err != nil {
			pie.err = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		start := time.Now()
		out := filepath.Join(dir, "reachvm")
		if b, err := exec.Command("go", "build", "-buildmode=pie", "-o", out, ".").CombinedOutput(); err != nil {
			pie.err = fmt.Errorf("go build -buildmode=pie: %v\n%s", err, b)
			return
		}
		pie.path = out
		t.Logf("built the PIE reachvm in %v", time.Since(start).Round(time.Millisecond))
	})
	if pie.err != nil {
		t.Fatal(pie.err)
	}
	return pie.path
}
