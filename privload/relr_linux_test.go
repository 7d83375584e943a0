//go:build linux

package privload

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// relrSource generates a C library whose data holds many pointers into a
// table, each needing a base-relative relocation: dense runs (ptrs) and
// runs with holes (pairs), so that DT_RELR needs address entries and
// bitmaps with set and clear bits. relr_check counts the pointers that
// hold what they should.
func relrSource(nptrs, npairs int) string {
	var b strings.Builder
	b.WriteString("static const char blob[4096] = {1};\n")
	fmt.Fprintf(&b, "static const char *volatile ptrs[%d] = {\n", nptrs)
	for i := 0; i < nptrs; i++ {
		fmt.Fprintf(&b, "\t&blob[%d],\n", i*7%4096)
	}
	b.WriteString("};\n")
	b.WriteString("struct pair { const char *p; long x[2]; };\n")
	fmt.Fprintf(&b, "static volatile struct pair pairs[%d] = {\n", npairs)
	for i := 0; i < npairs; i++ {
		fmt.Fprintf(&b, "\t{&blob[%d], {%d, 0}},\n", i*11%4096, i)
	}
	b.WriteString("};\n")
	fmt.Fprintf(&b, `long relr_check(void)
{
	long ok = 0;
	for (long i = 0; i < %d; i++)
		ok += ptrs[i] == &blob[i * 7 %% 4096];
	for (long i = 0; i < %d; i++)
		ok += pairs[i].p == &blob[i * 11 %% 4096] && pairs[i].x[0] == i;
	return ok;
}
`, nptrs, npairs)
	return b.String()
}

// buildC compiles src into a shared object with gcc and extra flags,
// skipping the test if gcc is absent or refuses the extra flags.
func buildC(t *testing.T, dir, name, src string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("no gcc to build the %s fixture: %v", name, err)
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".so")
	args := append([]string{"-shared", "-fPIC", "-nostdlib", "-O2", "-fno-stack-protector", "-Wl,-z,relro,-z,now"}, extra...)
	args = append(args, "-o", out, c)
	if msg, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		if len(extra) > 0 {
			// An older toolchain may lack the option (DT_RELR needs
			// binutils 2.38).
			t.Skipf("gcc %s: %v\n%s", strings.Join(extra, " "), err, msg)
		}
		t.Fatalf("gcc: %v\n%s", err, msg)
	}
	return out
}

// TestLoadRELR loads the same library linked with RELA RELATIVE
// relocations and with DT_RELR (-z pack-relative-relocs): both must
// relocate every pointer.
func TestLoadRELR(t *testing.T) {
	const nptrs, npairs = 300, 200
	dir, err := os.MkdirTemp("", "privload-relr-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	src := relrSource(nptrs, npairs)
	rela := buildC(t, dir, "rela", src)
	relr := buildC(t, dir, "relr", src, "-Wl,-z,pack-relative-relocs")

	v := newVMM(t)
	counts := map[string]int{}
	for _, p := range []string{rela, relr} {
		lib, err := Load(v, p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		f := lib.File()
		for _, r := range f.Rela {
			if r.Type == elf.R_X86_64_RELATIVE {
				counts[p]++
			}
		}
		counts[p] += len(f.Relr)
		if p == relr && len(f.Relr) == 0 {
			t.Skip("the linker accepted -z pack-relative-relocs but emitted no DT_RELR")
		}
		if got := call(lookup(t, lib, "relr_check")); got != nptrs+npairs {
			t.Errorf("%s: relr_check() = %d, want %d", filepath.Base(p), got, nptrs+npairs)
		}
		if err := lib.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if counts[rela] != counts[relr] || counts[rela] < nptrs+npairs {
		t.Errorf("relative relocations: RELA %d, RELR %d, want equal and at least %d", counts[rela], counts[relr], nptrs+npairs)
	}
	vmmtest.SyncCheck(t, v, "after close")
	checkUnmapped(t, v, relr)
}
