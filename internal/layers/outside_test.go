//go:build linux && amd64

package layers

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutsideModule builds and runs testdata/outside, a module of its own
// (example.com/outside, reachvm replaced by this checkout) whose program
// uses the public API end to end: vmm.New, a slot committed read-write
// and protected read-execute, privload.Load of the system's libz and a
// call of compressBound, a jit call stub to it in a vmcode unit, and
// aspacem's sync check against the kernel after each step and after
// everything is released. It fails if the public surface the program uses
// regresses (a name gone or changed, an internal type needed), if the
// module's requirements drift from reachvm's (GOPROXY=off: nothing is
// fetched, and go.mod and go.sum must already be complete), or if the
// program's results are wrong.
func TestOutsideModule(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "testdata", "outside")
	files := []string{"go.mod", "go.sum"}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run example.com/outside: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	want := []string{
		"vmcode: 64 MiB, reaches its own end: true",
		"slot: committed, written and protected rx: 0xc3 0xcc",
		"sync check after the slot: ok",
		"libz: loaded inside vmcode: true",
		"compressBound(1000) = 1013, want 1013",
		"stub: inside vmcode: true, reaches compressBound: true",
		"stub(1<<20) = 1048909, want 1048909",
		"sync check after the library and the stub: ok",
		"sync check after release: ok",
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("example.com/outside printed:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	for _, f := range files {
		after, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, before[f]) {
			os.WriteFile(filepath.Join(dir, f), before[f], 0o644)
			t.Errorf("go run changed testdata/outside/%s (restored): its requirements no longer match reachvm's; was:\n%s\nbecame:\n%s", f, before[f], after)
		}
	}
}
