//go:build linux

package privload

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// newVMM returns a VMM with a 64 MiB vmcode, closed at the end of the test.
func newVMM(t testing.TB) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
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

// writeTemp writes data to a file called name in a fresh temporary
// directory removed at the end of the test, and returns its resolved path.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "privload-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkUnmapped asserts that /proc/self/maps shows no mapping of path
// inside v's vmcode (the host's dynamic linker may have its own copy of a
// system library elsewhere).
func checkUnmapped(t testing.TB, v *vmm.VMM, path string) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	base, size := v.VMCode()
	for _, line := range strings.Split(string(maps), "\n") {
		if !strings.HasSuffix(line, " "+path) {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err != nil {
			t.Fatalf("bad maps line %q", line)
		}
		if lo < base+size && hi > base {
			t.Errorf("a mapping of %s remains in vmcode: %s", path, line)
		}
	}
}

// loadFails loads path, which must fail with an error naming path, saying
// want and (unless class is nil) of that class, and leave nothing behind:
// vmcode's free bytes as before, aspacem in sync, no mapping of path.
func loadFails(t *testing.T, v *vmm.VMM, path, want string, class error) {
	t.Helper()
	free := v.FreeVMCode()
	lib, err := Load(v, path, Options{})
	if err == nil {
		lib.Close()
		t.Fatal("Load succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load: %v, want an error naming %s and saying %q", err, path, want)
	}
	if class != nil && !errors.Is(err, class) {
		t.Errorf("Load: %v, want class %v", err, class)
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x after the failed load, %#x before: slot leaked", got, free)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
	checkUnmapped(t, v, path)
}

// call calls the native function at fn.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) int64 {
	return int64(native.CallN(fn, args))
}

func lookup(t testing.TB, lib *Library, name string) uintptr {
	t.Helper()
	a, ok := lib.Lookup(name)
	if !ok {
		t.Fatalf("%s does not export %s", lib.Name(), name)
	}
	return a
}

// demoArgs are argument pairs for demo_compute, wrapping ones included.
var demoArgs = [][2]int64{{6, 7}, {0, 0}, {-1, 1}, {123456789, -987654321}, {1 << 62, 3}, {-1 << 63, -1}}

func TestLoadDemo(t *testing.T) {
	v := newVMM(t)
	path := writeTemp(t, demolib.Name, demolib.SO)
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after load")

	if lib.Name() != demolib.Name {
		t.Errorf("Name %q", lib.Name())
	}
	if !v.InVMCode(lib.Base(), lib.Size()) {
		base, size := v.VMCode()
		t.Errorf("image [%#x, +%#x) is not inside vmcode [%#x, +%#x)", lib.Base(), lib.Size(), base, size)
	}
	fn := lookup(t, lib, demolib.Compute)
	if fn < lib.Base() || fn >= lib.Base()+lib.Size() {
		t.Errorf("%s at %#x is outside the image", demolib.Compute, fn)
	}
	for _, a := range demoArgs {
		got := call(fn, uintptr(a[0]), uintptr(a[1]))
		if want := demolib.Expected(a[0], a[1]); got != want {
			t.Errorf("demo_compute(%d, %d) = %d, want %d", a[0], a[1], got, want)
		}
	}
	if n := call(lookup(t, lib, demolib.Calls)); n != int64(len(demoArgs)) {
		t.Errorf("demo_calls() = %d, want %d", n, len(demoArgs))
	}
	if got := call(lookup(t, lib, demolib.Helper), 5); got != 16 {
		t.Errorf("demo_helper(5) = %d", got)
	}

	// The exported variable is the one the code reads through the GOT.
	scale := rawmem.Bytes(lookup(t, lib, demolib.Scale), 8)
	if s := int64(binary.LittleEndian.Uint64(scale)); s != demolib.InitialScale {
		t.Errorf("demo_scale = %d", s)
	}
	binary.LittleEndian.PutUint64(scale, 11)
	if got, want := call(fn, 2, 3), demolib.ExpectedWith(2, 3, 11); got != want {
		t.Errorf("with demo_scale 11: demo_compute(2, 3) = %d, want %d", got, want)
	}

	imports := map[string]Import{}
	for _, im := range lib.Imports() {
		imports[im.Name] = im
	}
	for _, name := range []string{demolib.Helper, demolib.Scale, demolib.FiniHook} {
		im, ok := imports[name]
		if !ok || im.How != BoundSelf || im.BoundTo != lookup(t, lib, name) {
			t.Errorf("import %s = %+v, %v: want bound to the library's own definition", name, im, ok)
		}
	}

	checkProtections(t, v, lib)

	// Finalisers run at Close: the destructor writes demo_calls through
	// demo_fini_hook.
	var sink int64
	binary.LittleEndian.PutUint64(rawmem.Bytes(lookup(t, lib, demolib.FiniHook), 8), uint64(uintptr(unsafe.Pointer(&sink))))
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(&sink)
	if want := int64(len(demoArgs)) + 1; sink != want {
		t.Errorf("destructor wrote %d, want %d (demo_calls)", sink, want)
	}
	if err := lib.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	vmmtest.SyncCheck(t, v, "after close")
	checkUnmapped(t, v, path)
}

