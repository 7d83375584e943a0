//go:build linux

package privload

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// loadOK loads path and registers its Close (with the sync and unmapped
// checks) at the end of the test, unless the test closes it first.
func loadOK(t *testing.T, v *vmm.VMM, path string, opts Options) *Library {
	t.Helper()
	lib, err := Load(v, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after load")
	for _, l := range lib.Libraries() {
		if !v.InVMCode(l.Base(), l.Size()) {
			t.Errorf("%s: image [%#x, +%#x) is not inside vmcode", l.Name(), l.Base(), l.Size())
		}
		checkProtections(t, v, l)
	}
	t.Cleanup(func() {
		err := lib.Close()
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("closing %s: %v", path, err)
		}
	})
	return lib
}

// closeChecked closes lib and checks that nothing of its group remains.
func closeChecked(t *testing.T, v *vmm.VMM, lib *Library, free uintptr) {
	t.Helper()
	libs := lib.Libraries()
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after close")
	for _, l := range libs {
		checkUnmapped(t, v, l.File().Name)
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x after close, %#x before load", got, free)
	}
}

func relocKinds(f *File) map[elf.R_X86_64]int {
	kinds := map[elf.R_X86_64]int{}
	for _, tab := range [][]Reloc{f.Rela, f.PLTRela} {
		for _, r := range tab {
			kinds[r.Type]++
		}
	}
	return kinds
}

// TestFixtureRelocs loads the relocation fixture, with RELA and with RELR
// relative relocations: every relocation kind is present in the file and
// holds the right value once loaded, the ifunc resolvers ran once each,
// the initialisers and finalisers ran in glibc's order.
func TestFixtureRelocs(t *testing.T) {
	for _, name := range []string{"libfx_relocs.so", "libfx_relocs_relr.so"} {
		t.Run(name, func(t *testing.T) {
			path := fxPath(t, name)
			v := newVMM(t)
			free := v.FreeVMCode()
			lib := loadOK(t, v, path, Options{})
			f := lib.File()
			kinds := relocKinds(f)
			for _, k := range []elf.R_X86_64{elf.R_X86_64_64, elf.R_X86_64_GLOB_DAT, elf.R_X86_64_JMP_SLOT, elf.R_X86_64_IRELATIVE} {
				if kinds[k] == 0 {
					t.Errorf("the fixture has no %v relocation: %v", k, kinds)
				}
			}
			if name == "libfx_relocs_relr.so" {
				if len(f.Relr) == 0 {
					t.Errorf("no DT_RELR relocations (kinds %v)", kinds)
				}
			} else if kinds[elf.R_X86_64_RELATIVE] == 0 {
				t.Errorf("no R_X86_64_RELATIVE relocation: %v", kinds)
			}
			withAddend := false
			for _, r := range f.Rela {
				withAddend = withAddend || (r.Type == elf.R_X86_64_64 && r.Sym != 0 && r.Addend == 24)
			}
			if !withAddend {
				t.Error("no R_X86_64_64 with an addend")
			}
			if f.Init == 0 || f.Fini == 0 || f.InitArray.Size == 0 || f.FiniArray.Size == 0 {
				t.Errorf("DT_INIT %#x DT_FINI %#x arrays %+v %+v: want all four", f.Init, f.Fini, f.InitArray, f.FiniArray)
			}

			if got := call(lookup(t, lib, "fx_check")); got != 0x1ff {
				t.Errorf("fx_check() = %#x, want 0x1ff (each bit a check)", got)
			}
			if got, want := uintptr(call(lookup(t, lib, "fx_addr_of_twice"))), lookup(t, lib, "fx_twice"); got != want {
				t.Errorf("fn_ptr = %#x, Lookup(fx_twice) = %#x", got, want)
			}
			ifn := lookup(t, lib, "fx_ifunc")
			if got := uintptr(call(lookup(t, lib, "fx_addr_of_ifunc"))); got != ifn {
				t.Errorf("&fx_ifunc in the library = %#x, Lookup = %#x: want the resolver's choice in both", got, ifn)
			}
			if ifn < lib.Base() || ifn >= lib.Base()+lib.Size() || call(ifn, 5) != 15 {
				t.Errorf("Lookup(fx_ifunc) = %#x: not the implementation", ifn)
			}
			if n := call(lookup(t, lib, "fx_resolver_calls")); n != 1 {
				t.Errorf("the exported ifunc's resolver ran %d times, want once per load", n)
			}
			if v := *(*int64)(unsafe.Pointer(&rawmem.Bytes(lookup(t, lib, "fx_var"), 8)[0])); v != 42 {
				t.Errorf("fx_var = %d", v)
			}
			if o := binary.LittleEndian.Uint64(rawmem.Bytes(lookup(t, lib, "fx_order"), 8)); o != 12 {
				t.Errorf("after load, initialisers ran in order %d, want 12 (DT_INIT, then DT_INIT_ARRAY)", o)
			}
			var out int64
			binary.LittleEndian.PutUint64(rawmem.Bytes(lookup(t, lib, "fx_fini_out"), 8), uint64(uintptr(unsafe.Pointer(&out))))
			closeChecked(t, v, lib, free)
			runtime.KeepAlive(&out)
			if out != 1234 {
				t.Errorf("finalisers left order %d, want 1234 (DT_FINI_ARRAY, then DT_FINI)", out)
			}
		})
	}
}

