package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestMaps(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"maps", "--size", "16M"}, &out, &errb); code != 0 {
		t.Fatalf("maps exited %d: %s", code, errb.String())
	}
	// vmcode is one [vmcode] reservation, or on Windows the grid, one
	// reservation per slot, each run of idle slots printed as one line.
	want := "[vmcode]"
	if runtime.GOOS == "windows" {
		want = "[grid slots 0-"
	}
	if !strings.Contains(out.String(), want) {
		t.Errorf("maps lacks %s:\n%s", want, out.String())
	}
	if !strings.Contains(out.String(), "[stack]") && !strings.Contains(out.String(), "[heap]") && !strings.Contains(out.String(), "/") {
		t.Errorf("maps shows none of the process's own mappings:\n%s", out.String())
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"demo", "--size", "12Q"},
		{"demo", "--size", "99999999999G"},
		{"demo", "--size", "4097"},
		{"maps", "--bogus"},
	} {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		if code == 0 {
			t.Errorf("reachvm %q exited 0", args)
		}
		if errb.Len() == 0 {
			t.Errorf("reachvm %q printed no error", args)
		}
	}
}

func TestVMMJSON(t *testing.T) {
	for _, args := range [][]string{
		{"vmm", "--json", "--size", "64M"},
		{"vmm", "--json", "--size", "64M", "--base", "0x100000000000", "--max-offset", "16M"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%q exited %d: %s", args, code, errb.String())
		}
		var r map[string]any
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%q: invalid JSON: %v", args, err)
		}
		for _, k := range []string{"vmcode_base", "vmcode_size", "vmheap_base", "vmheap_size", "wx", "placement", "fallbacks"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%q: JSON lacks %q", args, k)
			}
		}
		if _, ok := r["fallbacks"].([]any); !ok {
			t.Errorf("%q: fallbacks is %T, want a list", args, r["fallbacks"])
		}
		switch args[2] {
		case "--near":
			if r["placement"] != "near-app" || len(r["fallbacks"].([]any)) == 0 {
				t.Errorf("--near self: placement %v, fallbacks %v; want near-app, shrunk", r["placement"], r["fallbacks"])
			}
		case "--size":
			if len(args) > 4 && r["placement"] != "base+offset" {
				t.Errorf("--base --max-offset: placement %v", r["placement"])
			}
		}
	}
}

func TestVMMBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"vmm", "--near", "12"},
		{"vmm", "--near", "0x2000-0x1000"},
		{"vmm", "--base", "0x1001"},
		{"vmm", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code == 0 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// tempDir is t.TempDir without its failing cleanup under Wine, whose
// unlinkat answers "Invalid function" for some paths: the directory
// is removed on a best-effort basis.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reachvm-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
