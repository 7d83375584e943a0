//go:build linux

package privload

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The fixture suite: C sources in testdata/elf, built by gcc once per test
// binary into a temporary directory that TestMain removes. Each build
// lists its sources, its flags and the fixtures it links against (which
// it needs built first).

// fxBuild is how one fixture is built.
type fxBuild struct {
	// out is the library's path relative to the fixture directory; its
	// base name is also its soname.
	out   string
	srcs  []string
	flags []string
	// links are fixtures (by out) linked against: DT_NEEDED entries.
	links []string
}

// Flags shared by the fixtures that need no libc.
var fxNoLibc = []string{"-nostdlib", "-Wl,-z,relro,-z,now"}

var fxBuilds = []fxBuild{
	{out: "libfx_relocs.so", srcs: []string{"relocs.c"}, flags: append([]string{"-Wl,-init,my_init", "-Wl,-fini,my_fini"}, fxNoLibc...)},
	{out: "libfx_relocs_relr.so", srcs: []string{"relocs.c"}, flags: append([]string{"-Wl,-init,my_init", "-Wl,-fini,my_fini", "-Wl,-z,pack-relative-relocs"}, fxNoLibc...)},
	{out: "search/libfx_chain_c.so", srcs: []string{"chain_c.c"}, flags: fxNoLibc},
	{out: "libfx_chain_b.so", srcs: []string{"chain_b.c"}, flags: fxNoLibc, links: []string{"search/libfx_chain_c.so"}},
	// b is found through a's DT_RUNPATH ($ORIGIN), c only on the search
	// path.
	{out: "libfx_chain_a.so", srcs: []string{"chain_a.c"}, flags: append([]string{"-Wl,-rpath,$ORIGIN"}, fxNoLibc...), links: []string{"libfx_chain_b.so"}},
	{out: "libfx_ver.so", srcs: []string{"ver.c"}, flags: append([]string{"-Wl,--version-script=" + fxSrc("ver.map")}, fxNoLibc...)},
	{out: "stub/libfx_ver.so", srcs: []string{"ver_stub.c"}, flags: fxNoLibc},
	// $ORIGIN lets the host's dlopen find libfx_ver.so too, for the
	// differential test.
	{out: "libfx_veruse.so", srcs: []string{"veruse.c"}, flags: append([]string{"-Wl,-rpath,$ORIGIN"}, fxNoLibc...), links: []string{"libfx_ver.so"}},
	{out: "libfx_verold.so", srcs: []string{"verold.c"}, flags: append([]string{"-Wl,-rpath,$ORIGIN"}, fxNoLibc...), links: []string{"stub/libfx_ver.so"}},
	{out: "libfx_lazy.so", srcs: []string{"lazy.c"}, flags: []string{"-Wl,-z,lazy", "-Wl,-z,norelro"}},
	{out: "libfx_host.so", srcs: []string{"host.c"}, flags: []string{"-lm", "-Wl,-z,relro,-z,now"}},
	{out: "libfx_ifunc.so", srcs: []string{"ifunc.c"}, flags: fxNoLibc},
	{out: "libfx_ifuse.so", srcs: []string{"ifuse.c"}, flags: append([]string{"-Wl,-rpath,$ORIGIN"}, fxNoLibc...), links: []string{"libfx_ifunc.so"}},
	{out: "libfx_tls.so", srcs: []string{"tls.c"}},
	{out: "libfx_tlsmodels.so", srcs: []string{"tlsmodels.c"}},
	{out: "libfx_tlsuse.so", srcs: []string{"tlsuse.c"}, flags: []string{"-Wl,-rpath,$ORIGIN"}, links: []string{"libfx_tlsmodels.so"}},
	{out: "libfx_tlsie.so", srcs: []string{"tlsie.c"}},
	{out: "libfx_tlsundef.so", srcs: []string{"tlsundef.c"}},
	{out: "libfx_tlsdesc.so", srcs: []string{"tlsdesc.c"}, flags: []string{"-mtls-dialect=gnu2"}},
	{out: "libfx_textrel.so", srcs: []string{"textrel.c"}, flags: []string{"-nostdlib", "-Wl,-z,notext"}},
	{out: "libfx_execstack.so", srcs: []string{"plain.c"}, flags: []string{"-nostdlib", "-Wl,-z,execstack"}},
	{out: "libfx_undef.so", srcs: []string{"undef.c"}, flags: fxNoLibc},
	{out: "gone/libfx_gone.so", srcs: []string{"plain.c"}, flags: fxNoLibc},
	{out: "libfx_needmissing.so", srcs: []string{"plain.c"}, flags: fxNoLibc, links: []string{"gone/libfx_gone.so"}},
}

// fxSrc returns the absolute path of a fixture source.
func fxSrc(name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", "elf", name))
	if err != nil {
		panic(err)
	}
	return p
}

var (
	fxOnce sync.Once
	fxDir  string
	fxErr  error
)

// fixtures builds the fixture suite once and returns its directory. A
// machine without gcc skips the tests that need it; a gcc that fails is a
// test failure.
func fixtures(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("no gcc to build the fixtures: %v", err)
	}
	fxOnce.Do(func() { fxDir, fxErr = buildFixtures() })
	if fxErr != nil {
		t.Fatal(fxErr)
	}
	return fxDir
}

// fxPath returns the path of one built fixture.
func fxPath(t testing.TB, out string) string {
	return filepath.Join(fixtures(t), out)
}

func buildFixtures() (string, error) {
	dir, err := os.MkdirTemp("", "privload-fixtures-")
	if err != nil {
		return "", err
	}
	testCleanups = append(testCleanups, func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return "", err
	}
	// Build in waves: each fixture once those it links against exist,
	// the fixtures of a wave in parallel.
	done := map[string]bool{}
	for len(done) < len(fxBuilds) {
		var wave []fxBuild
		for _, b := range fxBuilds {
			ready := !done[b.out]
			for _, l := range b.links {
				ready = ready && done[l]
			}
			if ready {
				wave = append(wave, b)
			}
		}
		if len(wave) == 0 {
			return "", fmt.Errorf("fixture builds have a cycle")
		}
		errs := make([]error, len(wave))
		var wg sync.WaitGroup
		for i, b := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = buildFixture(dir, b)
			}()
		}
		wg.Wait()
		for i, b := range wave {
			if errs[i] != nil {
				return "", errs[i]
			}
			done[b.out] = true
		}
	}
	return dir, nil
}

func buildFixture(dir string, b fxBuild) error {
	out := filepath.Join(dir, b.out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := []string{"-shared", "-fPIC", "-O2", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
		"-Wl,-soname," + filepath.Base(b.out), "-o", out}
	for _, s := range b.srcs {
		args = append(args, fxSrc(s))
	}
	// Every library linked against is needed, used or not.
	args = append(args, "-Wl,--no-as-needed")
	for _, l := range b.links {
		args = append(args, filepath.Join(dir, l))
	}
	args = append(args, b.flags...)
	cmd := exec.Command("gcc", args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building fixture %s: gcc %s: %v\n%s", b.out, strings.Join(args, " "), err, msg)
	}
	return nil
}
