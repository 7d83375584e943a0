//go:build linux && amd64

package clients

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// wrapmeProgram builds the jit's wrapme kernel, whose calls are known
// (TestCalltrace), as a dynamic PIE.
func wrapmeProgram(t *testing.T) string {
	t.Helper()
	prog, err := kern.Dynamic("wrapme", kern.PIE)
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// TestNativeCalltrace: the C calltrace (the functions' names from
// rv_block.module and rv_module_symbol, a trace record per entry and
// return) reports exactly what the Go calltrace does: on wrapme, whose
// tail call and longjmp leave returns unmatched, on a static program,
// and on a dynamic one through its C library.
func TestNativeCalltrace(t *testing.T) {
	so := example(t, "calltrace")
	for _, argv := range [][]string{
		{wrapmeProgram(t)},
		{kernelsProgram(t), "k_fib", "15"},
		{"/bin/true"},
	} {
		t.Run(filepath.Base(argv[0])+"-"+strings.Join(argv[1:], "-"), func(t *testing.T) {
			c := mustRun(t, so, nil, argv...)
			g := mustRun(t, "calltrace", nil, argv...)
			if c.report != g.report || c.stdout != g.stdout {
				t.Fatalf("C calltrace:\n%s\nGo calltrace:\n%s\nstdout %q, %q", c.report, g.report, c.stdout, g.stdout)
			}
			if !strings.Contains(c.report, `"trace":["`) {
				t.Errorf("no trace: %s", c.report)
			}
		})
	}
}

// leakAddr matches an address in the wrap report.
var leakAddr = regexp.MustCompile(`"addr":"(0x[0-9a-f]+)"`)

// sameLeaks reports whether the wrap reports a and b are equal but for
// their leaks' addresses, which differ by one amount (a program placed
// elsewhere in the two runs has its heap elsewhere), and that amount.
func sameLeaks(a, b string) (bool, uint64) {
	am, bm := leakAddr.FindAllStringSubmatch(a, -1), leakAddr.FindAllStringSubmatch(b, -1)
	if len(am) != len(bm) {
		return false, 0
	}
	var delta uint64
	for i := range am {
		x, err1 := strconv.ParseUint(am[i][1], 0, 64)
		y, err2 := strconv.ParseUint(bm[i][1], 0, 64)
		if err1 != nil || err2 != nil || i > 0 && x-y != delta {
			return false, 0
		}
		delta = x - y
	}
	strip := func(s string) string { return leakAddr.ReplaceAllString(s, `"addr":"A"`) }
	return strip(a) == strip(b), delta
}

// TestNativeWrap: the C wrap (malloc, calloc, realloc and free found
// with rv_module_lookup at libc's module_load, wrapped with rv_wrap;
// the sizes through the call's data, realloc's from the arguments its
// post hook has) reports exactly what the Go wrap does: on the allocs
// program at a fixed address (its heap then too, so the leaks'
// addresses match), on it again as a PIE, and on ls, whose C library
// allocates more, and frees, reallocates and leaks.
func TestNativeWrap(t *testing.T) {
	so := example(t, "wrap")
	fixed := buildC(t, "allocs-fixed", "testdata/allocs.c", "-O1", "-no-pie", fmt.Sprintf("-Wl,-Ttext-segment=%#x", kern.ExecBase))
	pie := buildC(t, "allocs-pie", "testdata/allocs.c", "-O1", "-pie", "-fPIE")
	for _, tc := range []struct {
		name  string
		argv  []string
		exact bool
	}{
		{"allocs-fixed", []string{fixed}, true},
		{"allocs-pie", []string{pie}, false},
		{"ls", []string{"/bin/ls", "/usr"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustRun(t, so, nil, tc.argv...)
			g := mustRun(t, "wrap", nil, tc.argv...)
			if c.report == g.report && c.stdout == g.stdout {
				return
			}
			same, delta := sameLeaks(c.report, g.report)
			if tc.exact || !same || c.stdout != g.stdout {
				t.Fatalf("C wrap:\n%s\nGo wrap:\n%s", c.report, g.report)
			}
			t.Logf("the same leaks, %#x apart", delta)
		})
	}
	var r wrapReport
	if err := json.Unmarshal([]byte(mustRun(t, so, nil, fixed).report), &r); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(r.Mallocs, r.Callocs, r.Reallocs, r.Frees, r.LeakedBlocks, r.LeakedBytes), "55 20 10 70 5 38885"; got != want {
		t.Errorf("mallocs callocs reallocs frees leaks leaked-bytes: %s, want %s (allocs.c's)", got, want)
	}
}