// TestFixtureChain loads a -> b -> c: b is found on a's DT_RUNPATH
// ($ORIGIN), c on the search path; each is in its own slot; initialisers run c, b, a and
// finalisers a, b, c; c's call to fx_who binds to a's definition, which
// comes first in the search scope.
func TestFixtureChain(t *testing.T) {
	a := fxPath(t, "libfx_chain_a.so")
	search := filepath.Join(filepath.Dir(a), "search")
	v := newVMM(t)
	free := v.FreeVMCode()
	// The trace is written by native initialisers and finalisers long after
	// its address was taken: it must be a heap object, which does not move
	// when the goroutine's stack grows.
	trace := new([16]int64)
	opts := Options{SearchPath: []string{search}, Imports: map[string]uintptr{"fx_trace": uintptr(unsafe.Pointer(&trace[0]))}}
	lib := loadOK(t, v, a, opts)
	libs := lib.Libraries()
	var names []string
	for _, l := range libs {
		names = append(names, l.Name())
	}
	if strings.Join(names, " ") != "libfx_chain_a.so libfx_chain_b.so libfx_chain_c.so" {
		t.Fatalf("libraries %q, want a, b, c", names)
	}
	if libs[2].Path() != filepath.Join(search, "libfx_chain_c.so") {
		t.Errorf("c loaded from %s, want the search path", libs[2].Path())
	}
	if libs[0].Base() == libs[1].Base() || libs[1].Base() == libs[2].Base() {
		t.Error("two libraries share a slot")
	}
	if got := trace[:trace[0]+1]; !equalInts(got, []int64{3, 3, 2, 1}) {
		t.Errorf("initialisers ran as %v, want c, b, a", got[1:])
	}
	// fx_c(10) = 10 + fx_who(), which is a's (1), not c's own (3).
	if got := call(lookup(t, lib, "fx_a"), 10); got != ((10+1)+100)*2 {
		t.Errorf("fx_a(10) = %d, want %d (c's fx_who bound to a's)", got, ((10+1)+100)*2)
	}
	imp := func(l *Library, name string) Import {
		for _, im := range l.Imports() {
			if im.Name == name {
				return im
			}
		}
		t.Fatalf("%s has no import %s", l.Name(), name)
		return Import{}
	}
	if im := imp(libs[2], "fx_who"); im.How != BoundPrivate || im.From != "libfx_chain_a.so" || im.BoundTo != lookup(t, libs[0], "fx_who") {
		t.Errorf("c's fx_who: %+v, want a's", im)
	}
	if im := imp(libs[1], "fx_c"); im.How != BoundPrivate || im.From != "libfx_chain_c.so" {
		t.Errorf("b's fx_c: %+v, want c's", im)
	}
	if im := imp(libs[0], "fx_trace"); im.How != BoundTable || im.BoundTo != uintptr(unsafe.Pointer(&trace[0])) {
		t.Errorf("a's fx_trace: %+v, want the import table's", im)
	}
	if d := libs[0].Dependencies(); len(d) != 1 || d[0].Library != libs[1] || d[0].Host {
		t.Errorf("a's dependencies %+v", d)
	}
	if err := libs[1].Close(); !errors.Is(err, ErrDependency) {
		t.Errorf("closing b alone: %v, want ErrDependency", err)
	}
	closeChecked(t, v, lib, free)
	runtime.KeepAlive(&trace)
	if got := trace[:trace[0]+1]; !equalInts(got, []int64{6, 3, 2, 1, -1, -2, -3}) {
		t.Errorf("initialisers and finalisers ran as %v, want c, b, a, then a, b, c", got[1:])
	}

	// Without the search path, c is not found: the error names it, who
	// needs it and where it was looked for.
	_, err := Load(v, a, Options{Imports: opts.Imports})
	if err == nil || !strings.Contains(err.Error(), "dependency libfx_chain_c.so not found") || !strings.Contains(err.Error(), "libfx_chain_b.so") {
		t.Errorf("Load without the search path: %v", err)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x after a failed load, %#x before", got, free)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFixtureVersions binds versioned references to the definitions of
// their versions, and an unversioned reference as glibc does, and checks
// each against the host's own dynamic linker loading the same files.
func TestFixtureVersions(t *testing.T) {
	use, old := fxPath(t, "libfx_veruse.so"), fxPath(t, "libfx_verold.so")
	v := newVMM(t)
	lib := loadOK(t, v, use, Options{})
	ver := lib.Libraries()[1]
	if ver.Name() != "libfx_ver.so" {
		t.Fatalf("dependency %s", ver.Name())
	}
	v1, ok1 := ver.LookupVersion("vfunc", "VER_1")
	v2, ok2 := ver.LookupVersion("vfunc", "VER_2")
	if !ok1 || !ok2 || v1 == v2 || call(v1) != 1 || call(v2) != 2 {
		t.Fatalf("LookupVersion: VER_1 %#x %v, VER_2 %#x %v", v1, ok1, v2, ok2)
	}
	if a, _ := ver.Lookup("vfunc"); a != v2 {
		t.Errorf("Lookup(vfunc) = %#x, want the default version's %#x", a, v2)
	}
	if _, ok := ver.LookupVersion("vfunc", "VER_3"); ok {
		t.Error("found vfunc@VER_3")
	}
	byVer := map[string]Import{}
	for _, im := range lib.Imports() {
		if im.Name == "vfunc" {
			byVer[im.Version] = im
		}
	}
	if byVer["VER_1"].BoundTo != v1 || byVer["VER_2"].BoundTo != v2 {
		t.Errorf("vfunc imports %+v, want VER_1 at %#x and VER_2 at %#x", byVer, v1, v2)
	}
	_, sym, _ := ver.File().LookupVersion("vfunc", "VER_1")
	if sym.Version != "VER_1" || !sym.HiddenVersion {
		t.Errorf("vfunc@VER_1 symbol: %+v", sym)
	}

	oldLib := loadOK(t, v, old, Options{})
	private := map[string]int64{
		"use_new":    call(lookup(t, lib, "use_new")),
		"use_old":    call(lookup(t, lib, "use_old")),
		"use_data":   call(lookup(t, lib, "use_data")),
		"call_vfunc": call(lookup(t, oldLib, "call_vfunc")),
	}
	want := map[string]int64{"use_new": 2, "use_old": 1, "use_data": 77, "call_vfunc": 1}
	for k, w := range want {
		if private[k] != w {
			t.Errorf("%s() = %d privately, want %d", k, private[k], w)
		}
	}
	// Options.Imports redirects one version of a symbol only: vfunc@VER_1
	// to the host's getpid, vfunc@VER_2 left alone.
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	getpid, err := purego.Dlsym(libc, "getpid")
	if err != nil {
		t.Fatal(err)
	}
	red := loadOK(t, v, use, Options{Imports: map[string]uintptr{"vfunc@VER_1": getpid}})
	if got := call(lookup(t, red, "use_old")); got != int64(os.Getpid()) {
		t.Errorf("use_old() with vfunc@VER_1 redirected to getpid = %d, want %d", got, os.Getpid())
	}
	if got := call(lookup(t, red, "use_new")); got != 2 {
		t.Errorf("use_new() = %d, want 2: only VER_1 was redirected", got)
	}

	// The host's ld.so on the same files must agree.
	for _, p := range []string{use, old} {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			t.Fatalf("host dlopen %s: %v", p, err)
		}
		for k := range want {
			fn, err := purego.Dlsym(h, k)
			if err != nil {
				continue
			}
			if got := call(fn); got != private[k] {
				t.Errorf("%s(): host %d, privload %d", k, got, private[k])
			}
		}
		purego.Dlclose(h)
	}
}

// TestFixtureLazy loads a library linked for lazy binding: privload binds
// every PLT slot at load, to the host's libc and to the library itself.
func TestFixtureLazy(t *testing.T) {
	path := fxPath(t, "libfx_lazy.so")
	v := newVMM(t)
	lib := loadOK(t, v, path, Options{})
	f := lib.File()
	if f.Flags&uint64(elf.DF_BIND_NOW) != 0 || f.Flags1&uint64(elf.DF_1_NOW) != 0 || f.Relro.Size != 0 {
		t.Errorf("the fixture is not lazy: flags %#x flags1 %#x relro %+v", f.Flags, f.Flags1, f.Relro)
	}
	if relocKinds(f)[elf.R_X86_64_JMP_SLOT] < 2 {
		t.Errorf("relocations %v: want PLT slots", relocKinds(f))
	}
	s := []byte("hello, lazy\x00")
	if got := call(lookup(t, lib, "fx_lazy_len"), uintptr(unsafe.Pointer(&s[0]))); got != 11+7 {
		t.Errorf("fx_lazy_len = %d, want 18", got)
	}
	x, y := []byte("abcdef"), []byte("abcxef")
	cmp := lookup(t, lib, "fx_lazy_cmp")
	if call(cmp, uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0])), 3) != 1 || call(cmp, uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0])), 4) != 0 {
		t.Error("fx_lazy_cmp through the host's memcmp is wrong")
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	hows := map[string]string{}
	for _, im := range lib.Imports() {
		hows[im.Name] = im.How
	}
	if hows["strlen"] != BoundHost || hows["memcmp"] != BoundHost || hows["fx_lazy_helper"] != BoundSelf {
		t.Errorf("imports bound %v", hows)
	}
}

