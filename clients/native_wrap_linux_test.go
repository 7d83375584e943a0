//go:build linux && amd64

package clients

import (
	"errors"
	"path/filepath"
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
