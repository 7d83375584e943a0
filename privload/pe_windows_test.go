//go:build windows

package privload

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// The Windows loader's tests, run under Wine in CI (scripts/wine/test.sh).
// The test DLLs are the committed builds in testdata/pe/build: gcc cannot
// run under Wine. Temporary files are removed with os.RemoveAll, not
// t.TempDir, whose clean-up fails under Wine 8.0.

// peNewVMM returns a VMM with a 64 MiB vmcode, closed at the end of the
// test.
func peNewVMM(t *testing.T) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("closing the VMM: %v", err)
		}
	})
	return v
}

// peLoad loads a test DLL and checks it sits in a slot inside vmcode.
func peLoad(t *testing.T, v *vmm.VMM, name string, opts Options) (*Library, *PEModule) {
	t.Helper()
	path := name
	if !filepath.IsAbs(name) {
		var err error
		if path, err = filepath.Abs(peFixturePath(name)); err != nil {
			t.Fatal(err)
		}
	}
	name = filepath.Base(path)
	lib, err := Load(v, path, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	m := lib.PE()
	if m == nil {
		t.Fatalf("Load(%s): no PE module", name)
	}
	cb, cs := v.VMCode()
	if lib.Base() < cb || lib.Base()+lib.Size() > cb+cs || lib.Base()%v.OS().Granularity() != 0 {
		t.Errorf("%s at [%#x, +%#x): not a granularity-aligned slot inside vmcode [%#x, +%#x)", name, lib.Base(), lib.Size(), cb, cs)
	}
	if m.Base() != lib.Base() || m.Size() > lib.Size() {
		t.Errorf("%s: PE image [%#x, +%#x) is not the slot [%#x, +%#x)", name, m.Base(), m.Size(), lib.Base(), lib.Size())
	}
	seg, ok := v.Space().Lookup(lib.Base())
	if !ok || seg.Owner != "privlib "+name {
		t.Errorf("%s: aspacem has %+v at the base, want the slot owned by %q", name, seg, "privlib "+name)
	}
	vmmtest.SyncCheck(t, v, "after loading "+name)
	t.Logf("%s: image [%#x, +%#x) (ImageBase %#x) in slot [%#x, +%#x) of vmcode [%#x, +%#x); %d imports, DllMain attached: %v",
		name, m.Base(), m.Size(), m.File().ImageBase, lib.Base(), lib.Size(), cb, cs, len(lib.Imports()), m.Attached())
	return lib, m
}

// peFree reports whether s is unused vmcode: reserved, and not a slot's
// (the backing names its reservations "[vmcode]" or "grid slot i/n").
func peFree(s aspacem.Segment) bool {
	return s.Kind == aspacem.KindReservation && !strings.HasPrefix(s.Owner, "privlib ")
}

// peClose closes lib and checks its slot went back to vmcode, reserved.
func peClose(t *testing.T, v *vmm.VMM, lib *Library) {
	t.Helper()
	base, size := lib.Base(), lib.Size()
	var named string // an export Lookup finds before Close
	if m := lib.PE(); m != nil {
		for _, e := range m.File().Exports {
			if _, ok := lib.Lookup(e.Name); ok && e.Name != "" {
				named = e.Name
				break
			}
		}
	}
	if err := lib.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if lib.PE() != nil {
		t.Errorf("PE() is not nil after Close")
	}
	if _, ok := lib.Lookup(named); named != "" && ok {
		t.Errorf("Lookup(%q) still finds the export after Close", named)
	}
	for _, s := range v.Space().Segments(base, base+size) {
		if !peFree(s) {
			t.Errorf("after Close: %v, want vmcode reservation", s)
		}
	}
	vmmtest.SyncCheck(t, v, "after closing "+lib.Name())
}

// peExport returns the address of an export, failing the test if absent.
func peExport(t *testing.T, m *PEModule, name string) uintptr {
	t.Helper()
	a, err := m.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// peCall calls fn with integer arguments and returns RAX.
func peCall(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := syscall.SyscallN(fn, args...)
	return r
}

// peCString reads the NUL-terminated string at addr.
func peCString(addr uintptr) string {
	var b []byte
	for ; ; addr++ {
		c := rawmem.Bytes(addr, 1)[0]
		if c == 0 {
			return string(b)
		}
		b = append(b, c)
	}
}

// peU64At and peU32At read the image.
func peU64At(addr uintptr) uint64 { return binary.LittleEndian.Uint64(rawmem.Bytes(addr, 8)) }
func peU32At(addr uintptr) uint32 { return binary.LittleEndian.Uint32(rawmem.Bytes(addr, 4)) }

// peCheckProtections compares the kernel's protections over the image with
// the sections' and checks no page is writable and executable.
func peCheckProtections(t *testing.T, v *vmm.VMM, lib *Library, m *PEModule) {
	t.Helper()
	regions, err := v.OS().Regions(lib.Base(), lib.Base()+lib.Size())
	if err != nil {
		t.Fatal(err)
	}
	protAt := func(a uintptr) mem.Prot {
		for _, r := range regions {
			if a >= r.Start && a < r.End {
				return r.Prot
			}
		}
		return mem.ProtNone
	}
	for _, r := range regions {
		if r.Prot&mem.ProtWrite != 0 && r.Prot&mem.ProtExec != 0 {
			t.Errorf("[%#x, %#x) is %v", r.Start, r.End, r.Prot)
		}
	}
	if p := protAt(lib.Base()); p != mem.ProtRead {
		t.Errorf("headers are %v, want r--", p)
	}
	for _, s := range m.File().Sections {
		if got := protAt(lib.Base() + uintptr(s.VirtualAddress)); got != s.Prot() {
			t.Errorf("section %s is %v, want %v", s.Name, got, s.Prot())
		}
	}
	segs := lib.Segments()
	if len(segs) != 1+len(m.File().Sections) || segs[0].Start != lib.Base() {
		t.Errorf("Segments: %+v", segs)
	}
}

var peRtlLookupFunctionEntry = windows.NewLazySystemDLL("ntdll.dll").NewProc("RtlLookupFunctionEntry")

// peLookupFunctionEntry asks the OS's unwinder for the RUNTIME_FUNCTION
// covering pc, and the image base it belongs to.
func peLookupFunctionEntry(pc uintptr) (fn, imageBase uintptr) {
	fn, _, _ = peRtlLookupFunctionEntry.Call(pc, uintptr(unsafe.Pointer(&imageBase)), 0)
	return fn, imageBase
}

// peDetachSink receives DllMain(DLL_PROCESS_DETACH)'s record from
// noimports.dll: a package variable, so that it never moves.
var peDetachSink [4]uint64

const peDetachMagic = 0x0de7ac4ed11

func TestPELoadNoImports(t *testing.T) {
	v := peNewVMM(t)
	lib, m := peLoad(t, v, "noimports.dll", Options{})
	base := lib.Base()
	if uint64(base) == m.File().ImageBase {
		t.Fatalf("loaded at the preferred base %#x: relocation untested", base)
	}
	if len(lib.Imports()) != 0 {
		t.Errorf("imports: %v", lib.Imports())
	}
	peCheckProtections(t, v, lib, m)

	// DllMain ran once, with the image base as hinstDLL and
	// lpReserved NULL (a dynamic load).
	if !m.Attached() || m.Entry() != base+uintptr(m.File().Entry) {
		t.Errorf("attached %v, entry %#x", m.Attached(), m.Entry())
	}
	if n := peU32At(peExport(t, m, "attach_count")); n != 1 {
		t.Errorf("attach_count %d, want 1", n)
	}
	if h := peU64At(peExport(t, m, "attach_hinst")); h != uint64(base) {
		t.Errorf("DllMain got hinstDLL %#x, want the base %#x", h, base)
	}
	if r := peU64At(peExport(t, m, "attach_reserved")); r != 0 {
		t.Errorf("DllMain got lpReserved %#x, want 0", r)
	}

	// The code runs where it was placed.
	where := peExport(t, m, "where")
	if got := peCall(where); got != where || got < base || got >= base+lib.Size() {
		t.Errorf("where() = %#x, want its own address %#x in [%#x, +%#x)", got, where, base, lib.Size())
	}
	if got := int32(peCall(peExport(t, m, "add"), 40, 2)); got != 42 {
		t.Errorf("add(40, 2) = %d", got)
	}
	// apply calls through a table of relocated function pointers.
	apply := peExport(t, m, "apply")
	for op, want := range []int32{9, 5, 14} {
		if got := int32(peCall(apply, uintptr(op), 7, 2)); got != want {
			t.Errorf("apply(%d, 7, 2) = %d, want %d", op, got, want)
		}
	}
	if a, ok := lib.PE().LookupOrdinal(1); !ok || a != peExport(t, m, "add") {
		t.Errorf("ordinal 1: %#x, %v; want add", a, ok)
	}
	if _, ok := m.Lookup("nonexistent"); ok {
		t.Errorf("Lookup(nonexistent) succeeded")
	}
	add := peExport(t, m, "add")
	// Library.Lookup answers PE libraries through their export table.
	if a, ok := lib.Lookup("add"); !ok || a != add {
		t.Errorf("Library.Lookup(add) = %#x, %v; want %#x", a, ok, add)
	}
	if _, ok := lib.LookupVersion("add", "V1"); ok {
		t.Error("LookupVersion found a versioned PE export: PE exports have no versions")
	}

	// The exception directory is registered: the unwinder finds add's
	// RUNTIME_FUNCTION in the image, so exceptions can unwind through it.
	addPC := peExport(t, m, "add")
	fn, img := peLookupFunctionEntry(addPC)
	if fn < base || fn >= base+lib.Size() || img != base || uintptr(peU32At(fn))+base != addPC {
		t.Errorf("RtlLookupFunctionEntry(add) = %#x (image base %#x), want add's entry in the image at %#x", fn, img, base)
	}

	// DLL_PROCESS_DETACH runs at Close, before the image goes.
	peDetachSink = [4]uint64{}
	peCall(peExport(t, m, "set_detach_sink"), uintptr(unsafe.Pointer(&peDetachSink)))
	peClose(t, v, lib)
	if peDetachSink[0] != peDetachMagic || peDetachSink[1] != uint64(base) || peDetachSink[2] != 0 || peDetachSink[3] != 1 {
		t.Errorf("detach record %#x, want {magic, base %#x, 0, 1}", peDetachSink, base)
	}
	if m.Attached() {
		t.Errorf("still attached after Close")
	}
	if fn, _ := peLookupFunctionEntry(addPC); fn != 0 {
		t.Errorf("RtlLookupFunctionEntry finds %#x after Close: the function table was not deleted", fn)
	}
	if err := lib.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestPELoadCRT(t *testing.T) {
	v := peNewVMM(t)
	lib, m := peLoad(t, v, "crt.dll", Options{})
	defer peClose(t, v, lib)
	base := lib.Base()
	if m.File().ImageBase != 0x7ff512340000 || uint64(base) == m.File().ImageBase {
		t.Fatalf("ImageBase %#x, loaded at %#x", m.File().ImageBase, base)
	}
	peCheckProtections(t, v, lib, m)
	if n := peU32At(peExport(t, m, "attach_count")); n != 1 {
		t.Errorf("attach_count %d, want 1", n)
	}

	// Imports bound to the host's DLLs, by name and by ordinal.
	msvcrt, err := windows.LoadLibrary("msvcrt.dll")
	if err != nil {
		t.Fatal(err)
	}
	defer windows.FreeLibrary(msvcrt)
	ws2, err := windows.LoadLibrary("ws2_32.dll")
	if err != nil {
		t.Fatal(err)
	}
	defer windows.FreeLibrary(ws2)
	strlen, _ := windows.GetProcAddress(msvcrt, "strlen")
	htonl, _ := windows.GetProcAddressByOrdinal(ws2, 8)
	want := map[string]uintptr{"msvcrt.dll!strlen": strlen, "ws2_32.dll!#8": htonl}
	for _, imp := range lib.Imports() {
		if imp.How != BoundHostDLL {
			t.Errorf("import %+v not bound to a host DLL", imp)
		}
		if a, ok := want[imp.Name]; ok {
			if imp.BoundTo != a {
				t.Errorf("import %s bound to %#x, host has it at %#x", imp.Name, imp.BoundTo, a)
			}
			delete(want, imp.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("imports missing: %v (have %v)", want, lib.Imports())
	}

	// strlen over the relocated string table: 4+5+3+6+6.
	if got := peCall(peExport(t, m, "total_len")); got != 24 {
		t.Errorf("total_len() = %d, want 24", got)
	}
	// qsort calls back into the image, in vmcode.
	sorted := peExport(t, m, "sorted_fruit")
	for i, want := range []string{"apple", "banana", "cherry", "fig", "pear"} {
		p := peCall(sorted, uintptr(i))
		if p < base || p >= base+lib.Size() || peCString(p) != want {
			t.Errorf("sorted_fruit(%d) = %#x (%q), want %q inside the image", i, p, peCString(p), want)
		}
	}
	ints := []int32{5, -3, 9, 0, 2, 2, -7}
	peCall(peExport(t, m, "sort_ints"), uintptr(unsafe.Pointer(&ints[0])), uintptr(len(ints)))
	for i := 1; i < len(ints); i++ {
		if ints[i-1] > ints[i] {
			t.Errorf("sort_ints: %v", ints)
			break
		}
	}
	if got := uint32(peCall(peExport(t, m, "swap32"), 0x01020304)); got != 0x04030201 {
		t.Errorf("swap32 (ws2_32 ordinal 8, htonl) = %#x", got)
	}
	buf := make([]byte, 32)
	s := append([]byte("pi"), 0)
	if n := peCall(peExport(t, m, "format"), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&s[0])), 314); n != 6 || string(buf[:6]) != "pi=314" {
		t.Errorf("format = %d %q", n, buf[:n])
	}
	callFunc := peExport(t, m, "call_func")
	if a, b := peCall(callFunc, 0, 21), peCall(callFunc, 1, 9); a != 42 || b != 81 {
		t.Errorf("call_func: %d %d, want 42 81", a, b)
	}
}

func TestPELoadForwarders(t *testing.T) {
	v := peNewVMM(t)
	lib, m := peLoad(t, v, "fwd.dll", Options{})
	defer peClose(t, v, lib)
	msvcrt, _ := windows.LoadLibrary("msvcrt.dll")
	defer windows.FreeLibrary(msvcrt)
	ws2, _ := windows.LoadLibrary("ws2_32.dll")
	defer windows.FreeLibrary(ws2)
	strlen, _ := windows.GetProcAddress(msvcrt, "strlen")
	htonl, _ := windows.GetProcAddressByOrdinal(ws2, 8)

	if a := peExport(t, m, "fwd_strlen"); a != strlen {
		t.Errorf("fwd_strlen = %#x, msvcrt's strlen is %#x", a, strlen)
	}
	s := append([]byte("hello"), 0)
	if n := peCall(peExport(t, m, "fwd_strlen"), uintptr(unsafe.Pointer(&s[0]))); n != 5 {
		t.Errorf("fwd_strlen(hello) = %d", n)
	}
	if a := peExport(t, m, "fwd_htonl"); a != htonl {
		t.Errorf("fwd_htonl = %#x, ws2_32's ordinal 8 is %#x", a, htonl)
	}
	local := peExport(t, m, "local_sum")
	if a := peExport(t, m, "fwd_local"); a != local {
		t.Errorf("fwd_local (forwarded to fwd.local_sum) = %#x, local_sum is %#x", a, local)
	}
	if got := int32(peCall(local, 1, 20, 300)); got != 321 {
		t.Errorf("local_sum = %d", got)
	}
	byOrd, ok := m.LookupOrdinal(7)
	if !ok || byOrd < lib.Base() || byOrd >= lib.Base()+lib.Size() {
		t.Fatalf("ordinal 7: %#x, %v", byOrd, ok)
	}
	if got := peCall(byOrd); got != 7007 {
		t.Errorf("by_ordinal() = %d", got)
	}
	if _, ok := m.Lookup("by_ordinal"); ok {
		t.Errorf("by_ordinal found by name")
	}
}

func TestPELoadTwice(t *testing.T) {
	v := peNewVMM(t)
	a, ma := peLoad(t, v, "noimports.dll", Options{})
	b, mb := peLoad(t, v, "noimports.dll", Options{})
	if a.Base() == b.Base() {
		t.Fatalf("both at %#x", a.Base())
	}
	ca, cb := peExport(t, ma, "attach_count"), peExport(t, mb, "attach_count")
	if peU32At(ca) != 1 || peU32At(cb) != 1 {
		t.Errorf("attach counts %d %d, want 1 each (separate images)", peU32At(ca), peU32At(cb))
	}
	peClose(t, v, a)
	if got := int32(peCall(peExport(t, mb, "add"), 1, 2)); got != 3 {
		t.Errorf("second copy's add after closing the first = %d", got)
	}
	peClose(t, v, b)
}

func TestPESkipInit(t *testing.T) {
	v := peNewVMM(t)
	lib, m := peLoad(t, v, "noimports.dll", Options{SkipInit: true})
	if m.Attached() || peU32At(peExport(t, m, "attach_count")) != 0 {
		t.Errorf("DllMain ran despite SkipInit")
	}
	peDetachSink = [4]uint64{}
	peCall(peExport(t, m, "set_detach_sink"), uintptr(unsafe.Pointer(&peDetachSink)))
	peClose(t, v, lib)
	if peDetachSink[0] != 0 {
		t.Errorf("DllMain(DLL_PROCESS_DETACH) ran despite SkipInit")
	}
}

func TestPEResolveRedirects(t *testing.T) {
	v := peNewVMM(t)
	fake := windows.NewCallback(func(s uintptr) uintptr { return 100 })
	var asked []string
	lib, m := peLoad(t, v, "crt.dll", Options{Resolve: func(name string) (uintptr, bool) {
		asked = append(asked, name)
		return fake, name == "strlen"
	}})
	defer peClose(t, v, lib)
	if got := peCall(peExport(t, m, "total_len")); got != 500 {
		t.Errorf("total_len() with strlen redirected = %d, want 500", got)
	}
	for _, imp := range lib.Imports() {
		if (imp.Name == "msvcrt.dll!strlen") != (imp.How == BoundResolver) {
			t.Errorf("import %+v", imp)
		}
	}
	if strings.Contains(strings.Join(asked, " "), "#") || len(asked) != 5 {
		t.Errorf("Resolve asked for %q, want the 5 by-name imports", asked)
	}
}

// peWriteTemp writes data to a fresh temporary file called name.
func peWriteTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "privload-pe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// peCheckFailed checks that a failed load left nothing: aspacem matches
// the kernel and all of vmcode is free again.
func peCheckFailed(t *testing.T, v *vmm.VMM) {
	t.Helper()
	vmmtest.SyncCheck(t, v, "after a failed load")
	cb, cs := v.VMCode()
	for _, s := range v.Space().Segments(cb, cb+cs) {
		if !peFree(s) {
			t.Errorf("after a failed load: %v remains", s)
		}
	}
}

func TestPELoadRefused(t *testing.T) {
	v := peNewVMM(t)
	for _, m := range peMutants {
		t.Run(m.name, func(t *testing.T) {
			p := peWriteTemp(t, m.fix, peMutate(t, m))
			lib, err := Load(v, p, Options{})
			if err == nil {
				lib.Close()
			}
			peCheckRefusal(t, m, p, err)
			peCheckFailed(t, v)
		})
	}
	t.Run("executable", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(v, exe, Options{})
		peCheckRefusal(t, peMutant{name: "executable", class: ErrUnsupported, reason: "not a DLL"}, exe, err)
		peCheckFailed(t, v)
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(v, "no-such.dll", Options{}); err == nil || !strings.Contains(err.Error(), "no-such.dll") {
			t.Errorf("Load of a missing file: %v", err)
		}
	})
}

// TestPELoadFailures covers failures after the slot is filled: an import
// that does not resolve, a DLL that is not there, DllMain returning FALSE.
// Each names the file and the reason, and leaves nothing behind.
func TestPELoadFailures(t *testing.T) {
	v := peNewVMM(t)
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"missing function", "strlen\x00", "strlex\x00", "msvcrt.dll!strlex"},
		{"missing DLL", "ws2_32.dll\x00", "ws2_99.dll\x00", "ws2_99.dll"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := peReadFixture(t, "crt.dll")
			b = append([]byte(nil), b...)
			peReplace(t, b, c.old, c.new)
			p := peWriteTemp(t, "crt.dll", b)
			_, err := Load(v, p, Options{})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: %v, want an error naming %s and %q", err, p, c.want)
			}
			peCheckFailed(t, v)
		})
	}
	t.Run("DllMain FALSE", func(t *testing.T) {
		t.Setenv("REACHVM_PE_FAIL_ATTACH", "1")
		path, _ := filepath.Abs(peFixturePath("crt.dll"))
		_, err := Load(v, path, Options{})
		if err == nil || !strings.Contains(err.Error(), "DLL_PROCESS_ATTACH) returned FALSE") || !strings.Contains(err.Error(), path) {
			t.Errorf("Load: %v, want DllMain's failure", err)
		}
		peCheckFailed(t, v)
	})
}

