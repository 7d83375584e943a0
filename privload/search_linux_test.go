//go:build linux

package privload

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// The search fixtures: copies of libfx_which.so returning 1 (in
// which/rpath), 2 (which/llp), 3 (which/runpath), 4 (which/sp), and
// libraries needing it through a DT_RPATH, a DT_RUNPATH, or neither.
func init() {
	which := func(dir, v string) fxBuild {
		return fxBuild{out: "which/" + dir + "/libfx_which.so", srcs: []string{"which.c"}, flags: append([]string{"-DFX_WHICH=" + v}, fxNoLibc...)}
	}
	rpath := func(dirs string) []string {
		return append([]string{"-Wl,--disable-new-dtags", "-Wl,-rpath," + dirs}, fxNoLibc...)
	}
	runpath := func(dirs string) []string {
		return append([]string{"-Wl,--enable-new-dtags", "-Wl,-rpath," + dirs}, fxNoLibc...)
	}
	const w = "which/rpath/libfx_which.so"
	fxBuilds = append(fxBuilds,
		which("rpath", "1"), which("llp", "2"), which("runpath", "3"), which("sp", "4"),
		// glibc-hwcaps copies, preferred to the directory's own on a
		// CPU of their level (every x86-64 CPU of the last decade is
		// x86-64-v2; v4 needs AVX-512).
		which("hw", "5"), which("hw/glibc-hwcaps/x86-64-v2", "6"), which("hw/glibc-hwcaps/x86-64-v4", "7"),
		fxBuild{out: "which/libfx_use_rpath.so", srcs: []string{"usewhich.c"}, flags: rpath("$ORIGIN/rpath"), links: []string{w}},
		fxBuild{out: "which/libfx_use_runpath.so", srcs: []string{"usewhich.c"}, flags: runpath("${ORIGIN}/runpath"), links: []string{w}},
		fxBuild{out: "which/libfx_use_none.so", srcs: []string{"usewhich.c"}, flags: fxNoLibc, links: []string{w}},
		fxBuild{out: "which/mid/libfx_mid.so", srcs: []string{"usewhich.c"}, flags: fxNoLibc, links: []string{w}},
		fxBuild{out: "which/libfx_top_rpath.so", srcs: []string{"usemid.c"}, flags: rpath("$ORIGIN/rpath:$ORIGIN/mid"), links: []string{"which/mid/libfx_mid.so"}},
		fxBuild{out: "which/libfx_top_runpath.so", srcs: []string{"usemid.c"}, flags: runpath("$ORIGIN/runpath:$ORIGIN/mid"), links: []string{"which/mid/libfx_mid.so"}},
		fxBuild{out: "ghost/libfx_ghost.so", srcs: []string{"plain.c"}, flags: fxNoLibc},
		fxBuild{out: "which/libfx_ghost_rpath.so", srcs: []string{"plain.c"}, flags: rpath("$ORIGIN/nothere:$FOO/x"), links: []string{"ghost/libfx_ghost.so"}},
		fxBuild{out: "which/libfx_ghost_runpath.so", srcs: []string{"plain.c"}, flags: runpath("$ORIGIN/nowhere"), links: []string{"ghost/libfx_ghost.so"}},
		fxBuild{out: "libfx_nostack.so", srcs: []string{"nostack.s"}, flags: []string{"-nostdlib"}},
		// -z nodefaultlib: its dependencies are searched neither in
		// the system directories nor in cache entries that lie there.
		fxBuild{out: "which/libfx_nodeflib.so", srcs: []string{"plain.c"}, flags: []string{"-nostdlib", "-Wl,-z,nodefaultlib", "-Wl,--no-as-needed", "-lz"}},
	)
}

// dynPath returns the DT_RPATH and DT_RUNPATH of the file at path, as
// debug/elf reads them.
func dynPath(t *testing.T, path string) (rpath, runpath []string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rpath, _ = f.DynString(elf.DT_RPATH)
	runpath, _ = f.DynString(elf.DT_RUNPATH)
	return rpath, runpath
}