// TestFixtureHost checks a library bound to the host's libc and libm: a
// versioned reference binds to that version (memcpy@GLIBC_2.2.5, not the
// default), and Func.Invoke passes integer, float and stack arguments.
func TestFixtureHost(t *testing.T) {
	path := fxPath(t, "libfx_host.so")
	v := newVMM(t)
	lib := loadOK(t, v, path, Options{})
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	dlvsymFn, err := purego.Dlsym(libc, "dlvsym")
	if err != nil {
		t.Fatal(err)
	}
	name, version := []byte("memcpy\x00"), []byte("GLIBC_2.2.5\x00")
	oldMemcpy := uintptr(call(dlvsymFn, libc, uintptr(unsafe.Pointer(&name[0])), uintptr(unsafe.Pointer(&version[0]))))
	newMemcpy, _ := purego.Dlsym(libc, "memcpy")
	if oldMemcpy == 0 || oldMemcpy == newMemcpy {
		t.Fatalf("host memcpy@GLIBC_2.2.5 %#x, memcpy %#x: want two different functions", oldMemcpy, newMemcpy)
	}
	if got := uintptr(call(lookup(t, lib, "fx_old_memcpy"))); got != oldMemcpy {
		t.Errorf("memcpy@GLIBC_2.2.5 bound to %#x, want %#x", got, oldMemcpy)
	}
	if got := uintptr(call(lookup(t, lib, "fx_new_memcpy"))); got != newMemcpy {
		t.Errorf("memcpy bound to %#x, want %#x", got, newMemcpy)
	}
	froms := map[string]bool{}
	for _, im := range lib.Imports() {
		if im.How == BoundHost {
			froms[im.From] = true
		}
	}
	if !froms["libc.so.6"] || !froms["libm.so.6"] {
		t.Errorf("host libraries bound: %v, want libc and libm", froms)
	}

	fn := func(name string) Func {
		f, err := lib.Func(name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	hostCos, err := purego.Dlsym(libc, "cos")
	if err != nil {
		libm, _ := purego.Dlopen("libm.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
		hostCos, _ = purego.Dlsym(libm, "cos")
	}
	for _, x := range []float64{0, 1, math.Pi / 3, -2.5, 1e6} {
		got := ok(fn("fx_cos").Invoke(Float64(x))).Float64()
		want := ok(FuncAt(hostCos, "cos").Invoke(Float64(x))).Float64()
		if got != want || math.Abs(got-math.Cos(x)) > 1e-12 {
			t.Errorf("fx_cos(%g) = %g, host cos %g, Go %g", x, got, want, math.Cos(x))
		}
	}
	buf := make([]byte, 64)
	n := ok(fn("fx_format").Invoke(Ptr(unsafe.Pointer(&buf[0])), Int(int64(len(buf))), Float64(math.Pi), Int(-42))).Int64()
	if got := string(buf[:n]); got != "3.142/-42" {
		t.Errorf("fx_format = %q, want 3.142/-42", got)
	}
	if got := ok(fn("fx_mix").Invoke(Int(3), Float64(1.5), Int(-4), Float32(0.25), Int(10))).Float64(); got != 3*1.5+(-4)*0.25-10 {
		t.Errorf("fx_mix = %g, want %g", got, 3*1.5+(-4)*0.25-10)
	}
	if got := ok(fn("fx_fsum").Invoke(Float32(1.25), Float32(2.5))).Float32(); got != 3.75 {
		t.Errorf("fx_fsum = %g", got)
	}
	if got := int64(ok(fn("fx_sum9").Call(1, 2, 3, 4, 5, 6, 7, 8, 9))); got != 1+4+9+16+25+36+49+64+81 {
		t.Errorf("fx_sum9 = %d, want 285", got)
	}
	var args []Arg
	want := 0.0
	for i := 1; i <= 7; i++ {
		args = append(args, Float64(float64(i)+0.5), Int(int64(i*100)))
		want += float64(i)*(float64(i)+0.5) + float64(i*i*100)
	}
	for i := 8; i <= 10; i++ {
		args = append(args, Float64(float64(i)+0.5))
		want += float64(i) * (float64(i) + 0.5)
	}
	if got := ok(fn("fx_many").Invoke(args...)).Float64(); got != want {
		t.Errorf("fx_many = %g, want %g", got, want)
	}
	var mix func(a int64, x float64, b int32, y float32, c int64) float64
	if err := fn("fx_mix").Bind(&mix); err != nil {
		t.Fatal(err)
	}
	if got := mix(3, 1.5, -4, 0.25, 10); got != 3*1.5+(-4)*0.25-10 {
		t.Errorf("bound fx_mix = %g", got)
	}
	var bad int
	if err := fn("fx_mix").Bind(&bad); err == nil {
		t.Error("Bind of a non-function succeeded")
	}
}

// TestFixtureIFunc loads a library that uses another's ifunc: the
// resolver runs once, picks the implementation cpuid says, and every
// reference (PLT, GOT, data) holds its choice.
func TestFixtureIFunc(t *testing.T) {
	path := fxPath(t, "libfx_ifuse.so")
	v := newVMM(t)
	lib := loadOK(t, v, path, Options{})
	dep := lib.Libraries()[1]
	impl := lookup(t, dep, "fx_popcount")
	if got := uintptr(call(lookup(t, lib, "fx_ifuse_addr"))); got != impl {
		t.Errorf("&fx_popcount in the user = %#x, Lookup in the library = %#x", got, impl)
	}
	for _, x := range []uint64{0, 1, 0xff, 0x8000_0000_0000_0001, ^uint64(0), 0x1234_5678_9abc_def0} {
		want := int64(bits.OnesCount64(x))
		if got := call(lookup(t, lib, "fx_ifuse_count"), uintptr(x)); got != want {
			t.Errorf("fx_ifuse_count(%#x) = %d, want %d", x, got, want)
		}
		if got := call(lookup(t, lib, "fx_ifuse_count_ptr"), uintptr(x)); got != want {
			t.Errorf("fx_ifuse_count_ptr(%#x) = %d, want %d", x, got, want)
		}
	}
	wantImpl := int64(2)
	if cpu.X86.HasPOPCNT {
		wantImpl = 1
	}
	if got := call(lookup(t, dep, "fx_popcount_impl")); got != wantImpl {
		t.Errorf("resolver chose %d, want %d (POPCNT %v)", got, wantImpl, cpu.X86.HasPOPCNT)
	}
	if n := call(lookup(t, dep, "fx_popcount_resolver_calls")); n != 1 {
		t.Errorf("resolver ran %d times, want once", n)
	}
	for _, im := range lib.Imports() {
		if im.Name == "fx_popcount" && (im.BoundTo != impl || im.How != BoundPrivate) {
			t.Errorf("import %+v, want the implementation %#x", im, impl)
		}
	}

	// With SkipIFunc, the reference is refused before anything is mapped.
	free := v.FreeVMCode()
	_, err := Load(v, path, Options{SkipIFunc: true})
	if err == nil || !strings.Contains(err.Error(), "fx_popcount") || !strings.Contains(err.Error(), "SkipIFunc") {
		t.Errorf("Load with SkipIFunc: %v", err)
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("slot leaked")
	}
}

// TestFixtureRefused loads what privload does not support: each load
// fails naming the file and the reason, and leaves nothing behind.
func TestFixtureRefused(t *testing.T) {
	v := newVMM(t)
	for _, tc := range []struct {
		name, want string
		class      error
	}{
		{"libfx_tlsie.so", "R_X86_64_TPOFF64 (type 18)", ErrUnsupported},
		{"libfx_tlsundef.so", `undefined thread-local variable "fx_nowhere"`, ErrLink},
		{"libfx_textrel.so", "DT_TEXTREL", ErrUnsupported},
		{"libfx_execstack.so", "executable stack", ErrUnsupported},
		{"libfx_undef.so", `undefined symbol "fx_missing"`, nil},
		{"libfx_needmissing.so", "dependency libfx_gone.so not found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, v, fxPath(t, tc.name), tc.want, tc.class)
		})
	}
}

// TestFixturesHostAgrees loads every fixture the host's dynamic linker
// accepts both ways and compares their Parse view with debug/elf's
// dynamic symbols and versions.
func TestFixturesParseVersions(t *testing.T) {
	dir := fixtures(t)
	for _, b := range fxBuilds {
		p := filepath.Join(dir, b.out)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(p, data)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		syms, err := ef.DynamicSymbols()
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range syms {
			ps, _ := f.Symbol(i + 1)
			if ps.Name != s.Name || ps.Version != s.Version {
				t.Errorf("%s: symbol %d: %q@%q, debug/elf %q@%q", b.out, i+1, ps.Name, ps.Version, s.Name, s.Version)
			}
		}
	}
}