// peSystemDLL returns the path of a DLL in the system directory, skipping
// the test if it is absent.
func peSystemDLL(t *testing.T, name string) string {
	t.Helper()
	sys, err := windows.GetSystemDirectory()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(sys, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s: %v", name, err)
	}
	return p
}

// TestPELoadSystemDLLs loads unmodified DLLs of the system directory (Wine's
// own PE builds under Wine) privately, with DllMain, and uses them. Each is
// a second, private copy: its functions are not the host copy's.
func TestPELoadSystemDLLs(t *testing.T) {
	v := peNewVMM(t)
	hello := append([]byte("hello, vmcode"), 0)
	num := append([]byte("-1234"), 0)
	t.Run("msvcrt.dll", func(t *testing.T) {
		lib, m := peLoad(t, v, peSystemDLL(t, "msvcrt.dll"), Options{})
		defer peClose(t, v, lib)
		strlen := peExport(t, m, "strlen")
		host, _ := windows.LoadLibrary("msvcrt.dll")
		defer windows.FreeLibrary(host)
		if h, _ := windows.GetProcAddress(host, "strlen"); h == strlen {
			t.Errorf("the private strlen is the host's")
		}
		if n := peCall(strlen, uintptr(unsafe.Pointer(&hello[0]))); n != 13 {
			t.Errorf("strlen = %d", n)
		}
		if n := int32(peCall(peExport(t, m, "atoi"), uintptr(unsafe.Pointer(&num[0])))); n != -1234 {
			t.Errorf("atoi = %d", n)
		}
		// malloc works only if DllMain set up msvcrt's heap.
		p := peCall(peExport(t, m, "malloc"), 4096)
		if p == 0 {
			t.Fatalf("malloc returned NULL")
		}
		clear(rawmem.Bytes(p, 4096))
		peCall(peExport(t, m, "free"), p)
		buf := make([]byte, 64)
		f := append([]byte("%s|%d|%x"), 0)
		n := peCall(peExport(t, m, "_snprintf"), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&f[0])), uintptr(unsafe.Pointer(&num[0])), 77, 0xbeef)
		if got := string(buf[:min(n, uintptr(len(buf)))]); got != "-1234|77|beef" {
			t.Errorf("_snprintf wrote %q", got)
		}
	})
	t.Run("shlwapi.dll", func(t *testing.T) {
		lib, m := peLoad(t, v, peSystemDLL(t, "shlwapi.dll"), Options{})
		defer peClose(t, v, lib)
		if n := int32(peCall(peExport(t, m, "StrToIntA"), uintptr(unsafe.Pointer(&num[0])))); n != -1234 {
			t.Errorf("StrToIntA = %d", n)
		}
		path := append([]byte(`C:\dir\file.tar.gz`), 0)
		ext := peCall(peExport(t, m, "PathFindExtensionA"), uintptr(unsafe.Pointer(&path[0])))
		if ext != uintptr(unsafe.Pointer(&path[15])) {
			t.Errorf("PathFindExtensionA = %#x, want %#x", ext, uintptr(unsafe.Pointer(&path[15])))
		}
	})
	t.Run("ucrtbase.dll", func(t *testing.T) {
		lib, m := peLoad(t, v, peSystemDLL(t, "ucrtbase.dll"), Options{})
		defer peClose(t, v, lib)
		if n := peCall(peExport(t, m, "strlen"), uintptr(unsafe.Pointer(&hello[0]))); n != 13 {
			t.Errorf("strlen = %d", n)
		}
	})
}

