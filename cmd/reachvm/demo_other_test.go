//go:build !linux

package main

import (
	"bytes"
	"testing"
)

// TestDemoNotLinux: off Linux (Windows, under Wine in CI) the demo, whose
// library is ELF, exits 1 with a message saying so, and prints nothing
// on standard output; its flags are still checked first.
func TestDemoNotLinux(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--json"}, &out, &errb)
	want := "reachvm demo: libdemo.so is an ELF library: the demo runs on Linux only\n"
	if code != 1 || errb.String() != want || out.Len() != 0 {
		t.Errorf("demo --json: exit %d, stdout %q, stderr %q; want 1, nothing and %q", code, out.String(), errb.String(), want)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"demo", "--size", "0"}, &out, &errb); code != 2 {
		t.Errorf("demo --size 0: exit %d (%s), want 2 (bad usage)", code, errb.String())
	}
}
