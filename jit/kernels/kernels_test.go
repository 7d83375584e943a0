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

// TestBuildDynamic builds a C library program dynamically as each kind:
// an interpreter, and the type and address the kind says.
func TestBuildDynamic(t *testing.T) {
	for _, c := range []struct {
		kind string
		typ  elf.Type
		base uint64
	}{{Exec, elf.ET_EXEC, ExecBase}, {ExecDefault, elf.ET_EXEC, 0x400000}, {PIE, elf.ET_DYN, 0}} {
		p, err := Dynamic("libc", c.kind)
		if errors.Is(err, ErrNoCompiler) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		interp, lo := false, ^uint64(0)
		for _, ph := range f.Progs {
			interp = interp || ph.Type == elf.PT_INTERP
			if ph.Type == elf.PT_LOAD {
				lo = min(lo, ph.Vaddr)
			}
		}
		f.Close()
		if f.Type != c.typ || !interp || lo != c.base {
			t.Errorf("%s: %v, interpreter %v, lowest address %#x; want %v with one, at %#x", c.kind, f.Type, interp, lo, c.typ, c.base)
		}
	}
	if _, err := Dynamic("libc", Static); err == nil {
		t.Error("an unknown kind built")
	}
}
