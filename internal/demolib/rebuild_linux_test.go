//go:build linux

package demolib_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// shape is what must not change between the embedded copy and a fresh
// build: the dynamic symbols and the relocation kinds, each with the
// symbol it binds.
type shape struct {
	Symbols []string
	Relocs  []string
	Init    uint64
	Fini    uint64
	Relro   bool
	Needed  []string
	Soname  string
}

func shapeOf(t *testing.T, name string, data []byte) shape {
	t.Helper()
	f, err := privload.Parse(name, data)
	if err != nil {
		t.Fatal(err)
	}
	var s shape
	for _, sym := range f.Symbols() {
		s.Symbols = append(s.Symbols, fmt.Sprintf("%s %v %v defined=%v", sym.Name, sym.Type, sym.Bind, sym.Defined()))
	}
	for _, tab := range [][]privload.Reloc{f.Rela, f.PLTRela} {
		for _, r := range tab {
			sym, _ := f.Symbol(int(r.Sym))
			s.Relocs = append(s.Relocs, fmt.Sprintf("%v %s", r.Type, sym.Name))
		}
	}
	sort.Strings(s.Symbols)
	sort.Strings(s.Relocs)
	s.Init, s.Fini = f.InitArray.Size, f.FiniArray.Size
	s.Relro = f.Relro.Size > 0
	s.Needed, s.Soname = f.Needed, f.Soname
	return s
}

// TestRebuild rebuilds libdemo.so with build.sh and checks that the fresh
// build has the embedded copy's dynamic symbols and relocation kinds and,
// loaded with privload, computes the same results: the embedded copy is
// not stale.
func TestRebuild(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler (%s: %v): cannot rebuild %s; the embedded copy is still tested by privload", cc, err, demolib.Name)
	}
	dir, err := os.MkdirTemp("", "demolib-rebuild-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fresh := filepath.Join(dir, "fresh", demolib.Name)
	if err := os.Mkdir(filepath.Dir(fresh), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "build.sh", fresh, filepath.Join(dir, "fresh", demolib.DLLName)).CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	data, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	want, got := shapeOf(t, "embedded "+demolib.Name, demolib.SO), shapeOf(t, fresh, data)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fresh build differs from the embedded copy (run go generate ./internal/demolib):\nfresh:    %+v\nembedded: %+v", got, want)
	}
	for _, kind := range []string{"R_X86_64_RELATIVE", "R_X86_64_GLOB_DAT demo_scale", "R_X86_64_JMP_SLOT demo_helper", "R_X86_64_64 demo_helper"} {
		if !containsPrefix(want.Relocs, kind) {
			t.Errorf("no %s relocation in %v", kind, want.Relocs)
		}
	}
	t.Logf("fresh build byte-identical to the embedded copy: %v", string(data) == string(demolib.SO))

	embedded := filepath.Join(dir, demolib.Name)
	if err := os.WriteFile(embedded, demolib.SO, 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var libs []*privload.Library
	for _, p := range []string{embedded, fresh} {
		lib, err := privload.Load(v, p, privload.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer lib.Close()
		libs = append(libs, lib)
	}
	for _, a := range [][2]int64{{6, 7}, {0, 0}, {-5, 12}, {1 << 40, -(1 << 41)}} {
		var res []int64
		for _, lib := range libs {
			fn, ok := lib.Lookup(demolib.Compute)
			if !ok {
				t.Fatalf("%s: no %s", lib.Name(), demolib.Compute)
			}
			r := native.Call2(fn, uintptr(a[0]), uintptr(a[1]))
			res = append(res, int64(r))
		}
		if want := demolib.Expected(a[0], a[1]); res[0] != want || res[1] != want {
			t.Errorf("demo_compute(%d, %d): embedded %d, fresh %d, want %d", a[0], a[1], res[0], res[1], want)
		}
	}
	vmmtest.SyncCheck(t, v, "after both loads")
}

func containsPrefix(list []string, p string) bool {
	for _, s := range list {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// TestRebuildDLL rebuilds demo.dll with build.sh (when mingw-w64 is
// installed) and checks that the fresh build has the embedded copy's
// shape (exports, imports, relocations, sections) and, since the build is
// reproducible, that it is byte for byte the same with the same toolchain
// (logged: another mingw may lay the file out differently). Loading and
// calling it is the Windows demo's job (cmd/reachvm, under Wine).
func TestRebuildDLL(t *testing.T) {
	mingw := os.Getenv("MINGW")
	if mingw == "" {
		mingw = "x86_64-w64-mingw32-gcc"
	}
	if _, err := exec.LookPath(mingw); err != nil {
		t.Skipf("no mingw-w64 (%s: %v): cannot rebuild %s; TestDLLShape still checks the embedded copy", mingw, err, demolib.DLLName)
	}
	dir, err := os.MkdirTemp("", "demolib-rebuild-dll-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fresh := filepath.Join(dir, demolib.DLLName)
	cmd := exec.Command("sh", "build.sh", filepath.Join(dir, demolib.Name), fresh)
	cmd.Env = append(os.Environ(), "MINGW="+mingw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	data, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	want, got := dllShapeOf(t, "embedded "+demolib.DLLName, demolib.DLL), dllShapeOf(t, fresh, data)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fresh build differs from the embedded copy (run go generate ./internal/demolib):\nfresh:    %+v\nembedded: %+v", got, want)
	}
	t.Logf("fresh build byte-identical to the embedded copy: %v", string(data) == string(demolib.DLL))
}
