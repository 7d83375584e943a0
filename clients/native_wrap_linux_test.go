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

// TestNativeWrapEdges: the module and wrap helpers give their errors
// for NULL pointers, unknown names, addresses no function holds,
// argument indexes out of range and calls in the wrong hook (and every
// function of every module is found by its address and its names), and
// the hooks' changes take: an argument, a result (through a tail call),
// a skip, the data from pre to post, an unwound call's notice. A wrap
// table the client got wrong fails the run before the module's code
// runs, saying how.
func TestNativeWrapEdges(t *testing.T) {
	so := testClient(t, "wrapedge")
	prog := wrapmeProgram(t)
	r := mustRun(t, so, nil, prog)
	if want := "sum 55\ntwice 4242\nafter longjmp 1234\nskipme 77\n"; r.stdout != want {
		t.Errorf("wrapme printed %q, want %q", r.stdout, want)
	}
	var e struct {
		OK, Bad    uint64
		BadLine    uint64 `json:"bad_line"`
		AddPre     uint64 `json:"add_pre"`
		AddPost    uint64 `json:"add_post"`
		TwicePost  uint64 `json:"twice_post"`
		JumperPost uint64 `json:"jumper_post"`
		Unwound    uint64
		SkipPre    uint64 `json:"skip_pre"`
		SameModule uint64 `json:"same_module"`
		BlocksWrap uint64 `json:"blocks_wrap"`
	}
	if err := json.Unmarshal([]byte(r.report), &e); err != nil {
		t.Fatalf("%v: %q (stderr %s)", err, r.report, r.stderr)
	}
	// add: 10 calls, twice's tail call, the one after the longjmp.
	if e.Bad != 0 || e.OK < 1000 || e.AddPre != 12 || e.AddPost != 12 || e.TwicePost != 1 || e.JumperPost != 1 ||
		e.Unwound != 1 || e.SkipPre != 1 || e.SameModule == 0 || e.BlocksWrap != e.SameModule {
		t.Errorf("%+v (a failed check's line: %d)", e, e.BadLine)
	}
	t.Logf("%d checks", e.OK)

	for _, tc := range []struct{ mode, want string }{
		{"bad-func", "a wrap failed: a wrap of function 0 (NULL)"},
		{"no-hooks", "a wrap failed: a wrap with neither a pre nor a post hook"},
		{"full", "a wrap failed: more wraps than the table has room for"},
		{"bad-hook", "the pre hook 0x1000 of the wrap of"},
		{"bad-n", "wraps, in room for"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := runClient(t, so, []string{tc.mode}, false, prog)
			if r.status != childReportFailed || !strings.Contains(r.stderr, "wrapedge: module "+prog) ||
				!strings.Contains(r.stderr, tc.want) {
				t.Fatalf("status %d, stderr %q; want %d and %q", r.status, r.stderr, childReportFailed, tc.want)
			}
			// The run failed at the module's first block: none of
			// the program's code ran, unwrapped or otherwise.
			if r.stdout != "" {
				t.Errorf("wrapme printed %q, want nothing", r.stdout)
			}
		})
	}
}
