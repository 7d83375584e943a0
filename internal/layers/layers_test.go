//go:build linux

package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is the import path of reachvm's module.
const module = "github.com/reachvm/reachvm"

// floors gives each part of the module its floor: a package imports only
// packages on lower floors, or packages of its own part (jit imports
// jit/internal/amd64; internal/osmem/sim imports internal/osmem). A
// package belongs to the part with the longest matching prefix. A package
// of the module that no prefix matches fails the check: give it a floor.
var floors = []struct {
	prefix string
	floor  int
}{
	{"mem", 0},
	// The registry of dependents an owner closes before itself
	// (vmm.VMM.Track, vmcode.Code.Track): a data structure, no OS.
	{"internal/lifetime", 0},
	// Decoders of file formats, with no OS in them: the ELF relocation
	// encodings (DT_RELR) privload's and jit's loaders share.
	{"internal/elfrel", 0},
	// The one conversion of an OS address into a Go pointer (Bytes, Ptr):
	// no OS call, for every floor that writes memory it owns.
	{"internal/rawmem", 0},
	// The internal OS backends. procmaps, the parser of the kernel's
	// map, is a floor below osmem, whose Linux backend builds on it.
	{"internal/procmaps", 5},
	// reachvm's own descriptors kept high (fcntl): beneath osmem, whose
	// memfd it moves, and cmd's copy of standard error.
	{"internal/hostfd", 5},
	{"internal/osmem", 10},
	// The one way into native code (calls into loaded libraries).
	{"internal/native", 10},
	// A signal's real default action on the process (raw rt_sigaction,
	// rt_sigprocmask, tgkill): OS calls, nothing of the module.
	{"internal/rawsig", 10},
	{"aspacem", 20},
	{"vmm", 30},
	// Test helpers sit just above what they help (see helpers).
	{"vmm/vmmtest", 35},
	{"vmcode", 40},
	{"jit", 50},
	{"privload", 50},
	// A demo shared library (C source and the built object, embedded), the
	// thing privload and jit load in cmd's demo: a fixture of their floor.
	{"internal/demolib", 50},
	// The strategies under measurement, and bench, which drives them.
	{"bench/strategy", 55},
	// The sample clients: tools built on jit's client API (and privload,
	// for native clients), which cmd runs.
	{"clients", 55},
	{"bench", 60},
	{"cmd", 70},
	{"scripts", 70},
	// This package: it imports nothing of the module.
	{"internal/layers", 80},
}

// helpers are the test-helper packages, each with the package it helps:
// only tests import a helper, and only tests of packages on the helped
// package's floor or above.
var helpers = map[string]string{
	"vmm/vmmtest":              "vmm",
	"internal/osmem/osmemtest": "internal/osmem",
}

// restricted lists the packages that only some packages may import (in
// their code or their tests), whatever the floors say. The functions get
// the importer's path relative to the module and whether the import is a
// test's.
var restricted = map[string]func(importer string, test bool) bool{
	// Only vmm makes OS memory calls. aspacem only queries the OS
	// (SyncCheck compares its map with mem.OS.Regions, LoadSelf loads the
	// running process's; its tests map real memory to compare). The strategies are the code bench measures and
	// make their own calls (bench/strategy's package doc says why), and
	// bench picks the backend they run on. The backends' own tests use it.
	"internal/osmem": func(p string, test bool) bool {
		return p == "vmm" || p == "aspacem" || p == "bench" || p == "bench/strategy" || under(p, "internal/osmem")
	},
	// The simulated address space: a backend that makes no OS calls, for
	// any package's tests; bench runs the strategy matrix on it.
	"internal/osmem/sim": func(p string, test bool) bool {
		return test || p == "bench" || under(p, "internal/osmem")
	},
	// The backends' conformance suite, for the backends' tests.
	"internal/osmem/osmemtest": func(p string, test bool) bool {
		return test && under(p, "internal/osmem")
	},
	// Only aspacem reads the kernel's map. internal/osmem's Linux backend
	// answers mem.OS.Regions (the counterpart of Windows' VirtualQuery)
	// from the same file, through the same parser: a backend querying its
	// own OS, not a second map of the process.
	"internal/procmaps": func(p string, test bool) bool {
		return p == "aspacem" || p == "internal/osmem" || p == "internal/procmaps"
	},
}

// allowed lists imports that break the rules above in code that other
// work is changing: each is "importer imported", relative to the module,
// for the code or the tests of the importer, on any GOOS. The check
// fails on an entry that no longer matches anything, so that the list
// only shrinks. It is empty: keep it so, and any new entry explicit and
// commented.
var allowed = map[string]string{}