// underWine reports whether the process runs under Wine rather than
// Windows: Wine's ntdll exports wine_get_version, Windows' does not.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// TestPELoadWineSweep loads, without DllMain, every DLL of Wine's system
// directory up to 512 KiB, and closes it: each loads (relocated, imports
// bound against the host, protected) or is refused with a *FormatError
// naming it, and nothing leaks (aspacem matches VirtualQuery at the end).
// Under Wine only: a Windows system directory holds thousands of DLLs.
func TestPELoadWineSweep(t *testing.T) {
	if !underWine() {
		t.Skip("not under Wine")
	}
	sys, err := windows.GetSystemDirectory()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(sys)
	if err != nil {
		t.Fatal(err)
	}
	v := peNewVMM(t)
	tried, loaded, refused := 0, 0, map[string]int{}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !strings.EqualFold(filepath.Ext(e.Name()), ".dll") || info.Size() > 512<<10 {
			continue
		}
		tried++
		p := filepath.Join(sys, e.Name())
		lib, err := Load(v, p, Options{SkipInit: true})
		if err != nil {
			var fe *FormatError
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%s: error does not name the file: %v", e.Name(), err)
			} else if errors.As(err, &fe) {
				refused[fe.Reason]++
			} else {
				refused[strings.TrimPrefix(err.Error(), "privload: "+p+": ")]++
			}
			continue
		}
		loaded++
		if err := lib.Close(); err != nil {
			t.Errorf("%s: Close: %v", e.Name(), err)
		}
	}
	t.Logf("%s: of %d DLLs up to 512 KiB, %d loaded and closed, %d refused", sys, tried, loaded, tried-loaded)
	for r, n := range refused {
		t.Logf("  refused %d: %s", n, r)
	}
	if loaded < 100 {
		t.Errorf("only %d DLLs loaded", loaded)
	}
	peCheckFailed(t, v)
}