// checkProtections compares the kernel's view of each segment with what
// the ELF file asks for: code r-x, read-only data r--, RELRO r--, data
// rw-, and nothing both writable and executable.
func checkProtections(t *testing.T, v *vmm.VMM, lib *Library) {
	t.Helper()
	segs := lib.Segments()
	if len(segs) != len(lib.File().Loads) {
		t.Fatalf("%d segments, %d PT_LOADs", len(segs), len(lib.File().Loads))
	}
	sawRelro := false
	for i, s := range segs {
		if s.Start%v.OS().PageSize() != 0 || s.End <= s.Start || s.FileEnd < s.Start || s.FileEnd > s.End {
			t.Errorf("segment %d: bad bounds %+v", i, s)
		}
		regions, err := v.OS().Regions(s.Start, s.End)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			want := s.Prot
			if r.Start >= s.RelroStart && r.End <= s.RelroEnd {
				want &^= mem.ProtWrite
				sawRelro = true
			}
			if r.Prot != want {
				t.Errorf("segment %d: [%#x, %#x) is %v, want %v", i, r.Start, r.End, r.Prot, want)
			}
			if r.Prot&mem.ProtWrite != 0 && r.Prot&mem.ProtExec != 0 {
				t.Errorf("segment %d: [%#x, %#x) is writable and executable", i, r.Start, r.End)
			}
		}
	}
	if lib.File().Relro.Size >= 4096 && !sawRelro {
		t.Error("no read-only RELRO page seen")
	}
}

func TestLoadSkipInit(t *testing.T) {
	v := newVMM(t)
	path := writeTemp(t, demolib.Name, demolib.SO)
	lib, err := Load(v, path, Options{SkipInit: true})
	if err != nil {
		t.Fatal(err)
	}
	var sink int64 = -1
	binary.LittleEndian.PutUint64(rawmem.Bytes(lookup(t, lib, demolib.FiniHook), 8), uint64(uintptr(unsafe.Pointer(&sink))))
	if got, want := call(lookup(t, lib, demolib.Compute), 6, 7), demolib.Expected(6, 7)-demolib.InitSeed; got != want {
		t.Errorf("without initialisers demo_compute(6, 7) = %d, want %d", got, want)
	}
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(&sink)
	if sink != -1 {
		t.Errorf("the destructor ran (wrote %d) although the constructor did not", sink)
	}
	vmmtest.SyncCheck(t, v, "after close")
	checkUnmapped(t, v, path)
}

// TestLoadTwice loads two copies side by side: each gets its own slot and
// its own data.
func TestLoadTwice(t *testing.T) {
	v := newVMM(t)
	path := writeTemp(t, demolib.Name, demolib.SO)
	a, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Base() == b.Base() {
		t.Fatal("two loads share a base")
	}
	call(lookup(t, a, demolib.Compute), 1, 2)
	if n := call(lookup(t, b, demolib.Calls)); n != 0 {
		t.Errorf("second copy counted %d calls made to the first", n)
	}
	vmmtest.SyncCheck(t, v, "two loaded")
	for _, l := range []*Library{a, b} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	vmmtest.SyncCheck(t, v, "after close")
	checkUnmapped(t, v, path)
}

// fixture gives byte-level access to a copy of the demo library, for
// building malformed variants.
type fixture struct {
	t    *testing.T
	f    *File
	data []byte
}

