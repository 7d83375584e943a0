//go:build linux

package main

// Placement near the reachvm binary: Linux only (the Windows grid does
// not place near an application yet).

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

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
