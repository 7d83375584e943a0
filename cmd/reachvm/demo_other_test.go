//go:build !linux && !windows

package main

import (
	"bytes"
	"testing"
)

// TestDemoElsewhere: where privload loads neither ELF nor PE libraries the
// demo exits 1 with a message saying so, and prints nothing on standard
// output; its flags are still checked first.
func TestDemoElsewhere(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--json"}, &out, &errb)
	if code != 1 || errb.Len() == 0 || out.Len() != 0 {
		t.Errorf("demo --json: exit %d, stdout %q, stderr %q; want 1, nothing and why", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"demo", "--size", "0"}, &out, &errb); code != 2 {
		t.Errorf("demo --size 0: exit %d (%s), want 2 (bad usage)", code, errb.String())
	}
}