func newFixture(t *testing.T) *fixture {
	f, err := Parse(demolib.Name, demolib.SO)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, f: f, data: bytes.Clone(demolib.SO)}
}

func (x *fixture) u16(off int, v uint16) { binary.LittleEndian.PutUint16(x.data[off:], v) }
func (x *fixture) u32(off int, v uint32) { binary.LittleEndian.PutUint32(x.data[off:], v) }
func (x *fixture) u64(off int, v uint64) { binary.LittleEndian.PutUint64(x.data[off:], v) }

// phdr returns the file offset of the n-th program header of type typ.
func (x *fixture) phdr(typ elf.ProgType, n int) int {
	phoff := int(binary.LittleEndian.Uint64(x.data[32:]))
	phnum := int(binary.LittleEndian.Uint16(x.data[56:]))
	for i := 0; i < phnum; i++ {
		off := phoff + i*phdrSize
		if elf.ProgType(binary.LittleEndian.Uint32(x.data[off:])) == typ {
			if n == 0 {
				return off
			}
			n--
		}
	}
	x.t.Fatalf("no program header %v", typ)
	return 0
}

// fileOff maps a vaddr of the fixture to its file offset.
func (x *fixture) fileOff(vaddr uint64) int {
	_, off, ok := x.f.fileBytes(vaddr, 1)
	if !ok {
		x.t.Fatalf("vaddr %#x is not in the file", vaddr)
	}
	return int(off)
}

// dyn returns the file offset of the dynamic entry with tag.
func (x *fixture) dyn(tag elf.DynTag) int {
	start := x.fileOff(x.f.Dynamic.Vaddr)
	for off := start; off < start+int(x.f.Dynamic.Size); off += dynSize {
		if elf.DynTag(binary.LittleEndian.Uint64(x.data[off:])) == tag {
			return off
		}
	}
	x.t.Fatalf("no dynamic entry %v", tag)
	return 0
}

// rela returns the file offset of the first DT_RELA entry of type typ.
func (x *fixture) rela(typ elf.R_X86_64) int {
	start := x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_RELA)+8:]))
	for i, r := range x.f.Rela {
		if r.Type == typ {
			return start + i*relaSize
		}
	}
	x.t.Fatalf("no %v relocation", typ)
	return 0
}

// sym returns the file offset of the symbol table entry of name.
func (x *fixture) sym(name string) int {
	i, _, ok := x.f.Lookup(name)
	if !ok {
		x.t.Fatalf("no symbol %s", name)
	}
	return x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_SYMTAB)+8:])) + i*symSize
}

