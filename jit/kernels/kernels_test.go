package kernels

import (
	"debug/elf"
	"errors"
	"testing"
)

func TestBuild(t *testing.T) {
	so, err := Shared()
	if errors.Is(err, ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.DynamicSymbols()
	f.Close()
	have := map[string]bool{}
	for _, s := range syms {
		have[s.Name] = true
	}
	for _, k := range All {
		if !have[k.Name] {
			t.Errorf("%s does not export %s", so, k.Name)
		}
	}
	for _, kind := range []string{Exec, PIE} {
		p, err := Program("kernels", kind)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		want := elf.ET_EXEC
		if kind == PIE {
			want = elf.ET_DYN
		}
		if f.Type != want {
			t.Errorf("%s program is %v, want %v", kind, f.Type, want)
		}
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_INTERP || ph.Type == elf.PT_TLS {
				t.Errorf("%s program has %v", kind, ph.Type)
			}
		}
		f.Close()
	}
	if _, err := Program("nope", Exec); err == nil {
		t.Error("an unknown program built")
	}
	if _, err := Program("hello", "shared"); err == nil {
		t.Error("an unknown kind built")
	}
}
