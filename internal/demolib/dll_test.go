package demolib_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/privload"
)

// dllShape is what must not change between the embedded demo.dll and a
// fresh build: the exports, the imports (none), the number of base
// relocations and the sections' protections.
type dllShape struct {
	Exports  []string
	Imports  []string
	Relocs   int
	Sections []string
	Entry    bool
}

func dllShapeOf(t *testing.T, name string, data []byte) dllShape {
	t.Helper()
	f, err := privload.ParsePE(name, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Loadable(); err != nil {
		t.Fatalf("%s: privload would not load it: %v", name, err)
	}
	var s dllShape
	for _, e := range f.Exports {
		s.Exports = append(s.Exports, e.Name)
	}
	for _, im := range f.Imports {
		s.Imports = append(s.Imports, im.String())
	}
	for _, sec := range f.Sections {
		s.Sections = append(s.Sections, fmt.Sprintf("%s %v", sec.Name, sec.Prot()))
	}
	sort.Strings(s.Exports)
	s.Relocs = len(f.Relocs)
	s.Entry = f.Entry != 0
	return s
}

// TestDLLShape checks the embedded demo.dll on every OS: a DLL privload
// loads, exporting the entry points the demo looks up, importing nothing,
// with the two DIR64 relocations of its stored pointers and an entry
// point (DllMain, which sets the seed Expected adds in).
func TestDLLShape(t *testing.T) {
	s := dllShapeOf(t, demolib.DLLName, demolib.DLL)
	want := []string{demolib.Calls, demolib.Compute, demolib.FiniHook, demolib.Helper, demolib.Scale}
	sort.Strings(want)
	if fmt.Sprint(s.Exports) != fmt.Sprint(want) {
		t.Errorf("exports %v, want %v", s.Exports, want)
	}
	if len(s.Imports) != 0 || s.Relocs != 2 || !s.Entry {
		t.Errorf("imports %v, %d relocations, entry point %v; want none, 2 and one", s.Imports, s.Relocs, s.Entry)
	}
}