// malformedCases are variants of the demo library, each broken one way,
// with the words its error must contain. load marks the ones the parser
// accepts and the loader must refuse after it reserved a slot.
var malformedCases = []struct {
	name  string
	edit  func(x *fixture)
	want  string
	class error
	load  bool
}{
	{name: "truncated header", edit: func(x *fixture) { x.data = x.data[:40] }, want: "truncated ELF header", class: ErrMalformed},
	{name: "empty file", edit: func(x *fixture) { x.data = x.data[:0] }, want: "truncated ELF header", class: ErrMalformed},
	{name: "bad magic", edit: func(x *fixture) { x.data[1] = 'X' }, want: "bad magic", class: ErrMalformed},
	{name: "32-bit class", edit: func(x *fixture) { x.data[elf.EI_CLASS] = byte(elf.ELFCLASS32) }, want: "only ELFCLASS64", class: ErrUnsupported},
	{name: "big endian", edit: func(x *fixture) { x.data[elf.EI_DATA] = byte(elf.ELFDATA2MSB) }, want: "only little-endian", class: ErrUnsupported},
	{name: "wrong machine", edit: func(x *fixture) { x.u16(18, uint16(elf.EM_AARCH64)) }, want: "machine EM_AARCH64", class: ErrUnsupported},
	{name: "executable", edit: func(x *fixture) { x.u16(16, uint16(elf.ET_EXEC)) }, want: "ET_EXEC", class: ErrUnsupported},
	{name: "relocatable", edit: func(x *fixture) { x.u16(16, uint16(elf.ET_REL)) }, want: "not a shared object", class: ErrUnsupported},
	{name: "bad phentsize", edit: func(x *fixture) { x.u16(54, 32) }, want: "e_phentsize", class: ErrMalformed},
	{name: "no program headers", edit: func(x *fixture) { x.u16(56, 0) }, want: "no program headers", class: ErrMalformed},
	{name: "phdrs out of file", edit: func(x *fixture) { x.u64(32, uint64(len(x.data))-100) }, want: "program headers", class: ErrMalformed},
	{name: "phoff overflows", edit: func(x *fixture) { x.u64(32, ^uint64(0)-8) }, want: "lie outside the file", class: ErrMalformed},
	{name: "PT_LOAD out of file", edit: func(x *fixture) {
		ph := x.phdr(elf.PT_LOAD, 1)
		x.u64(ph+32, uint64(len(x.data))) // p_filesz
		x.u64(ph+40, uint64(len(x.data))) // p_memsz
	}, want: "lies outside the file", class: ErrMalformed},
	{name: "PT_LOAD filesz above memsz", edit: func(x *fixture) {
		x.u64(x.phdr(elf.PT_LOAD, 1)+40, 8) // p_memsz
	}, want: "exceeds p_memsz", class: ErrMalformed},
	{name: "overlapping PT_LOAD", edit: func(x *fixture) {
		ph := x.phdr(elf.PT_LOAD, 1)
		x.u64(ph+40, 0x2000) // p_memsz reaches into the next one
	}, want: "overlaps", class: ErrMalformed},
	{name: "unsorted PT_LOAD", edit: func(x *fixture) {
		a, b := x.phdr(elf.PT_LOAD, 1), x.phdr(elf.PT_LOAD, 2)
		tmp := bytes.Clone(x.data[a : a+phdrSize])
		copy(x.data[a:], x.data[b:b+phdrSize])
		copy(x.data[b:], tmp)
	}, want: "must be sorted", class: ErrMalformed},
	{name: "misaligned PT_LOAD", edit: func(x *fixture) {
		x.u64(x.phdr(elf.PT_LOAD, 1)+8, 0x1008) // p_offset
	}, want: "differ modulo", class: ErrMalformed},
	{name: "huge PT_LOAD", edit: func(x *fixture) {
		x.u64(x.phdr(elf.PT_LOAD, 3)+40, 1<<40)
	}, want: "beyond", class: ErrUnsupported},
	{name: "no PT_DYNAMIC", edit: func(x *fixture) { x.u32(x.phdr(elf.PT_DYNAMIC, 0), uint32(elf.PT_NOTE)) }, want: "no PT_DYNAMIC", class: ErrMalformed},
	{name: "dynamic out of file", edit: func(x *fixture) {
		x.u64(x.phdr(elf.PT_DYNAMIC, 0)+8, uint64(len(x.data))-8)
	}, want: "PT_DYNAMIC file range", class: ErrMalformed},
	{name: "dynamic offset disagrees with address", edit: func(x *fixture) {
		x.u64(x.phdr(elf.PT_DYNAMIC, 0)+8, 0x100)
	}, want: "is not the file-backed part", class: ErrMalformed},
	{name: "dynamic unterminated", edit: func(x *fixture) {
		x.u64(x.dyn(elf.DT_NULL), uint64(elf.DT_DEBUG))
		x.u64(x.phdr(elf.PT_DYNAMIC, 0)+32, uint64(x.dyn(elf.DT_DEBUG)+dynSize-x.fileOff(x.f.Dynamic.Vaddr)))
	}, want: "no DT_NULL", class: ErrMalformed},
	{name: "duplicate DT_STRTAB", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_RELACOUNT), uint64(elf.DT_STRTAB)) }, want: "DT_STRTAB appears twice", class: ErrMalformed},
	{name: "string table out of file", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_STRSZ)+8, 1<<20) }, want: "DT_STRTAB", class: ErrMalformed},
	{name: "bad soname offset", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_SONAME)+8, 0xffff) }, want: "DT_SONAME string offset", class: ErrMalformed},
	{name: "bad symbol name offset", edit: func(x *fixture) { x.u32(x.sym(demolib.Scale), 0xfffff) }, want: "name offset", class: ErrMalformed},
	{name: "symbol table out of file", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_SYMTAB)+8, 0x3f0) }, want: "DT_SYMTAB", class: ErrMalformed},
	{name: "bad DT_SYMENT", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_SYMENT)+8, 16) }, want: "DT_SYMENT", class: ErrMalformed},
	{name: "no hash table", edit: func(x *fixture) {
		x.u64(x.dyn(elf.DT_GNU_HASH), uint64(elf.DT_DEBUG))
		x.u64(x.dyn(elf.DT_HASH), uint64(elf.DT_DEBUG))
	}, want: "symbol count is unknown", class: ErrMalformed},
	{name: "GNU hash bloom not a power of two", edit: func(x *fixture) {
		x.u32(x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_GNU_HASH)+8:]))+8, 3)
	}, want: "Bloom filter size", class: ErrMalformed},
	{name: "GNU hash buckets out of range", edit: func(x *fixture) {
		x.u32(x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_GNU_HASH)+8:])), 1<<30)
	}, want: "DT_GNU_HASH", class: ErrMalformed},
	{name: "SysV hash chain out of range", edit: func(x *fixture) {
		x.u32(x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_HASH)+8:]))+8, 999)
	}, want: "not below nchain", class: ErrMalformed},
	{name: "relocations out of file", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_RELASZ)+8, 24<<20) }, want: "DT_RELA", class: ErrMalformed},
	{name: "bad DT_RELAENT", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_RELAENT)+8, 16) }, want: "DT_RELAENT", class: ErrMalformed},
	{name: "relocation symbol out of range", edit: func(x *fixture) {
		x.u32(x.rela(elf.R_X86_64_GLOB_DAT)+12, 77)
	}, want: "names symbol 77", class: ErrMalformed},
	{name: "relocation into text", edit: func(x *fixture) {
		x.u64(x.rela(elf.R_X86_64_RELATIVE), 0x1000)
	}, want: "text relocation", class: ErrUnsupported},
	{name: "DT_TEXTREL", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_RELACOUNT), uint64(elf.DT_TEXTREL)) }, want: "DT_TEXTREL", class: ErrUnsupported},
	{name: "DF_TEXTREL", edit: func(x *fixture) {
		off := x.dyn(elf.DT_FLAGS) + 8
		x.u64(off, binary.LittleEndian.Uint64(x.data[off:])|uint64(elf.DF_TEXTREL))
	}, want: "DF_TEXTREL", class: ErrUnsupported},
	{name: "DT_REL", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_RELACOUNT), uint64(elf.DT_REL)) }, want: "REL relocations", class: ErrUnsupported},
	{name: "PLT relocations of kind REL", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_PLTREL)+8, uint64(elf.DT_REL)) }, want: "DT_PLTREL", class: ErrMalformed},
	{name: "init outside code", edit: func(x *fixture) {
		x.u64(x.dyn(elf.DT_RELACOUNT), uint64(elf.DT_INIT))
		x.u64(x.dyn(elf.DT_INIT)+8, 0x2000)
	}, want: "not in an executable PT_LOAD", class: ErrMalformed},
	{name: "init array outside data", edit: func(x *fixture) { x.u64(x.dyn(elf.DT_INIT_ARRAY)+8, 0x1000) }, want: "DT_INIT_ARRAY", class: ErrMalformed},
	// PT_GNU_RELRO turned into PT_TLS: a valid template over the
	// .init_array, .fini_array, .dynamic and .got, made invalid one way
	// at a time.
	{name: "two PT_TLS", edit: func(x *fixture) {
		x.u32(x.phdr(elf.PT_GNU_RELRO, 0), uint32(elf.PT_TLS))
		x.u32(x.phdr(elf.PT_GNU_STACK, 0), uint32(elf.PT_TLS))
	}, want: "more than one PT_TLS", class: ErrMalformed},
	{name: "PT_TLS filesz above memsz", edit: func(x *fixture) {
		off := x.phdr(elf.PT_GNU_RELRO, 0)
		x.u32(off, uint32(elf.PT_TLS))
		x.u64(off+32, binary.LittleEndian.Uint64(x.data[off+40:])+8)
	}, want: "PT_TLS: p_filesz", class: ErrMalformed},
	{name: "PT_TLS block too large", edit: func(x *fixture) {
		off := x.phdr(elf.PT_GNU_RELRO, 0)
		x.u32(off, uint32(elf.PT_TLS))
		x.u64(off+40, 1<<30)
	}, want: "thread-local block", class: ErrUnsupported},
	{name: "PT_TLS alignment not a power of two", edit: func(x *fixture) {
		off := x.phdr(elf.PT_GNU_RELRO, 0)
		x.u32(off, uint32(elf.PT_TLS))
		x.u64(off+48, 24)
	}, want: "PT_TLS: p_align 0x18", class: ErrMalformed},
	{name: "PT_TLS image in the .bss", edit: func(x *fixture) {
		off := x.phdr(elf.PT_GNU_RELRO, 0)
		x.u32(off, uint32(elf.PT_TLS))
		x.u64(off+16, 0x9000)
	}, want: "file-backed part", class: ErrMalformed},
	{name: "PT_INTERP", edit: func(x *fixture) { x.u32(x.phdr(elf.PT_GNU_STACK, 0), uint32(elf.PT_INTERP)) }, want: "PT_INTERP", class: ErrUnsupported},
	{name: "RELRO outside writable data", edit: func(x *fixture) { x.u64(x.phdr(elf.PT_GNU_RELRO, 0)+16, 0x1000) }, want: "PT_GNU_RELRO", class: ErrMalformed},

	// Accepted by the parser, refused by the loader once the slot is
	// reserved and the segments mapped: the slot must be released.
	{name: "unsupported relocation type", edit: func(x *fixture) {
		x.u32(x.rela(elf.R_X86_64_RELATIVE)+8, uint32(elf.R_X86_64_TPOFF64))
	}, want: "R_X86_64_TPOFF64 (type 18)", class: ErrUnsupported, load: true},
	{name: "DTPMOD64 without PT_TLS", edit: func(x *fixture) {
		x.u32(x.rela(elf.R_X86_64_RELATIVE)+8, uint32(elf.R_X86_64_DTPMOD64))
	}, want: "R_X86_64_DTPMOD64 (type 16) at", class: ErrMalformed, load: true},
	{name: "TLSDESC without PT_TLS", edit: func(x *fixture) {
		x.u32(x.rela(elf.R_X86_64_RELATIVE)+8, uint32(elf.R_X86_64_TLSDESC))
	}, want: "R_X86_64_TLSDESC (type 36) at", class: ErrMalformed, load: true},
	{name: "copy relocation", edit: func(x *fixture) {
		x.u32(x.rela(elf.R_X86_64_RELATIVE)+8, uint32(elf.R_X86_64_COPY))
	}, want: "R_X86_64_COPY (type 5)", class: ErrUnsupported, load: true},
	{name: "undefined symbol", edit: func(x *fixture) { x.u16(x.sym(demolib.Scale)+6, uint16(elf.SHN_UNDEF)) }, want: `undefined symbol "demo_scale"`, load: true},
	{name: "ifunc resolver outside code", edit: func(x *fixture) {
		// demo_helper becomes an indirect function whose "resolver" is
		// demo_scale, in data.
		off := x.sym(demolib.Helper)
		x.data[off+4] = byte(elf.STB_GLOBAL)<<4 | byte(elf.STT_GNU_IFUNC)
		x.u64(off+8, binary.LittleEndian.Uint64(x.data[x.sym(demolib.Scale)+8:]))
	}, want: `indirect function "demo_helper": resolver`, class: ErrMalformed, load: true},
	{name: "init array entry outside code", edit: func(x *fixture) {
		// The constructor's RELATIVE relocation now points at data.
		start := x.fileOff(binary.LittleEndian.Uint64(x.data[x.dyn(elf.DT_RELA)+8:]))
		for i, r := range x.f.Rela {
			if r.Off == x.f.InitArray.Vaddr {
				x.u64(start+i*relaSize+16, 0x2000)
			}
		}
	}, want: "DT_INIT_ARRAY entry 0", load: true},
}

