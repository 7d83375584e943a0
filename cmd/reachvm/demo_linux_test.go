//go:build linux

package main

// The demo loads libdemo.so, an ELF library: Linux only.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestDemoJSON runs `reachvm demo --json` in-process and checks what the
// demo exists to show: the call is E8 rel32, the result is right, aspacem
// agrees with the kernel, and the library and the stub lie in vmcode.
func TestDemoJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("demo exited %d: %s%s", code, errb.String(), out.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("demo --json printed invalid JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{"vmcode_base", "vmcode_size", "lib_base", "stub_addr", "call_bytes", "result", "expected", "sync_mismatches"} {
		if _, ok := r[k]; !ok {
			t.Errorf("demo --json lacks %q", k)
		}
	}
	cb, _ := r["call_bytes"].(string)
	if len(cb) != 10 || !strings.HasPrefix(cb, "e8") {
		t.Errorf("call_bytes = %q, want e8 and a rel32", cb)
	}
	if r["result"] != r["expected"] {
		t.Errorf("result %v, expected %v", r["result"], r["expected"])
	}
	if r["sync_mismatches"].(float64) != 0 {
		t.Errorf("sync_mismatches = %v: %v", r["sync_mismatches"], r["mismatches"])
	}
	base, size := r["vmcode_base"].(float64), r["vmcode_size"].(float64)
	if size != 2<<30 {
		t.Errorf("vmcode_size = %v, want 2 GiB", size)
	}
	for _, k := range []string{"lib_base", "stub_addr", "func_addr"} {
		a := r[k].(float64)
		if a < base || a >= base+size {
			t.Errorf("%s %#x lies outside vmcode [%#x, %#x)", k, uint64(a), uint64(base), uint64(base+size))
		}
	}
	maps, _ := r["maps"].([]any)
	var sawVMCode, sawLib bool
	for _, l := range maps {
		s := l.(string)
		sawVMCode = sawVMCode || strings.HasSuffix(s, "[vmcode]")
		sawLib = sawLib || strings.HasSuffix(s, "[privlib libdemo.so]")
	}
	if !sawVMCode || !sawLib {
		t.Errorf("maps lack the [vmcode] or [privlib libdemo.so] annotation:\n%v", maps)
	}
}

func TestDemoText(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--size", "64M"}, &out, &errb); code != 0 {
		t.Fatalf("demo exited %d: %s", code, errb.String())
	}
	for _, want := range []string{"call ", "expected", ": ok", "0 mismatches", "[privlib libdemo.so]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestVMMNearSelf places vmcode within reach of the test binary's text,
// which --near self finds in /proc/self/maps.
func TestVMMNearSelf(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"vmm", "--json", "--near", "self"}, &out, &errb); code != 0 {
		t.Fatalf("exited %d: %s", code, errb.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r["placement"] != "near-app" || len(r["fallbacks"].([]any)) == 0 {
		t.Errorf("--near self: placement %v, fallbacks %v; want near-app, shrunk", r["placement"], r["fallbacks"])
	}
}

// TestSelfText: --near self's range, read from aspacem, holds this
// binary's code.
func TestSelfText(t *testing.T) {
	r, err := selfText()
	if err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(selfText).Pointer()
	if !r.Contains(pc) || r.Size() > 1<<30 {
		t.Errorf("self text %v does not hold selfText at %#x", r, pc)
	}
}