// loadWhich loads path with opts and returns what fn returns, and the
// path libfx_which.so was loaded from.
func loadWhich(t *testing.T, path, fn string, opts Options) (int64, string) {
	t.Helper()
	v := newVMM(t)
	free := v.FreeVMCode()
	lib := loadOK(t, v, path, opts)
	got := int64(call(lookup(t, lib, fn)))
	var from string
	for _, l := range lib.Libraries() {
		if l.Name() == "libfx_which.so" {
			from = l.Path()
		}
	}
	closeChecked(t, v, lib, free)
	return got, from
}

// TestSearchOrder proves, with copies of one library that return
// different values, the order of glibc's search: DT_RPATH, then
// LD_LIBRARY_PATH, then Options.SearchPath, then DT_RUNPATH.
func TestSearchOrder(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	useRpath, useRunpath, useNone := filepath.Join(dir, "libfx_use_rpath.so"), filepath.Join(dir, "libfx_use_runpath.so"), filepath.Join(dir, "libfx_use_none.so")
	// The fixtures are what they claim: -rpath with --disable-new-dtags
	// gives a DT_RPATH, --enable-new-dtags a DT_RUNPATH.
	if rp, rn := dynPath(t, useRpath); !slices.Equal(rp, []string{"$ORIGIN/rpath"}) || rn != nil {
		t.Fatalf("libfx_use_rpath.so: DT_RPATH %q, DT_RUNPATH %q", rp, rn)
	}
	if rp, rn := dynPath(t, useRunpath); rp != nil || !slices.Equal(rn, []string{"${ORIGIN}/runpath"}) {
		t.Fatalf("libfx_use_runpath.so: DT_RPATH %q, DT_RUNPATH %q", rp, rn)
	}
	llp, sp := filepath.Join(dir, "llp"), filepath.Join(dir, "sp")
	for _, tc := range []struct {
		name    string
		path    string
		llp     string
		sp      []string
		want    int64
		wantDir string
	}{
		{"rpath", useRpath, "", nil, 1, "rpath"},
		{"runpath", useRunpath, "", nil, 3, "runpath"},
		{"llp", useNone, llp, nil, 2, "llp"},
		{"searchpath", useNone, "", []string{sp}, 4, "sp"},
		{"rpath before llp", useRpath, llp, nil, 1, "rpath"},
		{"llp before runpath", useRunpath, llp, nil, 2, "llp"},
		{"llp before searchpath", useNone, llp, []string{sp}, 2, "llp"},
		{"searchpath before runpath", useRunpath, "", []string{sp}, 4, "sp"},
		// Empty LD_LIBRARY_PATH elements are the current directory,
		// which has no copy; semicolons separate too.
		{"llp elements", useNone, "::/nonexistent;" + llp, nil, 2, "llp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LD_LIBRARY_PATH", tc.llp)
			got, from := loadWhich(t, tc.path, "fx_use", Options{SearchPath: tc.sp})
			if got != tc.want || from != filepath.Join(dir, tc.wantDir, "libfx_which.so") {
				t.Errorf("fx_use() = %d from %s, want %d from %s", got, from, tc.want, tc.wantDir)
			}
		})
	}
}

// TestSearchHwcaps: in each directory, the glibc-hwcaps subdirectory of
// the best level the CPU supports comes first.
func TestSearchHwcaps(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which", "hw")
	t.Setenv("LD_LIBRARY_PATH", dir)
	want, wantFrom := int64(5), filepath.Join(dir, "libfx_which.so")
	levels := thisMachine().Subdirs
	switch {
	case slices.Contains(levels, "x86-64-v4"):
		want, wantFrom = 7, filepath.Join(dir, "glibc-hwcaps", "x86-64-v4", "libfx_which.so")
	case slices.Contains(levels, "x86-64-v2"):
		want, wantFrom = 6, filepath.Join(dir, "glibc-hwcaps", "x86-64-v2", "libfx_which.so")
	}
	got, from := loadWhich(t, "libfx_which.so", "fx_which", Options{})
	if got != want || from != wantFrom {
		t.Errorf("CPU levels %v: fx_which() = %d from %s, want %d from %s", levels, got, from, want, wantFrom)
	}
	if len(levels) == 0 {
		t.Skip("the CPU supports no glibc-hwcaps level: only the plain copy was tried")
	}
}