// TestMalformed parses and loads each broken variant: each must fail with
// its own error, naming the file, without a panic and without leaving any
// mapping behind.
func TestMalformed(t *testing.T) {
	v := newVMM(t)
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t)
			tc.edit(x)
			_, perr := Parse(demolib.Name, x.data)
			if tc.load {
				if perr != nil {
					t.Fatalf("Parse: %v, want success (the loader must refuse this one)", perr)
				}
			} else {
				if perr == nil {
					t.Fatal("Parse succeeded")
				}
				if !strings.Contains(perr.Error(), tc.want) || !strings.Contains(perr.Error(), demolib.Name) {
					t.Errorf("Parse: %v, want an error naming %s and saying %q", perr, demolib.Name, tc.want)
				}
				var fe *FormatError
				if !errors.As(perr, &fe) || (tc.class != nil && !errors.Is(perr, tc.class)) {
					t.Errorf("Parse: %v (%T), want a *FormatError of class %v", perr, perr, tc.class)
				}
			}
			loadFails(t, v, writeTemp(t, demolib.Name, x.data), tc.want, tc.class)
		})
	}
}

// TestResolve binds an import through Options.Resolve, and a weak one to 0.
func TestResolve(t *testing.T) {
	v := newVMM(t)
	x := newFixture(t)
	x.u16(x.sym(demolib.Scale)+6, uint16(elf.SHN_UNDEF))
	hook := x.sym(demolib.FiniHook)
	x.u16(hook+6, uint16(elf.SHN_UNDEF))
	x.data[hook+4] = byte(elf.STB_WEAK)<<4 | byte(elf.STT_OBJECT)
	path := writeTemp(t, demolib.Name, x.data)

	// The host's demo_scale: a Go variable, which does not move.
	hostScale := new(int64)
	*hostScale = 42
	var asked []string
	lib, err := Load(v, path, Options{
		// The destructor reads demo_fini_hook, now bound to 0.
		SkipInit: true,
		Resolve: func(name string) (uintptr, bool) {
			asked = append(asked, name)
			if name == demolib.Scale {
				return uintptr(unsafe.Pointer(hostScale)), true
			}
			return 0, false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if got, want := call(lookup(t, lib, demolib.Compute), 6, 7), demolib.ExpectedWith(6, 7, 42)-demolib.InitSeed; got != want {
		t.Errorf("demo_compute(6, 7) with the host's scale = %d, want %d", got, want)
	}
	runtime.KeepAlive(hostScale)
	want := map[string]Import{
		demolib.Scale:    {Name: demolib.Scale, BoundTo: uintptr(unsafe.Pointer(hostScale)), How: BoundResolver},
		demolib.FiniHook: {Name: demolib.FiniHook, How: BoundWeakZero},
		demolib.Helper:   {Name: demolib.Helper, BoundTo: lookup(t, lib, demolib.Helper), How: BoundSelf, From: demolib.Name},
	}
	for _, im := range lib.Imports() {
		if w, ok := want[im.Name]; !ok || w != im {
			t.Errorf("import %+v, want %+v", im, w)
		}
		delete(want, im.Name)
	}
	if len(want) != 0 {
		t.Errorf("missing imports %v", want)
	}
	if _, ok := lib.Lookup(demolib.Scale); ok {
		t.Error("Lookup found the undefined demo_scale")
	}
	if strings.Join(asked, ",") != "demo_fini_hook,demo_scale" && strings.Join(asked, ",") != "demo_scale,demo_fini_hook" {
		t.Errorf("Resolve asked for %q, want only the two undefined symbols", asked)
	}
}

// TestLoadSysVHashOnly drops DT_GNU_HASH: lookups fall back to DT_HASH.
func TestLoadSysVHashOnly(t *testing.T) {
	v := newVMM(t)
	x := newFixture(t)
	x.u64(x.dyn(elf.DT_GNU_HASH), uint64(elf.DT_DEBUG))
	path := writeTemp(t, demolib.Name, x.data)
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if lib.File().gnu != nil {
		t.Fatal("DT_GNU_HASH still parsed")
	}
	if got, want := call(lookup(t, lib, demolib.Compute), 6, 7), demolib.Expected(6, 7); got != want {
		t.Errorf("demo_compute(6, 7) = %d, want %d", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	v := newVMM(t)
	_, err := Load(v, filepath.Join(os.TempDir(), "privload-no-such-file.so"), Options{})
	if err == nil || !strings.Contains(err.Error(), "privload-no-such-file.so") {
		t.Fatalf("Load of a missing file: %v", err)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
}

// TestLoadSystemZlib loads the system's libz privately into vmcode: its
// libc imports bind to the host's libc (dlvsym, for its versioned
// references), and its crc32 agrees with Go's. The fuller check of libz is
// TestRealLibraries. It is skipped where libz is absent.
func TestLoadSystemZlib(t *testing.T) {
	const path = "/usr/lib/x86_64-linux-gnu/libz.so.1"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no system libz: %v", err)
	}
	v := newVMM(t)
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after load")
	if !v.InVMCode(lib.Base(), lib.Size()) {
		t.Error("libz is not inside vmcode")
	}
	checkProtections(t, v, lib)
	buf := []byte("reachvm loads libz privately into vmcode")
	got := uint32(call(lookup(t, lib, "crc32"), 0, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))))
	runtime.KeepAlive(buf)
	if want := crc32.ChecksumIEEE(buf); got != want {
		t.Errorf("libz crc32 = %#x, want %#x", got, want)
	}
	ver := call(lookup(t, lib, "zlibVersion"))
	if s := cString(uintptr(ver), 64); !strings.HasPrefix(s, "1.") {
		t.Errorf("zlibVersion() = %q", s)
	}
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	hows := map[string]int{}
	for _, im := range lib.Imports() {
		hows[im.How]++
		if im.How == BoundHost {
			if im.From != "libc.so.6" || im.Version == "" {
				t.Errorf("import %+v: want a versioned reference bound to libc.so.6", im)
			}
			if a, err := purego.Dlsym(libc, im.Name); err != nil || a != im.BoundTo {
				t.Errorf("import %+v: the host's dlsym gives %#x (%v)", im, a, err)
			}
		}
	}
	if hows[BoundHost] == 0 || hows[BoundSelf] == 0 {
		t.Errorf("imports bound by %v: want some from the host's libc and some from libz itself", hows)
	}
	deps := lib.Dependencies()
	if len(deps) != 1 || !deps[0].Host || deps[0].Name != "libc.so.6" {
		t.Errorf("dependencies %+v, want the host's libc.so.6", deps)
	}
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after close")
}

// TestLoadSystemZlibPrivateLibc loads libz with no system libraries:
// libc.so.6 is then a private dependency, found through ld.so.cache, and
// refused (it has a PT_INTERP, being also a program, and thread-local
// storage) with an error naming it and libz, before anything is mapped.
func TestLoadSystemZlibPrivateLibc(t *testing.T) {
	const path = "/usr/lib/x86_64-linux-gnu/libz.so.1"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no system libz: %v", err)
	}
	v := newVMM(t)
	free := v.FreeVMCode()
	_, err := Load(v, path, Options{System: []string{}})
	if err == nil || !strings.Contains(err.Error(), "libc.so.6 (needed by "+path+")") || !strings.Contains(err.Error(), ": has PT_") || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Load: %v, want an ErrUnsupported naming libc.so.6, libz and the program header refused", err)
	}
	t.Log(err)
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x, %#x before: slot leaked", got, free)
	}
	vmmtest.SyncCheck(t, v, "after failed load")
	real, _ := filepath.EvalSymlinks(path)
	checkUnmapped(t, v, real)
}