// under reports whether p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// floorOf returns the floor of p (relative to the module) and the prefix of
// the part it belongs to.
func floorOf(p string) (floor int, part string, ok bool) {
	best := -1
	for i, f := range floors {
		if under(p, f.prefix) && (best < 0 || len(f.prefix) > len(floors[best].prefix)) {
			best = i
		}
	}
	if best < 0 {
		return 0, "", false
	}
	return floors[best].floor, floors[best].prefix, true
}

// pkg is what the check reads of `go list -json`.
type pkg struct {
	ImportPath   string
	Name         string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// moduleRoot returns the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: not in a module")
	}
	return filepath.Dir(gomod)
}

// listPackages runs `go list -e -json ./...` for goos in root.
func listPackages(t *testing.T, root, goos string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list: %v\n%s", goos, err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("GOOS=%s go list: decoding: %v", goos, err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("GOOS=%s go list ./...: no packages", goos)
	}
	return pkgs
}

// rel returns path relative to the module, and whether it is in it.
func rel(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// violations returns every import of pkgs that breaks the rules and is
// not in allow, and records in used the entries of allow that excused one.
func violations(t *testing.T, goos string, pkgs []pkg, allow map[string]string, used map[string]bool) []string {
	t.Helper()
	var bad []string
	report := func(format string, args ...any) {
		bad = append(bad, fmt.Sprintf("GOOS=%s: ", goos)+fmt.Sprintf(format, args...))
	}
	for _, p := range pkgs {
		if p.Error != nil {
			report("%s: %s", p.ImportPath, p.Error.Err)
			continue
		}
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		ffrom, part, ok := floorOf(from)
		if !ok {
			report("%s has no floor: add it to floors", from)
			continue
		}
		check := func(imp string, test bool) {
			to, ok := rel(imp)
			if !ok || to == from {
				return
			}
			kind := "imports"
			if test {
				kind = "tests import"
			}
			var broken []string
			fto, topart, ok := floorOf(to)
			switch helped, isHelper := helpers[to]; {
			case !ok:
				broken = append(broken, "it has no floor")
			case isHelper && !test:
				broken = append(broken, "it is a test helper, for tests only")
			case isHelper:
				if fh, _, _ := floorOf(helped); fh > ffrom {
					broken = append(broken, fmt.Sprintf("it helps test %s, above %s", helped, from))
				}
			case topart == part:
				// Within one part: Go's own cycle check suffices.
			case test && fto > ffrom:
				broken = append(broken, fmt.Sprintf("floor %d is above %s's %d", fto, from, ffrom))
			case !test && fto >= ffrom:
				broken = append(broken, fmt.Sprintf("floor %d is not below %s's %d", fto, from, ffrom))
			}
			if allow, ok := restricted[to]; ok && !allow(from, test) {
				broken = append(broken, "it is restricted (see restricted)")
			}
			if len(broken) == 0 {
				return
			}
			if key := from + " " + to; allow[key] != "" {
				used[key] = true
				return
			}
			report("%s %s %s: %s", from, kind, to, strings.Join(broken, "; "))
		}
		for _, imp := range p.Imports {
			check(imp, false)
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			check(imp, true)
		}
	}
	return bad
}

// TestLayers checks every package's imports, and its tests', on Linux and
// Windows against floors, helpers and restricted.
func TestLayers(t *testing.T) {
	root := moduleRoot(t)
	used := map[string]bool{}
	for _, goos := range []string{"linux", "windows"} {
		for _, v := range violations(t, goos, listPackages(t, root, goos), allowed, used) {
			t.Error(v)
		}
	}
	for key, why := range allowed {
		if !used[key] {
			t.Errorf("allowed[%q] (%s) excuses nothing any more: remove it", key, why)
		}
	}
}

// TestRulesCatch checks that the rules catch what they are meant to, on
// made-up packages: a check that passes everything would pass main too.
func TestRulesCatch(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	cases := []struct {
		name string
		pkg  pkg
		want string // substring of the one violation; "" for none
	}{
		{"down", pkg{ImportPath: m("vmcode"), Imports: []string{m("vmm"), m("mem")}}, ""},
		{"up", pkg{ImportPath: m("vmm"), Imports: []string{m("vmcode")}}, "vmm imports vmcode: floor 40 is not below"},
		{"sideways", pkg{ImportPath: m("privload"), Imports: []string{m("jit")}}, "privload imports jit: floor 50 is not below"},
		{"own part", pkg{ImportPath: m("jit"), Imports: []string{m("jit/internal/amd64")}}, ""},
		{"test sideways", pkg{ImportPath: m("jit"), XTestImports: []string{m("privload")}}, ""},
		{"test up", pkg{ImportPath: m("aspacem"), XTestImports: []string{m("vmm")}}, "aspacem tests import vmm: floor 30 is above"},
		{"helper", pkg{ImportPath: m("vmm"), XTestImports: []string{m("vmm/vmmtest")}}, ""},
		{"helper in code", pkg{ImportPath: m("jit"), Imports: []string{m("vmm/vmmtest")}}, "a test helper, for tests only"},
		{"helper below", pkg{ImportPath: m("aspacem"), TestImports: []string{m("vmm/vmmtest")}}, "it helps test vmm"},
		{"osmem", pkg{ImportPath: m("cmd/reachvm"), Imports: []string{m("internal/osmem")}}, "cmd/reachvm imports internal/osmem: it is restricted"},
		{"osmem in jit", pkg{ImportPath: m("jit"), Imports: []string{m("internal/osmem")}}, "jit imports internal/osmem: it is restricted"},
		{"osmem in privload tests", pkg{ImportPath: m("privload"), TestImports: []string{m("internal/osmem")}}, "privload tests import internal/osmem: it is restricted"},
		{"rawmem", pkg{ImportPath: m("jit"), Imports: []string{m("internal/rawmem")}}, ""},
		{"osmem in vmm", pkg{ImportPath: m("vmm"), Imports: []string{m("internal/osmem")}}, ""},
		{"sim in tests", pkg{ImportPath: m("vmcode"), XTestImports: []string{m("internal/osmem/sim")}}, ""},
		{"sim in code", pkg{ImportPath: m("vmcode"), Imports: []string{m("internal/osmem/sim")}}, "restricted"},
		{"procmaps", pkg{ImportPath: m("vmm"), Imports: []string{m("internal/procmaps")}}, "vmm imports internal/procmaps: it is restricted"},
		{"no floor", pkg{ImportPath: m("newpkg")}, "newpkg has no floor"},
	}
	for _, c := range cases {
		used := map[string]bool{}
		got := violations(t, "linux", []pkg{c.pkg}, nil, used)
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("%s: violations %q, want none", c.name, got)
		case c.want != "" && (len(got) != 1 || !strings.Contains(got[0], c.want)):
			t.Errorf("%s: violations %q, want one containing %q", c.name, got, c.want)
		}
	}
}

