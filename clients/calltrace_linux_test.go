package clients

import (
	"encoding/json"
	"errors"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// TestCalltrace runs wrapme, whose calls are known, under calltrace: add
// is entered 12 times (10 calls, one tail call from twice, one after a
// longjmp) and returns 12 times; twice is entered once and never returns
// itself (its tail call's return is add's); jumper is entered once and
// never returns (it longjmps); main is entered once.
func TestCalltrace(t *testing.T) {
	prog, err := kern.Dynamic("wrapme", kern.PIE)
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Calls, Returns uint64
		Top            []struct {
			Name           string
			Calls, Returns uint64
		}
		Trace []string
	}
	tool, report := runToolState(t, "calltrace", nil, prog)
	if err := json.Unmarshal(report, &r); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]uint64{"add@wrapme-dyn-pie": {12, 12}, "twice@wrapme-dyn-pie": {1, 0}, "jumper@wrapme-dyn-pie": {1, 0}, "main@wrapme-dyn-pie": {1, 1}}
	ct := tool.state.(*calltrace)
	got := map[string][2]uint64{}
	for name := range want {
		got[name] = [2]uint64{ct.calls[name], ct.returns[name]}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %d calls, %d returns; want %d, %d", name, got[name][0], got[name][1], w[0], w[1])
		}
	}
	if r.Calls < 100 || len(r.Trace) == 0 {
		t.Errorf("%d calls in all, a trace of %d lines", r.Calls, len(r.Trace))
	}
}
