//go:build linux

package privload

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// tlsFunc looks up name in lib or fails the test.
func tlsFunc(t testing.TB, lib *Library, name string) Func {
	t.Helper()
	f, err := lib.Func(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tlsValues returns fx_tls_get(0..4) of libfx_tlsmodels.
func tlsValues(t testing.TB, get Func) [5]int64 {
	t.Helper()
	var out [5]int64
	for i := range out {
		r, err := get.Call1(uintptr(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = int64(r)
	}
	return out
}

// TestTLSModels loads the gcc-built library with global- and
// local-dynamic thread-local variables and uses them from several OS
// threads at once: each thread starts from the initial values (.tdata
// copied, .tbss zero), sees only its own writes, and its variables lie in
// its own block, at the offsets the symbols give, with their alignment.
func TestTLSModels(t *testing.T) {
	v := newVMM(t)
	path := fxPath(t, "libfx_tlsmodels.so")
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lib.Close(); err != nil {
			t.Error(err)
		}
	}()
	get, add, addr := tlsFunc(t, lib, "fx_tls_get"), tlsFunc(t, lib, "fx_tls_add"), tlsFunc(t, lib, "fx_tls_addr")
	var sawGetAddr bool
	for _, im := range lib.Imports() {
		if im.Name == "__tls_get_addr" {
			sawGetAddr = im.How == BoundRuntime
		}
	}
	if !sawGetAddr {
		t.Errorf("__tls_get_addr is not bound to privload's: %+v", lib.Imports())
	}
	gdOff, alignedOff := symValue(t, lib, "fx_gd"), symValue(t, lib, "fx_aligned")
	const threads, rounds = 8, 50
	var wg, ready sync.WaitGroup
	errs := make(chan error, threads*16)
	blocks := make([]uintptr, threads)
	ready.Add(threads)
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			arrived := false
			defer func() {
				if !arrived {
					ready.Done()
				}
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("thread %d: "+format, append([]any{w}, args...)...)
			}
			if got, want := tlsValues(t, get), [5]int64{11, 22, 33, 44, 0}; got != want {
				fail("initial values %v, want %v", got, want)
				return
			}
			block, err := lib.TLSBlock()
			if err != nil {
				fail("TLSBlock: %v", err)
				return
			}
			blocks[w] = block
			// Every thread holds its blocks here: no two are the same.
			arrived = true
			ready.Done()
			ready.Wait()
			for i, b := range blocks {
				if i != w && b == block {
					fail("its block %#x is thread %d's too", block, i)
				}
			}
			if a, _ := addr.Call1(0); a != block+gdOff {
				fail("&fx_gd = %#x, want block %#x + %#x", a, block, gdOff)
			}
			if a, _ := addr.Call1(3); a != block+alignedOff || a%64 != 0 {
				fail("&fx_aligned = %#x, want block %#x + %#x, 64-byte aligned", a, block, alignedOff)
			}
			d := int64(w + 1)
			for r := 1; r <= rounds; r++ {
				sum, _ := add.Call1(uintptr(d))
				if want := 11 + 22 + 33 + 44 + 4*d*int64(r); int64(sum) != want {
					fail("round %d: sum %d, want %d", r, int64(sum), want)
					return
				}
				runtime.Gosched()
			}
			n := d * rounds
			if got, want := tlsValues(t, get), [5]int64{11 + n, 22 + n, 33 + n, 44 + n, 64 * int64(int8(n))}; got != want {
				fail("final values %v, want %v", got, want)
			}
			if err := lib.FreeThreadTLS(); err != nil {
				fail("FreeThreadTLS: %v", err)
			}
			if got, want := tlsValues(t, get), [5]int64{11, 22, 33, 44, 0}; got != want {
				fail("values after FreeThreadTLS %v, want the initial %v", got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTLSForeignThread calls a function that starts a thread of its own
// (pthread_create) which uses the library's thread-local variables: the
// thread, unknown to Go, gets fresh blocks with the initial values
// through the same slow path, and the caller's values are untouched.
func TestTLSForeignThread(t *testing.T) {
	v := newVMM(t)
	lib, err := Load(v, fxPath(t, "libfx_tlsmodels.so"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	add, inThread := tlsFunc(t, lib, "fx_tls_add"), tlsFunc(t, lib, "fx_tls_in_thread")
	if got, _ := add.Call1(100); got != 11+22+33+44+400 {
		t.Fatalf("fx_tls_add(100) = %d", got)
	}
	before := lib.tlsThreads()
	for i := 1; i <= 3; i++ {
		if got, _ := inThread.Call1(uintptr(i)); got != uintptr(11+22+33+44+4*i) {
			t.Errorf("fx_tls_in_thread(%d) = %d, want %d", i, int64(got), 11+22+33+44+4*i)
		}
	}
	if got, _ := add.Call1(0); got != 11+22+33+44+400 {
		t.Errorf("the calling thread's sum is %d after the other threads ran, want %d", got, 11+22+33+44+400)
	}
	if n := lib.tlsThreads(); n != before+3 {
		t.Errorf("%d threads have blocks, want %d: the 3 exited threads' stay until Close", n, before+3)
	}
}

// TestTLSDesc loads a library built with -mtls-dialect=gnu2, whose
// thread-local variables are reached through TLS descriptors
// (R_X86_64_TLSDESC, against a symbol and against the library itself),
// and uses it from several OS threads: initial values, per-thread
// updates, the address the compiled code computes from the descriptor's
// answer and %fs:0 is the thread's block plus the symbol's offset, and a
// descriptor call preserves the general and vector registers on a
// thread's first access (the slow path into Go) and later.
func TestTLSDesc(t *testing.T) {
	if !tlsDescOK() {
		t.Skip("no xsave: TLS descriptors are refused here")
	}
	v := newVMM(t)
	lib, err := Load(v, fxPath(t, "libfx_tlsdesc.so"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	get, bump, check, addr := tlsFunc(t, lib, "fx_desc_get"), tlsFunc(t, lib, "fx_desc_bump"), tlsFunc(t, lib, "fx_desc_check"), tlsFunc(t, lib, "fx_desc_addr")
	off := symValue(t, lib, "fx_desc")
	slow := tlsSlowCalls.Load()
	const threads = 6
	var wg sync.WaitGroup
	errs := make(chan error, threads*8)
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			// The first access of this thread, unless Load's.
			a, _ := check.Call0()
			if a == 0 {
				errs <- fmt.Errorf("thread %d: the first descriptor call clobbered a register", w)
				return
			}
			block, err := lib.TLSBlock()
			if err != nil {
				errs <- err
				return
			}
			if a != block+off {
				errs <- fmt.Errorf("thread %d: &fx_desc = %#x, want block %#x + %#x", w, a, block, off)
			}
			if a2, _ := addr.Call0(); a2 != a {
				errs <- fmt.Errorf("thread %d: fx_desc_addr() = %#x, fx_desc_check found %#x", w, a2, a)
			}
			if got, _ := get.Call0(); got != 7 {
				errs <- fmt.Errorf("thread %d: initial fx_desc_get() = %d, want 7", w, got)
			}
			d := uintptr(w + 1)
			for r := uintptr(1); r <= 20; r++ {
				if got, _ := bump.Call1(d); got != 7+3*d*r {
					errs <- fmt.Errorf("thread %d round %d: fx_desc_bump = %d, want %d", w, r, got, 7+3*d*r)
					return
				}
			}
			if a3, _ := check.Call0(); a3 != a {
				errs <- fmt.Errorf("thread %d: a later descriptor call found %#x (0: clobbered), want %#x", w, a3, a)
			}
			if err := lib.FreeThreadTLS(); err != nil {
				errs <- err
			}
			// Fresh blocks again, through the slow path.
			if a4, _ := check.Call0(); a4 == 0 {
				errs <- fmt.Errorf("thread %d: the descriptor call after FreeThreadTLS clobbered a register", w)
			}
			if got, _ := get.Call0(); got != 7 {
				errs <- fmt.Errorf("thread %d: fx_desc_get() after FreeThreadTLS = %d, want 7", w, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// At least after FreeThreadTLS, every thread went the slow way.
	if n := tlsSlowCalls.Load() - slow; n < threads {
		t.Errorf("%d slow-path calls, want at least %d", n, threads)
	}
}

// symValue returns the st_value of lib's exported symbol name.
func symValue(t testing.TB, lib *Library, name string) uintptr {
	t.Helper()
	f := lib.File()
	for i := 1; i < f.NumSymbols; i++ {
		s, _ := f.Symbol(i)
		if s.Name == name {
			return uintptr(s.Value)
		}
	}
	t.Fatalf("%s has no symbol %q", lib.Path(), name)
	return 0
}

// TestTLSCrossLibrary loads a library whose thread-local references go to
// a variable of its dependency (DTPMOD64 and DTPOFF64 against the other
// library's symbol): both see one variable per thread.
func TestTLSCrossLibrary(t *testing.T) {
	v := newVMM(t)
	lib, err := Load(v, fxPath(t, "libfx_tlsuse.so"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	libs := lib.Libraries()
	if len(libs) != 2 {
		t.Fatalf("loaded %d libraries, want 2", len(libs))
	}
	models := libs[1]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	use, bump := tlsFunc(t, lib, "fx_use_gd"), tlsFunc(t, lib, "fx_use_bump")
	get := tlsFunc(t, models, "fx_tls_get")
	if r, _ := use.Call0(); r != 11 {
		t.Errorf("fx_use_gd() = %d, want 11", r)
	}
	if r, _ := bump.Call0(); r != 12*100+8 {
		t.Errorf("fx_use_bump() = %d, want %d", r, 12*100+8)
	}
	if r, _ := get.Call1(0); r != 12 {
		t.Errorf("fx_gd seen by its own library = %d, want 12", r)
	}
	for _, im := range lib.Imports() {
		if im.Name == "fx_gd" && (im.How != BoundPrivate || im.From != "libfx_tlsmodels.so" || im.BoundTo != symValue(t, models, "fx_gd")) {
			t.Errorf("fx_gd bound %+v, want the offset of libfx_tlsmodels.so's", im)
		}
	}
	// Load's thread (for the initialisers) and this one, if another.
	if n := lib.tlsThreads(); n < 1 || n > 2 {
		t.Errorf("%d threads have blocks, want 1 or 2", n)
	}
}

// TestTLSLifetime checks that a library with thread-local storage leaves
// nothing behind when closed, after threads made blocks: vmcode (the stub
// page), vmheap and the address-space map are as before.
func TestTLSLifetime(t *testing.T) {
	v := newVMM(t)
	path := fxPath(t, "libfx_tlsmodels.so")
	free := v.FreeVMCode()
	for i := 0; i < 3; i++ {
		lib, err := Load(v, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		get := tlsFunc(t, lib, "fx_tls_get")
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				if r, _ := get.Call1(0); r != 11 {
					t.Errorf("fx_gd = %d, want 11", r)
				}
			}()
		}
		wg.Wait()
		// The 4 callers' and Load's (for the initialisers), if
		// another.
		if n := lib.tlsThreads(); n < 1 || n > 5 {
			t.Errorf("%d threads have blocks, want 1 to 5", n)
		}
		if err := lib.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := lib.TLSBlock(); err == nil {
			t.Error("TLSBlock after Close succeeded")
		}
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x, want %#x: the stub page leaked", got, free)
	}
	vmmtest.SyncCheck(t, v, "after closing")
	checkUnmapped(t, v, path)
}

var (
	cxxOnce sync.Once
	cxxLib  string
	cxxErr  error
)

// cxxFixture builds testdata/elf/cxxshim.cc with g++ into the fixture
// directory, once.
func cxxFixture(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skipf("no g++ to build the C++ fixture: %v", err)
	}
	dir := fixtures(t)
	cxxOnce.Do(func() {
		cxxLib = filepath.Join(dir, "libfx_cxx.so")
		args := []string{"-shared", "-fPIC", "-O2", "-Wl,-soname,libfx_cxx.so", "-o", cxxLib, fxSrc("cxxshim.cc")}
		if msg, err := exec.Command("g++", args...).CombinedOutput(); err != nil {
			cxxErr = fmt.Errorf("g++ %s: %v\n%s", strings.Join(args, " "), err, msg)
		}
	})
	if cxxErr != nil {
		t.Fatal(cxxErr)
	}
	return cxxLib
}

// TestTLSLibstdcxx loads a g++-built client with a private libstdc++ and
// libgcc_s (bound to the host's libc) and calls it from several OS
// threads at once: its thread_local counter is per thread and starts at
// its initial value, std::string works through the host's malloc,
// std::uncaught_exceptions reads libstdc++'s own thread-local globals, and
// an exception thrown and caught inside the library unwinds (through the
// unwind tables registered with the private libgcc_s) with its message.
func TestTLSLibstdcxx(t *testing.T) {
	v := newVMM(t)
	path := cxxFixture(t)
	free := v.FreeVMCode()
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range lib.Libraries() {
		names = append(names, l.Name())
	}
	if !slices.Contains(names, "libstdc++.so.6") || !slices.Contains(names, "libgcc_s.so.1") {
		t.Fatalf("loaded %v, want a private libstdc++.so.6 and libgcc_s.so.1", names)
	}
	count, digits := tlsFunc(t, lib, "cxx_count"), tlsFunc(t, lib, "cxx_digits")
	uncaught, throw := tlsFunc(t, lib, "cxx_uncaught"), tlsFunc(t, lib, "cxx_throw")
	const threads, rounds = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, threads*16)
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for r := 1; r <= rounds; r++ {
				if got, _ := count.Call0(); got != uintptr(5+r) {
					errs <- fmt.Errorf("thread %d round %d: cxx_count() = %d, want %d", w, r, got, 5+r)
					return
				}
				if got, _ := digits.Call1(12); got != 14 {
					errs <- fmt.Errorf("thread %d: cxx_digits(12) = %d, want 14", w, got)
					return
				}
				if got, _ := uncaught.Call0(); got != 0 {
					errs <- fmt.Errorf("thread %d: cxx_uncaught() = %d, want 0", w, got)
					return
				}
				x := uintptr(w*1000 + r)
				if got, _ := throw.Call1(x); got != x+1 {
					errs <- fmt.Errorf("thread %d: cxx_throw(%d) = %d, want %d", w, x, got, x+1)
					return
				}
			}
			if err := lib.FreeThreadTLS(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x, want %#x", got, free)
	}
	vmmtest.SyncCheck(t, v, "after closing")
	checkUnmapped(t, v, path)
}

// TestTLSCloseVMM closes the VMM under a C++ group whose threads made
// thread-local blocks and whose unwind tables are registered: the VMM's
// Close closes the group (finalisers, deregistration, the blocks, the
// key, the stub page) and nothing of the VMM is left mapped.
func TestTLSCloseVMM(t *testing.T) {
	path := cxxFixture(t)
	v := smallVMM(t)
	foot := vmmtest.FootprintOf(v)
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	throw := tlsFunc(t, lib, "cxx_throw")
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if got, _ := throw.Call1(7); got != 8 {
				t.Errorf("cxx_throw(7) = %d, want 8", got)
			}
		}()
	}
	wg.Wait()
	foot.Mark(v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vmmtest.Unmapped(v, foot); err != nil {
		t.Fatal(err)
	}
	vmmtest.Forgotten(t, v, foot, "after the VMM closed")
	if _, err := lib.TLSBlock(); !errors.Is(err, ErrClosed) {
		t.Errorf("TLSBlock after the VMM closed: %v, want ErrClosed", err)
	}
}

// TestTLSNeedsVMHeap loads a library with thread-local storage into a VMM
// without vmheap, where the threads' blocks would go: it is refused, and
// nothing stays mapped.
func TestTLSNeedsVMHeap(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	loadFails(t, v, fxPath(t, "libfx_tlsmodels.so"), "thread-local storage needs the VMM's vmheap", ErrUnsupported)
}

// TestRealLibelfErrorPerThread loads the system's libelf (elfutils),
// whose last error is a thread-local variable (local-dynamic), and checks
// it against the host's own copy doing the same: an error set by a
// failing elf_begin on one thread is reported by elf_errno on that thread
// (then reset), not on another, with the same number and message as the
// host's libelf gives.
func TestRealLibelfErrorPerThread(t *testing.T) {
	const soname = "libelf.so.1"
	_, lib, fn := loadSystem(t, soname)
	if lib.File().TLS == nil {
		t.Skipf("%s has no thread-local storage here", soname)
	}
	h, err := purego.Dlopen(sysLibDir+soname, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Skipf("the host cannot open %s: %v", soname, err)
	}
	defer purego.Dlclose(h)
	host := func(name string) uintptr {
		a, err := purego.Dlsym(h, name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// elf_begin(-1, ELF_C_READ, NULL) fails; elf_errno returns and
	// clears the thread's last error.
	const evCurrent, elfCRead = 1, 1
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	native.Call1(host("elf_version"), evCurrent)
	if e := native.Call3(host("elf_begin"), ^uintptr(0), elfCRead, 0); e != 0 {
		t.Fatalf("the host's elf_begin(-1) = %#x, want NULL", e)
	}
	wantErr := native.Call0(host("elf_errno"))
	wantMsg := GoString(native.Call1(host("elf_errmsg"), wantErr))
	if wantErr == 0 {
		t.Fatal("the host's elf_errno() = 0 after a failing elf_begin")
	}

	ok(fn("elf_version").Call1(evCurrent))
	if e := ok(fn("elf_begin").Call3(^uintptr(0), elfCRead, 0)); e != 0 {
		t.Fatalf("elf_begin(-1) = %#x, want NULL", e)
	}
	other := make(chan uintptr)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		other <- ok(fn("elf_errno").Call0())
	}()
	if got := <-other; got != 0 {
		t.Errorf("elf_errno() on another thread = %d, want 0", got)
	}
	got := ok(fn("elf_errno").Call0())
	if got != wantErr {
		t.Errorf("elf_errno() = %d, the host's libelf says %d", got, wantErr)
	}
	if msg := GoString(ok(fn("elf_errmsg").Call1(got))); msg != wantMsg {
		t.Errorf("elf_errmsg(%d) = %q, the host's libelf says %q", got, msg, wantMsg)
	}
	if again := ok(fn("elf_errno").Call0()); again != 0 {
		t.Errorf("a second elf_errno() = %d, want 0 (reset)", again)
	}
	t.Logf("elf_errno %d: %s", got, wantMsg)
}
