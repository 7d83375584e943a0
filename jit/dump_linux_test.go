//go:build linux && amd64

package jit

import (
	"fmt"
	"os"
	"sort"
	"testing"
)

// dumpCache writes every fragment's disassembly to the file named by
// $REACHVM_DUMP, if set: with perf's sampled addresses it shows which
// emitted instructions cost (this VM has no hardware counters).
func dumpCache(t testing.TB, m *Machine) {
	path := os.Getenv("REACHVM_DUMP")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	frags := make([]*fragment, 0, len(m.frags))
	for _, fr := range m.frags {
		frags = append(frags, fr)
	}
	sort.Slice(frags, func(i, j int) bool { return frags[i].entry < frags[j].entry })
	for _, fr := range frags {
		fmt.Fprintf(f, "fragment %#x -> %#x (%d bytes)\n", fr.tag, fr.entry, fr.size)
		lines, err := disasmErr(fr.unit.bytes(fr.entry, uintptr(fr.codeLen)), fr.entry)
		for _, l := range lines {
			fmt.Fprintln(f, l)
		}
		if err != nil {
			fmt.Fprintln(f, err)
		}
	}
}