// TestPublicDocs runs `go doc -all` on every public package, on Linux and
// Windows, and fails if the documentation of its exported API (types,
// signatures and prose) names an internal package: by path, or by a
// qualified identifier of one (osmem.Region).
func TestPublicDocs(t *testing.T) {
	root := moduleRoot(t)
	pkgs := listPackages(t, root, "linux")
	var public []string
	internalNames := map[string]bool{}
	for _, p := range pkgs {
		r, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		if slices.Contains(strings.Split(r, "/"), "internal") {
			internalNames[p.Name] = true
			continue
		}
		if p.Name != "main" {
			public = append(public, p.ImportPath)
		}
	}
	if len(public) < 8 {
		t.Fatalf("only %d public packages found: %q", len(public), public)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range internalNames {
			if !yield(regexp.QuoteMeta(n)) {
				return
			}
		}
	})
	// A path (internal/osmem, jit/internal/amd64) or a qualified
	// identifier (osmem.Region, procmaps.Entry).
	bad := regexp.MustCompile(`\binternal/|\b(` + strings.Join(names, "|") + `)\.[A-Z]`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, goos := range []string{"linux", "windows"} {
		for _, path := range public {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command("go", "doc", "-all", path)
				cmd.Dir = root
				cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64")
				out, err := cmd.CombinedOutput()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if bytes.Contains(out, []byte("build constraints exclude all Go files")) {
						return // no such package on goos
					}
					t.Errorf("GOOS=%s go doc -all %s: %v\n%s", goos, path, err, out)
					return
				}
				for i, line := range strings.Split(string(out), "\n") {
					if bad.MatchString(line) {
						t.Errorf("GOOS=%s go doc -all %s, line %d names an internal package: %s", goos, path, i+1, strings.TrimSpace(line))
					}
				}
			}()
		}
	}
	wg.Wait()
}
