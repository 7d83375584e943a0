//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
)

const libz = "/usr/lib/x86_64-linux-gnu/libz.so.1"

// TestLoadJSON loads the system's libz with `reachvm load --json --call
// crc32` and checks the report: the fields its usage documents, the image
// and its segments inside vmcode, libc bound to the host with versions,
// and crc32 computed as Go computes it.
func TestLoadJSON(t *testing.T) {
	if _, err := os.Stat(libz); err != nil {
		t.Skip(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"load", "--json", "--call", "crc32", libz, "0", "str:reachvm", "7"}, &out, &errb); code != 0 {
		t.Fatalf("load exited %d: %s", code, errb.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{"base", "size", "vmcode_base", "vmcode_size", "imports", "result", "segments", "dependencies", "libraries"} {
		if _, ok := r[k]; !ok {
			t.Errorf("load --json lacks %q", k)
		}
	}
	if got, want := uint32(r["result"].(float64)), crc32.ChecksumIEEE([]byte("reachvm")); got != want {
		t.Errorf("result %#x, want crc32(\"reachvm\") = %#x", got, want)
	}
	vbase, vsize := r["vmcode_base"].(float64), r["vmcode_size"].(float64)
	base, size := r["base"].(float64), r["size"].(float64)
	if base < vbase || base+size > vbase+vsize {
		t.Errorf("image [%#x, +%#x) outside vmcode [%#x, +%#x)", uint64(base), uint64(size), uint64(vbase), uint64(vsize))
	}
	for _, s := range r["segments"].([]any) {
		seg := s.(map[string]any)
		if seg["start"].(float64) < base || seg["end"].(float64) > base+size {
			t.Errorf("segment %v outside the image", seg)
		}
	}
	hows := map[string]int{}
	for _, i := range r["imports"].([]any) {
		im := i.(map[string]any)
		if _, ok := im["name"].(string); !ok {
			t.Fatalf("import without a name: %v", im)
		}
		if _, ok := im["bound_to"].(float64); !ok {
			t.Fatalf("import without bound_to: %v", im)
		}
		how := im["how"].(string)
		hows[how]++
		if how == "host" && (im["from"] != "libc.so.6" || im["version"] == nil || im["bound_to"].(float64) == 0) {
			t.Errorf("host import %v: want libc.so.6, versioned, bound", im)
		}
	}
	if hows["host"] == 0 || hows["self"] == 0 {
		t.Errorf("imports bound %v: want some to the host's libc and some to libz itself", hows)
	}
	deps := r["dependencies"].([]any)
	if len(deps) != 1 || deps[0].(map[string]any)["how"] != "host" {
		t.Errorf("dependencies %v, want the host's libc", deps)
	}
}

// TestLoadText loads the demo library with a call and checks the text
// report.
func TestLoadText(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"load", "--call", demolib.Compute, path, "6", "7"}, &out, &errb); code != 0 {
		t.Fatalf("load exited %d: %s", code, errb.String())
	}
	s := out.String()
	want := demolib.Expected(6, 7)
	for _, frag := range []string{"libdemo.so", "segments:", "r-x", "RELRO", "imports (3):", "demo_helper", "self libdemo.so",
		demolib.Compute + "(6, 7) = " + strconv.FormatInt(want, 10)} {
		if !strings.Contains(s, frag) {
			t.Errorf("output lacks %q:\n%s", frag, s)
		}
	}
}

// TestLoadErrors: bad invocations exit 2, failures 1, each with a
// message naming what is wrong.
func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing.so")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"load"}, 2, "reachvm load: missing LIB\nrun 'reachvm help load' for usage"},
		{[]string{"load", missing}, 1, missing},
		{[]string{"load", libz, "1"}, 2, "without --call"},
		{[]string{"load", "--call", "crc32", libz, "x1"}, 2, `bad argument "x1"`},
		{[]string{"load", "--call", "no_such_function", libz}, 1, `no exported symbol "no_such_function"`},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

// TestLoadJSONEmptyLists: libdemo.so needs no library and defines no
// symbol versions: its lists are [], never null, and so is args without
// --call (result is null then, as documented).
func TestLoadJSONEmptyLists(t *testing.T) {
	path := filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"load", "--json", "--size", "64M", path}, &out, &errb); code != 0 {
		t.Fatalf("load exited %d: %s", code, errb.String())
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dependencies", "versions", "args"} {
		if string(r[k]) != "[]" {
			t.Errorf("%s = %s, want []", k, r[k])
		}
	}
	if string(r["result"]) != "null" {
		t.Errorf("result = %s without --call, want null", r["result"])
	}
	var libs []map[string]json.RawMessage
	if err := json.Unmarshal(r["libraries"], &libs); err != nil || len(libs) != 1 {
		t.Fatalf("libraries %s: %v", r["libraries"], err)
	}
	for _, k := range []string{"segments", "dependencies", "imports", "versions"} {
		if v := string(libs[0][k]); v == "null" || v == "" || v[0] != '[' {
			t.Errorf("libraries[0].%s = %s, want a list", k, v)
		}
	}
	if bytes.Contains(bytes.ReplaceAll(out.Bytes(), []byte(`"result": null`), nil), []byte("null")) {
		t.Errorf("null besides result:\n%s", out.String())
	}
}

// TestMapsLoad: maps --load shows the library as [privlib NAME], next to
// [vmcode] and [vmheap], as README says.
func TestMapsLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"maps", "--size", "64M", "--load", path}, &out, &errb); code != 0 {
		t.Fatalf("maps exited %d: %s", code, errb.String())
	}
	for _, want := range []string{"[vmcode]", "[vmheap]", "[privlib libdemo.so]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("maps --load lacks %s:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"maps", "--size", "64M"}, &out, &errb); code != 0 || strings.Contains(out.String(), "[privlib") {
		t.Errorf("maps without --load: exit %d, privlib lines:\n%s", code, out.String())
	}
}