// TestSearchNodeflib: a library linked with -z nodefaultlib needing the
// system's libz does not find it, with privload as with ld.so; from
// LD_LIBRARY_PATH it does.
func TestSearchNodeflib(t *testing.T) {
	zlib := ldconfigPath(t, "libz.so.1")
	path := fxPath(t, "which/libfx_nodeflib.so")
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	flags1, _ := f.DynValue(elf.DT_FLAGS_1)
	f.Close()
	if len(flags1) != 1 || flags1[0]&uint64(elf.DF_1_NODEFLIB) == 0 {
		t.Fatalf("fixture DT_FLAGS_1 %#x lacks DF_1_NODEFLIB", flags1)
	}
	t.Setenv("LD_LIBRARY_PATH", "")
	v := newVMM(t)
	_, err = Load(v, path, Options{})
	want := "dependency libz.so.1 not found; looked in " + ldCacheFile + ", outside the system directories (DF_1_NODEFLIB) (entry " + zlib + " skipped); it is not"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load: %v\nwant %s", err, want)
	}
	t.Setenv("LD_LIBRARY_PATH", filepath.Dir(zlib))
	lib := loadOK(t, v, path, Options{})
	if deps := lib.Dependencies(); len(deps) != 1 || deps[0].Path != filepath.Join(filepath.Dir(zlib), "libz.so.1") {
		t.Errorf("dependencies %+v, want libz.so.1 from LD_LIBRARY_PATH", deps)
	}
}

