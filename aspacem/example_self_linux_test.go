//go:build linux

package aspacem_test

import (
	"fmt"
	"os"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// ExampleLoadSelf finds the running executable's text in a map of the
// process, the range a VMM's Config.Near takes to place vmcode within
// rel32 reach of it.
func ExampleLoadSelf() {
	space, err := aspacem.LoadSelf()
	if err != nil {
		fmt.Println(err)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Println(err)
		return
	}
	var text mem.Range
	for _, s := range space.SegmentsNamed(exe) {
		if s.Prot&mem.ProtExec == 0 {
			continue
		}
		if text.Empty() {
			text = mem.Range{Start: s.Start, End: s.End}
		}
		text.Start, text.End = min(text.Start, s.Start), max(text.End, s.End)
	}
	fmt.Println("executable text found:", !text.Empty())
	// Output: executable text found: true
}
