package main

// The load command on a real system DLL: under Wine in CI, Wine's own PE
// build of msvcrt.dll.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
)

// systemDLL returns the path of name in the system directory.
func systemDLL(t *testing.T, name string) string {
	t.Helper()
	sys, err := windows.GetSystemDirectory()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(sys, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// TestLoadWindowsDLL loads msvcrt.dll privately and calls two of its
// functions through the CLI: labs with an integer (text report) and
// strlen with a str: argument (JSON report), and checks a missing symbol
// is a failure naming it.
func TestLoadWindowsDLL(t *testing.T) {
	dll := systemDLL(t, "msvcrt.dll")
	var out, errb bytes.Buffer
	if code := run([]string{"load", "--call", "labs", dll, "-7"}, &out, &errb); code != 0 {
		t.Fatalf("load --call labs exited %d: %s", code, errb.String())
	}
	for _, frag := range []string{"msvcrt.dll (" + dll + ")", "in vmcode", "r-x", "labs(-7) = 7 (0x7)"} {
		if !strings.Contains(out.String(), frag) {
			t.Errorf("output lacks %q:\n%s", frag, out.String())
		}
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"load", "--json", "--call", "strlen", dll, "str:reachvm"}, &out, &errb); code != 0 {
		t.Fatalf("load --json --call strlen exited %d: %s", code, errb.String())
	}
	var r struct {
		Name       string    `json:"name"`
		Path       string    `json:"path"`
		Base       uint64    `json:"base"`
		VMCodeBase uint64    `json:"vmcode_base"`
		VMCodeSize uint64    `json:"vmcode_size"`
		Libraries  []loadLib `json:"libraries"`
		Result     *int64    `json:"result"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.EqualFold(r.Name, "msvcrt.dll") || r.Path != dll || len(r.Libraries) == 0 || r.Libraries[0].Path != dll {
		t.Errorf("name %q, path %q, libraries %+v; want msvcrt.dll at %s first", r.Name, r.Path, r.Libraries, dll)
	}
	if r.Base < r.VMCodeBase || r.Base >= r.VMCodeBase+r.VMCodeSize {
		t.Errorf("msvcrt.dll at %#x, outside vmcode [%#x, +%#x)", r.Base, r.VMCodeBase, r.VMCodeSize)
	}
	if r.Result == nil || *r.Result != int64(len("reachvm")) {
		t.Errorf("strlen(\"reachvm\") = %v, want %d", r.Result, len("reachvm"))
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"load", "--call", "no_such_function", dll}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no_such_function") {
		t.Errorf("missing symbol: exit %d, stderr %q; want 1 and the symbol named", code, errb.String())
	}
}
