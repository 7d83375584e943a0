//go:build linux || windows

package main

// The demo on each OS it runs on: libdemo.so on Linux, demo.dll on
// Windows (under Wine in CI, where scripts/wine/test.sh runs these tests
// and the built reachvm.exe).

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// demoVMCodeLine is the annotation of idle vmcode in the demo's and maps'
// output: one [vmcode] line on Linux; on Windows, runs of idle grid slots
// folded into one line each.
func demoVMCodeLine() string {
	if runtime.GOOS == "windows" {
		return "[grid slots "
	}
	return "[vmcode]"
}

// TestDemoJSON runs `reachvm demo --json` in-process and checks what the
// demo exists to show: the call is E8 rel32, the result is right, aspacem
// agrees with the OS, the library and the stub lie in vmcode, and on
// Windows vmcode is the grid of 640 KiB slots.
func TestDemoJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("demo exited %d: %s%s", code, errb.String(), out.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("demo --json printed invalid JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{"vmcode_base", "vmcode_size", "placement", "wx", "grid_slots", "grid_slot_size", "lib", "lib_base", "lib_in_vmcode",
		"stub_addr", "call_bytes", "result", "expected", "sync_mismatches", "maps", "imports"} {
		if _, ok := r[k]; !ok {
			t.Errorf("demo --json lacks %q", k)
		}
	}
	name, _, _ := demoLibrary()
	if r["lib"] != name {
		t.Errorf("lib = %v, want %s", r["lib"], name)
	}
	cb, _ := r["call_bytes"].(string)
	if len(cb) != 10 || !strings.HasPrefix(cb, "e8") {
		t.Errorf("call_bytes = %q, want e8 and a rel32", cb)
	}
	if r["result"] != r["expected"] {
		t.Errorf("result %v, expected %v", r["result"], r["expected"])
	}
	if n, _ := r["sync_mismatches"].(float64); n != 0 {
		t.Errorf("sync_mismatches = %v: %v", r["sync_mismatches"], r["mismatches"])
	}
	// W^X is on unless the suite runs with it off (vmm.WXEnv).
	wantWX := true
	var mode vmm.WXMode
	if env := os.Getenv(vmm.WXEnv); env != "" && mode.Set(env) == nil && mode == vmm.WXOff {
		wantWX = false
	}
	if r["lib_in_vmcode"] != true || r["wx"] != wantWX {
		t.Errorf("lib_in_vmcode %v, wx %v; want true, %v", r["lib_in_vmcode"], r["wx"], wantWX)
	}
	base, size := r["vmcode_base"].(float64), r["vmcode_size"].(float64)
	if size != 2<<30 {
		t.Errorf("vmcode_size = %v, want 2 GiB", size)
	}
	libBase, libSize := r["lib_base"].(float64), r["lib_size"].(float64)
	if libBase < base || libBase+libSize > base+size {
		t.Errorf("the library [%#x, +%#x) is not inside vmcode [%#x, +%#x)", uint64(libBase), uint64(libSize), uint64(base), uint64(size))
	}
	for _, k := range []string{"stub_addr", "func_addr"} {
		a := r[k].(float64)
		if a < base || a >= base+size {
			t.Errorf("%s %#x lies outside vmcode [%#x, %#x)", k, uint64(a), uint64(base), uint64(base+size))
		}
	}
	slots, slot := r["grid_slots"].(float64), r["grid_slot_size"].(float64)
	if runtime.GOOS == "windows" {
		// 2 GiB is 3,276 slots of 640 KiB and a short one.
		if r["placement"] != "grid" || slots != 3277 || slot != 640<<10 {
			t.Errorf("placement %v, %v grid slots of %v bytes; want grid, 3277 of 640 KiB", r["placement"], slots, slot)
		}
		// The stub's unit and the library take whole slots of their own.
		if st := r["stub_addr"].(float64); uint64(st-base)%uint64(slot) != 0 || st < libBase+libSize {
			t.Errorf("stub at %#x: want the start of a grid slot past the library's", uint64(st))
		}
	} else if slots != 0 || slot != 0 {
		t.Errorf("grid_slots %v, grid_slot_size %v without a grid; want 0", slots, slot)
	}
	maps, _ := r["maps"].([]any)
	var sawVMCode, sawLib, sawStub bool
	for _, l := range maps {
		s := l.(string)
		sawVMCode = sawVMCode || strings.Contains(s, demoVMCodeLine())
		sawLib = sawLib || strings.HasSuffix(s, "[privlib "+name+"]")
		sawStub = sawStub || strings.HasSuffix(s, "[fcache]") && strings.Contains(s, " r-x")
	}
	if !sawVMCode || !sawLib || !sawStub {
		t.Errorf("maps lack the %s, [privlib %s] or r-x [fcache] line:\n%v", demoVMCodeLine(), name, maps)
	}
}

func TestDemoText(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--size", "64M"}, &out, &errb); code != 0 {
		t.Fatalf("demo exited %d: %s", code, errb.String())
	}
	name, _, _ := demoLibrary()
	want := []string{"call ", "expected", ": ok", "0 mismatches between aspacem and " + osMapName(), "[privlib " + name + "]", "inside vmcode"}
	if runtime.GOOS == "windows" {
		want = append(want, `placed by "grid"`, "a grid of 103 reservations of 640 KiB")
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestMapsLoadDemo: maps --load shows the demo library as [privlib NAME]
// next to vmcode and [vmheap] (on Windows, with W^X, the writable view of
// vmcode too), as README says.
func TestMapsLoadDemo(t *testing.T) {
	name, image, _ := demoLibrary()
	path := filepath.Join(tempDir(t), name)
	if err := os.WriteFile(path, image, 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"maps", "--size", "64M", "--load", path}, &out, &errb); code != 0 {
		t.Fatalf("maps exited %d: %s", code, errb.String())
	}
	want := []string{demoVMCodeLine(), "[vmheap]", "[privlib " + name + "]"}
	if runtime.GOOS == "windows" {
		want = append(want, "[vmcode rw alias]", filepath.Base(os.Args[0]))
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("maps --load lacks %s:\n%s", w, out.String())
		}
	}
}
