package clients

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// buildTestC compiles the C files in testdata with gcc and flags into out
// (in a temporary directory), or skips the test where gcc is missing
// outside CI.
func buildTestC(t *testing.T, out string, flags []string, srcs ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gcc is missing")
		}
		t.Skip("gcc is missing")
	}
	path := filepath.Join(t.TempDir(), out)
	args := append([]string{"-O1", "-o", path}, flags...)
	for _, s := range srcs {
		args = append(args, filepath.Join("testdata", s))
	}
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %q: %v\n%s", args, err, b)
	}
	return path
}

// runTool runs prog under the sample client name, in this process, with
// env as the program's environment, and returns the client's report.
func runTool(t *testing.T, name string, env []string, prog string, args ...string) []byte {
	t.Helper()
	_, report := runToolState(t, name, env, prog, args...)
	return report
}

// runToolState is runTool that also returns the tool.
func runToolState(t *testing.T, name string, env []string, prog string, args ...string) (*Tool, []byte) {
	t.Helper()
	tool, err := New(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tool, runWithTool(t, tool, env, prog, args...)
}

// runWithTool runs prog under tool, in this process, and returns its
// report.
func runWithTool(t testing.TB, tool *Tool, env []string, prog string, args ...string) []byte {
	t.Helper()
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: tool.Client})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.LoadProgram(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if status, err := p.Run(append([]string{prog}, args...), env); err != nil || status != 0 {
		t.Fatalf("%s under %s: status %d, %v", prog, tool.Name, status, err)
	}
	var out bytes.Buffer
	if err := tool.Report(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// wrapReport is what the wrap client reports.
type wrapReport struct {
	Client                            string
	Mallocs, Callocs, Reallocs, Frees uint64
	LeakedBlocks                      int    `json:"leaked_blocks"`
	LeakedBytes                       uint64 `json:"leaked_bytes"`
	TopLeaks                          []struct {
		Size uint64
	} `json:"top_leaks"`
}

// TestWrapAllocs: the wrap client sees exactly the allocations the
// allocs program makes (its source's counts: the C library makes none of
// its own for it) and its five leaks; and, with an LD_PRELOAD counter
// in the program, every call the counter sees, and the ones after the
// counter wrote its counts: the stdio buffer its report's fprintf takes
// (a malloc) and the two blocks its fclose frees.
func TestWrapAllocs(t *testing.T) {
	prog := buildTestC(t, "allocs", nil, "allocs.c")
	preload := buildTestC(t, "preload.so", []string{"-shared", "-fPIC"}, "preload.c")

	var r wrapReport
	if err := json.Unmarshal(runTool(t, "wrap", nil, prog), &r); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(r.Mallocs, r.Callocs, r.Reallocs, r.Frees, r.LeakedBlocks, r.LeakedBytes), "55 20 10 70 5 38885"; got != want {
		t.Errorf("mallocs callocs reallocs frees leaks leaked-bytes: %s, want %s", got, want)
	}
	for _, l := range r.TopLeaks {
		if l.Size != 7777 {
			t.Errorf("a leak of %d bytes; the program leaks 7777-byte blocks only", l.Size)
		}
	}

	counts := filepath.Join(t.TempDir(), "counts")
	var w wrapReport
	if err := json.Unmarshal(runTool(t, "wrap", []string{"LD_PRELOAD=" + preload, "PRELOAD_OUT=" + counts}, prog), &w); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(counts)
	if err != nil {
		t.Fatal(err)
	}
	var pm, pc, pr, pf uint64
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pm, &pc, &pr, &pf); err != nil {
		t.Fatalf("the counter wrote %q: %v", b, err)
	}
	if w.Mallocs != pm+1 || w.Callocs != pc || w.Reallocs != pr || w.Frees != pf+2 {
		t.Errorf("wrap saw %d %d %d %d (mallocs callocs reallocs frees), the LD_PRELOAD counter %d %d %d %d: want the counter's, and 1 malloc and 2 frees after it wrote",
			w.Mallocs, w.Callocs, w.Reallocs, w.Frees, pm, pc, pr, pf)
	}
}
