//go:build linux && amd64

package jit

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// perfBuf is what TestPerfMap checksums: a package variable, never on
// the goroutine's stack, which can move during Run.
var perfBuf = []byte("perf names translated code")

// TestPerfMap runs libz's crc32 with PerfMap and checks the map: at
// least one "START SIZE name" line per fragment (one per function a
// fragment's code comes from), in hex without 0x, naming libz and, from
// its symbols, the function: crc32's fragment starts with a line
// "reachvm:libz.so.1!crc32+0x0".
func TestPerfMap(t *testing.T) {
	path := PerfMapPath()
	before, _ := os.ReadFile(path)
	m, _ := newTestMachine(t, vmm.Config{}, &Options{PerfMap: true})
	lib := loadZlib(t, m.v)
	crc := lookup(t, lib, "crc32")
	if _, err := m.Run(crc, 0, ptr(perfBuf), uintptr(len(perfBuf))); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data[len(before):])), "\n")
	st := m.Stats()
	if len(lines) < st.Fragments {
		t.Fatalf("%d lines for %d fragments", len(lines), st.Fragments)
	}
	entry := fmt.Sprintf("%x ", m.frags[crc].entry)
	found := false
	for _, l := range lines {
		var start, size uintptr
		var name string
		if n, err := fmt.Sscanf(l, "%x %x %s", &start, &size, &name); n != 3 || err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if !strings.HasPrefix(name, "reachvm:libz.so") || !strings.Contains(name, "+0x") {
			t.Errorf("line %q: want reachvm:libz.so.1!FUNCTION+OFFSET or reachvm:libz.so.1+OFFSET", l)
		}
		if strings.HasPrefix(l, entry) {
			found = true
			if !strings.HasSuffix(name, "!crc32+0x0") {
				t.Errorf("crc32's fragment is named %q, want reachvm:libz.so.1!crc32+0x0", name)
			}
		}
	}
	t.Logf("first line: %s", lines[0])
	if !found {
		t.Errorf("no line for crc32's fragment at %s", entry)
	}
	if len(before) == 0 {
		os.Remove(path)
	}
}