// TestSearchChain: a DT_RPATH serves the dependencies of dependencies
// (mid, which has none, finds libfx_which.so on top's), a DT_RUNPATH only
// the library's own.
func TestSearchChain(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	t.Setenv("LD_LIBRARY_PATH", "")
	if got, from := loadWhich(t, filepath.Join(dir, "libfx_top_rpath.so"), "fx_top", Options{}); got != 1 || from != filepath.Join(dir, "rpath", "libfx_which.so") {
		t.Errorf("through top's DT_RPATH: fx_top() = %d from %s, want 1 from rpath/", got, from)
	}
	top := filepath.Join(dir, "libfx_top_runpath.so")
	v := newVMM(t)
	free := v.FreeVMCode()
	_, err := Load(v, top, Options{})
	mid := filepath.Join(dir, "mid", "libfx_mid.so")
	if err == nil || !strings.Contains(err.Error(), "dependency libfx_which.so not found") || !strings.Contains(err.Error(), mid+" (needed by "+top) || strings.Contains(err.Error(), "DT_RUNPATH") {
		t.Errorf("Load of top with a DT_RUNPATH: %v, want mid's libfx_which.so not found, top's DT_RUNPATH not searched for it", err)
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x after a failed load, %#x before", got, free)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
	// The caller's search path serves every library.
	if got, _ := loadWhich(t, top, "fx_top", Options{SearchPath: []string{filepath.Join(dir, "sp")}}); got != 4 {
		t.Errorf("with Options.SearchPath: fx_top() = %d, want 4", got)
	}
}

// TestSearchNotFound: the error of a missing name lists every place
// looked in, in order, with where each comes from.
func TestSearchNotFound(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	llp, sp := filepath.Join(dir, "llp"), filepath.Join(dir, "sp")
	t.Setenv("LD_LIBRARY_PATH", llp)
	sys := layout().dirs
	sysPlaces := []string{ldCacheFile + " (no entry)"}
	for _, d := range sys {
		sysPlaces = append(sysPlaces, d+" (system directory)")
	}
	for _, tc := range []struct {
		lib    string
		places []string
	}{
		{"libfx_ghost_rpath.so", append([]string{
			filepath.Join(dir, "nothere") + " (DT_RPATH of " + filepath.Join(dir, "libfx_ghost_rpath.so") + ")",
			`"$FOO/x" (DT_RPATH of ` + filepath.Join(dir, "libfx_ghost_rpath.so") + "; skipped: unknown token $FOO)",
			llp + " (LD_LIBRARY_PATH)",
			sp + " (Options.SearchPath)",
		}, sysPlaces...)},
		{"libfx_ghost_runpath.so", append([]string{
			llp + " (LD_LIBRARY_PATH)",
			sp + " (Options.SearchPath)",
			filepath.Join(dir, "nowhere") + " (DT_RUNPATH of " + filepath.Join(dir, "libfx_ghost_runpath.so") + ")",
		}, sysPlaces...)},
	} {
		t.Run(tc.lib, func(t *testing.T) {
			v := newVMM(t)
			free := v.FreeVMCode()
			path := filepath.Join(dir, tc.lib)
			_, err := Load(v, path, Options{SearchPath: []string{sp}})
			want := "privload: " + path + ": dependency libfx_ghost.so not found; looked in " + strings.Join(tc.places, ", ") + "; it is not a system library either (Options.System)"
			if err == nil || err.Error() != want || !errors.Is(err, ErrLink) {
				t.Errorf("Load: %v\nwant (ErrLink) %s", err, want)
			}
			if got := v.FreeVMCode(); got != free {
				t.Errorf("vmcode free bytes %#x after the failed load, %#x before", got, free)
			}
			vmmtest.SyncCheck(t, v, "after failed load")
		})
	}
	// The root, by a bare name: no loader, so no DT_RPATH or DT_RUNPATH.
	v := newVMM(t)
	_, err := Load(v, "libfx_ghost.so", Options{SearchPath: []string{sp}})
	want := "privload: libfx_ghost.so not found; looked in " + strings.Join(append([]string{llp + " (LD_LIBRARY_PATH)", sp + " (Options.SearchPath)"}, sysPlaces...), ", ")
	if err == nil || err.Error() != want {
		t.Errorf("Load(libfx_ghost.so): %v\nwant %s", err, want)
	}
}

// TestSearchRootName loads libraries by a bare name, as dlopen takes
// them: a fixture through LD_LIBRARY_PATH, and the system's libz through
// ld.so.cache, the file ldconfig -p names, from any directory.
func TestSearchRootName(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	t.Setenv("LD_LIBRARY_PATH", filepath.Join(dir, "runpath"))
	if got, from := loadWhich(t, "libfx_which.so", "fx_which", Options{}); got != 3 || from != filepath.Join(dir, "runpath", "libfx_which.so") {
		t.Errorf("libfx_which.so through LD_LIBRARY_PATH: fx_which() = %d from %s", got, from)
	}
	t.Setenv("LD_LIBRARY_PATH", "")
	want := ldconfigPath(t, "libz.so.1")
	t.Chdir(t.TempDir())
	v := newVMM(t)
	free := v.FreeVMCode()
	lib := loadOK(t, v, "libz.so.1", Options{})
	if lib.Path() != want || lib.Name() != "libz.so.1" {
		t.Errorf("libz.so.1 loaded as %s from %s, want %s", lib.Name(), lib.Path(), want)
	}
	if got := call(lookup(t, lib, "adler32"), 1, 0, 0); got != 1 {
		t.Errorf("adler32(1, NULL, 0) = %d, want 1", got)
	}
	closeChecked(t, v, lib, free)
	// A name with a slash is a path, relative to the current directory.
	_, err := Load(v, "./libz.so.1", Options{})
	if err == nil || !strings.Contains(err.Error(), "./libz.so.1: opening: no such file") {
		t.Errorf("Load(./libz.so.1) in an empty directory: %v", err)
	}
}

// ldconfigPath returns the path ldconfig -p gives name (for this
// machine's x86-64 libraries), skipping the test if it cannot tell.
func ldconfigPath(t *testing.T, name string) string {
	t.Helper()
	ldconfig, err := exec.LookPath("ldconfig")
	if err != nil {
		ldconfig = "/sbin/ldconfig"
	}
	out, err := exec.Command(ldconfig, "-p").Output()
	if err != nil {
		t.Skipf("ldconfig -p: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), name+" (libc6,x86-64) => "); ok {
			return p
		}
	}
	t.Skipf("ldconfig -p lists no %s", name)
	return ""
}

// TestSearchLDCacheReread: the cache is read once, and again when it
// changes.
func TestSearchLDCacheReread(t *testing.T) {
	want := ldconfigPath(t, "libz.so.1")
	data, err := os.ReadFile(ldCacheFile)
	if err != nil {
		t.Skip(err)
	}
	copyPath := filepath.Join(t.TempDir(), "ld.so.cache")
	if err := os.WriteFile(copyPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := ldCacheFile
	ldCacheFile = copyPath
	t.Cleanup(func() { ldCacheFile = old })
	reads := func() int {
		ldCache.mu.Lock()
		defer ldCache.mu.Unlock()
		return ldCache.reads
	}
	n := reads()
	for range 3 {
		if p, err := ldCacheLookup("libz.so.1"); err != nil || p != want {
			t.Fatalf("lookup: %q, %v; want %s", p, err, want)
		}
	}
	if reads() != n+1 {
		t.Errorf("%d reads for 3 lookups of an unchanged file, want 1", reads()-n)
	}
	// Replace it (as ldconfig does, by renaming) with a broken copy: the
	// lookup reads it again and says why it cannot be used.
	tmp := copyPath + ".new"
	if err := os.WriteFile(tmp, data[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, copyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := ldCacheLookup("libz.so.1"); err == nil || !strings.Contains(err.Error(), "truncated header") {
		t.Errorf("lookup in a truncated cache: %v", err)
	}
}

// TestSearchPlugins loads real plugins from subdirectories of the system
// library directory, whose private dependencies live in the system
// directory itself (found through ld.so.cache or the system directories,
// not next to the plugin).
func TestSearchPlugins(t *testing.T) {
	var cands []string
	for _, pat := range []string{
		"/usr/lib/x86_64-linux-gnu/security/pam_*.so",
		"/usr/lib/x86_64-linux-gnu/sasl2/lib*.so",
		"/usr/lib/x86_64-linux-gnu/gdk-pixbuf-2.0/*/loaders/*.so",
		"/usr/lib/x86_64-linux-gnu/engines-3/*.so",
		"/usr/lib/x86_64-linux-gnu/ossl-modules/*.so",
	} {
		m, _ := filepath.Glob(pat)
		cands = append(cands, m...)
	}
	if len(cands) == 0 {
		t.Skip("no plugins here: none of security/pam_*.so, sasl2, gdk-pixbuf loaders, engines-3, ossl-modules under /usr/lib/x86_64-linux-gnu")
	}
	t.Setenv("LD_LIBRARY_PATH", "")
	v := newVMM(t)
	loaded := 0
	var refused []string
	for _, p := range cands {
		lib, err := Load(v, p, Options{SkipInit: true})
		if err != nil {
			refused = append(refused, err.Error())
			// A plugin refused for what privload does not support
			// is fine; one refused because a dependency was not
			// found is what this test is about.
			if strings.Contains(err.Error(), "not found") {
				t.Errorf("%s: %v", p, err)
			}
			continue
		}
		var private []string
		for _, l := range lib.Libraries()[1:] {
			if filepath.Dir(l.Path()) != filepath.Dir(p) {
				private = append(private, l.Path())
			}
		}
		if len(private) > 0 {
			loaded++
			if loaded <= 3 {
				t.Logf("%s: private dependencies %v", p, private)
			}
		}
		if err := lib.Close(); err != nil {
			t.Errorf("%s: Close: %v", p, err)
		}
	}
	vmmtest.SyncCheck(t, v, "after the plugins")
	if loaded == 0 {
		t.Skipf("none of %d plugins loaded with a private dependency from another directory (refusals: %.3q)", len(cands), refused)
	}
	t.Logf("%d of %d plugins loaded with private dependencies from the system directory", loaded, len(cands))
}

// TestFixtureNoStack: a library without PT_GNU_STACK asks glibc for an
// executable stack, and is refused.
func TestFixtureNoStack(t *testing.T) {
	path := fxPath(t, "libfx_nostack.so")
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_GNU_STACK {
			t.Fatal("the fixture has a PT_GNU_STACK: the toolchain added one")
		}
	}
	f.Close()
	loadFails(t, newVMM(t), path, path+": no PT_GNU_STACK: glibc takes its absence as asking for an executable stack", ErrUnsupported)
}

// TestExpandDST expands the tokens of search list elements as ld.so does.
func TestExpandDST(t *testing.T) {
	origin := func() (string, error) { return "/o/dir", nil }
	lib, plat := layout().lib, layout().platform
	for _, tc := range []struct {
		in      string
		secure  bool
		want    string
		skipped string
	}{
		{"/plain", false, "/plain", ""},
		{"$ORIGIN", false, "/o/dir", ""},
		{"$ORIGIN/../lib", false, "/o/dir/../lib", ""},
		{"${ORIGIN}/x", false, "/o/dir/x", ""},
		{"/usr/$LIB/x", false, "/usr/" + lib + "/x", ""},
		{"/p/${PLATFORM}", false, "/p/" + plat, ""},
		{"/a/$LIBX", false, "", "unknown token $LIBX"},
		{"/a/$ORIGINx", false, "", "unknown token $ORIGINx"},
		{"/a/${FOO}", false, "", "unknown token $FOO"},
		{"/a/${ORIGIN", false, "", "unterminated ${"},
		{"rel", false, "rel", ""},
		{"rel", true, "", "relative, in a secure process"},
		{"$ORIGIN/x", true, "", "relative or from $ORIGIN, in a secure process"},
		{"/usr/$LIB", true, "/usr/" + lib, ""},
	} {
		got, skip := expandDST(tc.in, origin, tc.secure)
		if got != tc.want || skip != tc.skipped {
			t.Errorf("expandDST(%q, secure %v) = %q, %q; want %q, %q", tc.in, tc.secure, got, skip, tc.want, tc.skipped)
		}
	}
}

// TestSearchSecure: a secure process ignores LD_LIBRARY_PATH.
func TestSearchSecure(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	t.Setenv("LD_LIBRARY_PATH", filepath.Join(dir, "llp"))
	old := secureProcess
	secureProcess = func() bool { return true }
	t.Cleanup(func() { secureProcess = old })
	v := newVMM(t)
	_, err := Load(v, filepath.Join(dir, "libfx_use_none.so"), Options{})
	if err == nil || !strings.Contains(err.Error(), "dependency libfx_which.so not found") || strings.Contains(err.Error(), "LD_LIBRARY_PATH") {
		t.Errorf("secure load: %v, want libfx_which.so not found, LD_LIBRARY_PATH not searched", err)
	}
	if errors.Is(err, ErrUnsupported) {
		t.Errorf("class %v", err)
	}
}

// TestSearchAgreesWithLdso runs the host's own dynamic linker on the same
// files in the same environment (a gcc-built program that dlopens the
// library, calls it and asks dladdr where fx_which came from) and checks
// that privload takes the same copy, or fails where it fails.
func TestSearchAgreesWithLdso(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	prog := filepath.Join(t.TempDir(), "dlwhich")
	if out, err := exec.Command("gcc", "-O2", "-o", prog, fxSrc("dlwhich.c")).CombinedOutput(); err != nil {
		t.Fatalf("building dlwhich: %v\n%s", err, out)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	llp := filepath.Join(dir, "llp")
	// A copy built for another machine, which both pass over.
	data, err := os.ReadFile(filepath.Join(dir, "sp", "libfx_which.so"))
	if err != nil {
		t.Fatal(err)
	}
	le.PutUint16(data[18:], uint16(elf.EM_AARCH64))
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "libfx_which.so"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lib, fn, llp string
	}{
		{"libfx_use_none.so", "fx_use", other + ":" + llp},
		{"libfx_use_rpath.so", "fx_use", ""},
		{"libfx_use_runpath.so", "fx_use", ""},
		{"libfx_use_none.so", "fx_use", ""},
		{"libfx_use_none.so", "fx_use", llp},
		{"libfx_use_rpath.so", "fx_use", llp},
		{"libfx_use_runpath.so", "fx_use", llp},
		{"libfx_use_none.so", "fx_use", "::/nonexistent;" + llp},
		{"libfx_use_none.so", "fx_use", filepath.Join(dir, "hw")},
		{"libfx_top_rpath.so", "fx_top", ""},
		{"libfx_top_runpath.so", "fx_top", ""},
		{"libfx_top_runpath.so", "fx_top", llp},
		{"libfx_ghost_rpath.so", "fx_plain", ""},
		{"libfx_nodeflib.so", "fx_plain", ""},
		// By a bare name: LD_LIBRARY_PATH, then the cache.
		{"libfx_which.so", "fx_which", filepath.Join(dir, "runpath")},
		{"libfx_which.so", "fx_which", ""},
	} {
		t.Run(tc.lib+"/"+tc.llp, func(t *testing.T) {
			path := tc.lib
			if strings.HasPrefix(tc.lib, "libfx_use") || strings.HasPrefix(tc.lib, "libfx_top") || strings.HasPrefix(tc.lib, "libfx_ghost") || strings.HasPrefix(tc.lib, "libfx_nodeflib") {
				path = filepath.Join(dir, tc.lib)
			}
			cmd := exec.Command(prog, path, tc.fn)
			cmd.Dir = cwd
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+tc.llp)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("dlwhich: %v", err)
			}
			host := strings.TrimSpace(string(out))
			t.Setenv("LD_LIBRARY_PATH", tc.llp)
			v := newVMM(t)
			lib, err := Load(v, path, Options{})
			var mine string
			if err != nil {
				mine = "error"
			} else {
				var from string
				for _, l := range lib.Libraries() {
					if l.Name() == "libfx_which.so" {
						from = l.Path()
					}
				}
				mine = fmt.Sprintf("%d %s", call(lookup(t, lib, tc.fn)), from)
				if err := lib.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if strings.HasPrefix(host, "error") && mine == "error" {
				t.Logf("both fail: ld.so %q; privload %v", host, err)
				return
			}
			if host != mine {
				t.Errorf("ld.so: %q, privload: %q (%v)", host, mine, err)
			}
		})
	}
}

// TestSearchOtherMachine: a copy built for another machine, first on the
// search path, is passed over (its refusal listed), as ld.so passes over
// it, and the next copy taken.
func TestSearchOtherMachine(t *testing.T) {
	dir := filepath.Join(fixtures(t), "which")
	data, err := os.ReadFile(filepath.Join(dir, "sp", "libfx_which.so"))
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	le.PutUint16(data[18:], uint16(elf.EM_AARCH64))
	if err := os.WriteFile(filepath.Join(other, "libfx_which.so"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LD_LIBRARY_PATH", other+":"+filepath.Join(dir, "llp"))
	if got, from := loadWhich(t, filepath.Join(dir, "libfx_use_none.so"), "fx_use", Options{}); got != 2 || from != filepath.Join(dir, "llp", "libfx_which.so") {
		t.Errorf("fx_use() = %d from %s, want 2 from llp/ (the EM_AARCH64 copy passed over)", got, from)
	}
	// Found nowhere else, the refusal is among the places listed.
	t.Setenv("LD_LIBRARY_PATH", other)
	v := newVMM(t)
	_, err = Load(v, filepath.Join(dir, "libfx_use_none.so"), Options{})
	if want := other + " (LD_LIBRARY_PATH; machine EM_AARCH64: only EM_X86_64 is supported)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load: %v, want it to list %s", err, want)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
}