// cString reads a NUL-terminated string at addr, at most max bytes, one
// byte at a time (so as never to read past its terminator).
func cString(addr uintptr, max int) string {
	if addr == 0 {
		return ""
	}
	var b []byte
	for i := 0; i < max; i++ {
		c := rawmem.Bytes(addr+uintptr(i), 1)[0]
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// TestLoadSystemLibmRefused tries the system libm, which needs what the
// skeleton does not do yet (ifunc relocations, initial-exec TLS): the load
// must fail naming the relocation type, and leave nothing mapped.
func TestLoadSystemLibmRefused(t *testing.T) {
	const path = "/usr/lib/x86_64-linux-gnu/libm.so.6"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no system libm: %v", err)
	}
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Skipf("cannot dlopen the host libc: %v", err)
	}
	v := newVMM(t)
	free := v.FreeVMCode()
	lib, err := Load(v, path, Options{Resolve: func(name string) (uintptr, bool) {
		a, err := purego.Dlsym(libc, name)
		return a, err == nil && a != 0
	}})
	if err == nil {
		// A future privload may load it: then it must work.
		t.Logf("libm loaded: %d imports", len(lib.Imports()))
		if err := lib.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log(err)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "R_X86_64_") || !strings.Contains(err.Error(), path) {
			t.Errorf("Load: %v, want an ErrUnsupported naming the relocation type and the file", err)
		}
	}
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x, %#x before: slot leaked", got, free)
	}
	vmmtest.SyncCheck(t, v, "after the attempt")
	real, _ := filepath.EvalSymlinks(path)
	checkUnmapped(t, v, real)
}
