package privload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

// The PE tests that need no Windows: the parser on the mingw-built test
// DLLs and on Wine's own DLLs, malformed variants of the test DLLs, the
// portable half of the loader (layout, relocation, import binding,
// protections) on a Go buffer, and the fuzzer. Helpers are prefixed "pe"
// so as not to collide with the ELF tests' helpers in this package.

// peFixtures are the test DLLs testdata/pe/build.sh builds.
var peFixtures = []string{"noimports.dll", "crt.dll", "fwd.dll"}

// peFixturePath returns the path of a built test DLL.
func peFixturePath(name string) string { return filepath.Join("testdata", "pe", "build", name) }

// peReadFixture returns the bytes of a built test DLL.
func peReadFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(peFixturePath(name))
	if err != nil {
		t.Fatalf("%v (run go generate ./privload to build the test DLLs)", err)
	}
	return b
}

// peParseFixture parses a built test DLL.
func peParseFixture(t testing.TB, name string) *PEFile {
	t.Helper()
	f, err := ParsePE(name, peReadFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// peExportNames returns the names of f's named exports, sorted.
func peExportNames(f *PEFile) []string {
	var out []string
	for _, e := range f.Exports {
		if e.Name != "" {
			out = append(out, e.Name)
		}
	}
	sort.Strings(out)
	return out
}

// peSummary describes what the tests depend on in a test DLL, so that two
// builds by different toolchains can be compared.
func peSummary(f *PEFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dll=%v name=%q base=%#x entry=%v tls=%v pdata=%v relocs=%v\n", f.IsDLL(), f.DLLName, f.ImageBase, f.Entry != 0, f.TLS != nil, f.Pdata.Size > 0, len(f.Relocs) > 0)
	for _, e := range f.Exports {
		fmt.Fprintf(&b, "export %q ord=%d fwd=%q\n", e.Name, e.Ordinal, e.Forwarder)
	}
	for _, i := range f.Imports {
		fmt.Fprintf(&b, "import %s\n", strings.ToLower(i.String()))
	}
	for _, s := range f.Sections {
		fmt.Fprintf(&b, "section %s %v\n", s.Name, s.Prot())
	}
	return b.String()
}

func TestParsePEFixtures(t *testing.T) {
	for _, name := range peFixtures {
		t.Run(name, func(t *testing.T) {
			f := peParseFixture(t, name)
			if !f.IsDLL() || f.Entry == 0 || f.TLS != nil {
				t.Errorf("DLL %v, entry %#x, TLS %v: want a DLL with DllMain and no TLS", f.IsDLL(), f.Entry, f.TLS)
			}
			if err := f.Loadable(); err != nil {
				t.Errorf("Loadable: %v", err)
			}
			if f.DLLName != name {
				t.Errorf("export directory names the DLL %q, want %q", f.DLLName, name)
			}
			if f.Pdata.Size == 0 {
				t.Errorf("no exception directory (mingw emits .pdata)")
			}
			for _, s := range f.Sections {
				if p := s.Prot(); p&mem.ProtWrite != 0 && p&mem.ProtExec != 0 {
					t.Errorf("section %s is %v", s.Name, p)
				}
			}
		})
	}

	f := peParseFixture(t, "noimports.dll")
	if len(f.Imports) != 0 {
		t.Errorf("noimports.dll imports %v", f.Imports)
	}
	if want := []string{"add", "apply", "attach_count", "attach_hinst", "attach_reserved", "detach_count", "set_detach_sink", "where"}; fmt.Sprint(peExportNames(f)) != fmt.Sprint(want) {
		t.Errorf("noimports.dll exports %v, want %v", peExportNames(f), want)
	}
	if len(f.Relocs) != 3 {
		t.Errorf("noimports.dll has %d DIR64 relocations, want 3 (the ops table)", len(f.Relocs))
	}

	f = peParseFixture(t, "crt.dll")
	if f.ImageBase != 0x7ff512340000 {
		t.Errorf("crt.dll ImageBase %#x, want the non-default 0x7ff512340000", f.ImageBase)
	}
	if len(f.Relocs) < 7 {
		t.Errorf("crt.dll has %d DIR64 relocations, want at least 7 (fruit and funcs tables)", len(f.Relocs))
	}
	var imps []string
	for _, i := range f.Imports {
		imps = append(imps, strings.ToLower(i.String()))
	}
	sort.Strings(imps)
	if want := []string{"kernel32.dll!getenvironmentvariablea", "msvcrt.dll!_snprintf", "msvcrt.dll!qsort", "msvcrt.dll!strcmp", "msvcrt.dll!strlen", "ws2_32.dll!#8"}; fmt.Sprint(imps) != fmt.Sprint(want) {
		t.Errorf("crt.dll imports %v, want %v", imps, want)
	}
	if got := f.ImportedDLLs(); len(got) != 3 {
		t.Errorf("crt.dll imports from %v, want 3 DLLs", got)
	}

	f = peParseFixture(t, "fwd.dll")
	for name, want := range map[string]string{"fwd_strlen": "msvcrt.strlen", "fwd_htonl": "ws2_32.#8", "fwd_local": "fwd.local_sum", "local_sum": ""} {
		e, ok := f.Export(name)
		if !ok || e.Forwarder != want {
			t.Errorf("fwd.dll export %q: %+v, %v; want forwarder %q", name, e, ok, want)
		}
	}
	if e, ok := f.ExportByOrdinal(7); !ok || e.Name != "" || e.RVA == 0 {
		t.Errorf("fwd.dll ordinal 7: %+v, %v; want an unnamed export", e, ok)
	}
	if _, ok := f.Export("by_ordinal"); ok {
		t.Errorf("fwd.dll exports by_ordinal by name; fwd.def makes it NONAME")
	}
	dll, fn, ord, byOrd := splitForwarder("ws2_32.#8")
	if dll != "ws2_32" || fn != "" || ord != 8 || !byOrd {
		t.Errorf("splitForwarder(ws2_32.#8) = %q %q %d %v", dll, fn, ord, byOrd)
	}
}

// TestPEFixturesUpToDate rebuilds the test DLLs with mingw-w64 and checks
// that the committed ones match: byte for byte with the same toolchain (the
// build is reproducible), else in everything the tests depend on.
func TestPEFixturesUpToDate(t *testing.T) {
	if _, err := exec.LookPath("x86_64-w64-mingw32-gcc"); err != nil {
		t.Skip("x86_64-w64-mingw32-gcc not installed")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	dir, err := os.MkdirTemp("", "privload-pe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command("bash", filepath.Join("testdata", "pe", "build.sh"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	for _, name := range peFixtures {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed := peReadFixture(t, name)
		if bytes.Equal(fresh, committed) {
			continue
		}
		ff, err := ParsePE(name, fresh)
		if err != nil {
			t.Fatalf("rebuilt %s: %v", name, err)
		}
		cf := peParseFixture(t, name)
		if a, b := peSummary(cf), peSummary(ff); a != b {
			t.Errorf("%s: the committed DLL differs from a fresh build; run go generate ./privload\ncommitted:\n%s\nrebuilt:\n%s", name, a, b)
		} else {
			t.Logf("%s: rebuilt bytes differ (another toolchain?) but exports, imports, relocations and sections match", name)
		}
	}
}

// peWineDir holds Wine's own PE DLLs and programs.
const peWineDir = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows"

// TestParsePEWineDLLs parses every file of Wine's PE directory: each must
// parse, or be refused with a *FormatError naming it; never a panic. The
// tally (parsed, loadable, refused by reason) is logged.
func TestParsePEWineDLLs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sweeps the Linux host's Wine installation")
	}
	ents, err := os.ReadDir(peWineDir)
	if err != nil {
		t.Skipf("no Wine PE directory: %v", err)
	}
	type result struct {
		name      string
		err       error
		loadErr   error
		exports   int
		imports   int
		relocs    int
		panicked  any
		size      int
		sections  int
		forwarder int
	}
	results := make([]result, len(ents))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < max(2, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := &results[i]
				r.name = ents[i].Name()
				func() {
					defer func() { r.panicked = recover() }()
					b, err := os.ReadFile(filepath.Join(peWineDir, r.name))
					if err != nil {
						r.err = err
						return
					}
					r.size = len(b)
					f, err := ParsePE(r.name, b)
					if err != nil {
						r.err = err
						return
					}
					r.exports, r.imports, r.relocs, r.sections = len(f.Exports), len(f.Imports), len(f.Relocs), len(f.Sections)
					for _, e := range f.Exports {
						if e.Forwarder != "" {
							r.forwarder++
						}
					}
					r.loadErr = f.Loadable()
					if r.loadErr == nil {
						if _, err := f.protections(4096); err != nil {
							r.loadErr = err
						}
					}
				}()
			}
		}()
	}
	for i := range ents {
		if ents[i].Type().IsRegular() {
			next <- i
		}
	}
	close(next)
	wg.Wait()

	var files, parsed, loadable, exports, imports, relocs, fwds int
	refused := map[string][]string{}
	notLoadable := map[string][]string{}
	for _, r := range results {
		if r.name == "" {
			continue
		}
		files++
		if r.panicked != nil {
			t.Errorf("%s: ParsePE panicked: %v", r.name, r.panicked)
			continue
		}
		if r.err != nil {
			var fe *FormatError
			if !errors.As(r.err, &fe) || fe.File != r.name || fe.Reason == "" {
				t.Errorf("%s: error %v (%T) is not a *FormatError naming the file", r.name, r.err, r.err)
				continue
			}
			refused[fe.Reason] = append(refused[fe.Reason], r.name)
			continue
		}
		parsed++
		exports += r.exports
		imports += r.imports
		relocs += r.relocs
		fwds += r.forwarder
		if r.loadErr != nil {
			var fe *FormatError
			if !errors.As(r.loadErr, &fe) || fe.File != r.name {
				t.Errorf("%s: Loadable error %v is not a *FormatError naming the file", r.name, r.loadErr)
				continue
			}
			notLoadable[fe.Reason] = append(notLoadable[fe.Reason], r.name)
			continue
		}
		loadable++
	}
	t.Logf("%s: %d files, %d parsed (%d exports, %d of them forwarders; %d imports; %d DIR64 relocations), %d refused by the parser; %d loadable, %d parsed but not loadable",
		peWineDir, files, parsed, exports, fwds, imports, relocs, files-parsed, loadable, parsed-loadable)
	for _, m := range []struct {
		what string
		by   map[string][]string
	}{{"refused by ParsePE", refused}, {"not loadable", notLoadable}} {
		for reason, names := range m.by {
			shown := names
			if len(shown) > 5 {
				shown = append(shown[:5:5], "...")
			}
			t.Logf("  %s: %d: %s: %s", m.what, len(names), reason, strings.Join(shown, " "))
		}
	}
	if files < 100 {
		t.Errorf("only %d files in %s", files, peWineDir)
	}
	if parsed < files*9/10 {
		t.Errorf("only %d of %d Wine PE files parse", parsed, files)
	}
}

// peImage lays f out in a Go buffer at base, as the Windows loader does in
// its slot, binding every import to a fake address derived from its IAT
// slot.
func peImage(t testing.TB, f *PEFile, base uint64) []byte {
	t.Helper()
	img := make([]byte, f.peImageSize(4096))
	if err := f.layout(img); err != nil {
		t.Fatal(err)
	}
	if err := f.relocate(img, base); err != nil {
		t.Fatal(err)
	}
	if err := f.bindImports(img, func(imp PEImport) (uint64, error) { return 0xfeed0000_0000 + uint64(imp.IAT), nil }); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPELayout(t *testing.T) {
	// Below and above every fixture's preferred base: the relocation
	// delta is negative, then positive.
	for _, base := range []uint64{0x2_3456_0000, 0x7ffe_0000_0000} {
		for _, name := range peFixtures {
			t.Run(fmt.Sprintf("%s@%#x", name, base), func(t *testing.T) { peCheckLayout(t, name, base) })
		}
	}
	// crt.dll's fruit table holds relocated pointers to its strings.
	const base = 0x2_3456_0000
	f := peParseFixture(t, "crt.dll")
	img := peImage(t, f, base)
	e, _ := f.Export("fruit")
	for i, want := range []string{"pear", "apple", "fig", "banana", "cherry"} {
		p := binary.LittleEndian.Uint64(img[e.RVA+uint32(8*i):]) - base
		if p >= uint64(len(img)) || !bytes.HasPrefix(img[p:], append([]byte(want), 0)) {
			t.Errorf("fruit[%d] points at image offset %#x, not at %q", i, p, want)
		}
	}
}

// peCheckLayout builds a test DLL at base in a Go buffer and checks every
// byte of it against the file, the relocations and the import bindings,
// and the protections against the sections.
func peCheckLayout(t *testing.T, name string, base uint64) {
	t.Helper()
	data := peReadFixture(t, name)
	f := peParseFixture(t, name)
	img := peImage(t, f, base)
	if !bytes.Equal(img[:f.SizeOfHeaders], data[:f.SizeOfHeaders]) {
		t.Errorf("headers not copied")
	}
	for _, s := range f.Sections {
		got := img[s.VirtualAddress : s.VirtualAddress+s.MemSize]
		want := make([]byte, s.MemSize)
		copy(want, data[s.RawOffset:s.RawOffset+s.RawSize])
		// Undo the relocations and bindings for the
		// comparison.
		for _, r := range f.Relocs {
			if r >= s.VirtualAddress && r < s.VirtualAddress+s.MemSize {
				o := r - s.VirtualAddress
				v := binary.LittleEndian.Uint64(want[o:])
				if g := binary.LittleEndian.Uint64(got[o:]); g != v-f.ImageBase+base {
					t.Errorf("relocation at %#x: %#x, want %#x", r, g, v-f.ImageBase+base)
				}
				copy(want[o:o+8], got[o:o+8])
			}
		}
		for _, imp := range f.Imports {
			if imp.IAT >= s.VirtualAddress && imp.IAT < s.VirtualAddress+s.MemSize {
				o := imp.IAT - s.VirtualAddress
				if g := binary.LittleEndian.Uint64(got[o:]); g != 0xfeed0000_0000+uint64(imp.IAT) {
					t.Errorf("import %s slot holds %#x", imp, g)
				}
				copy(want[o:o+8], got[o:o+8])
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("section %s differs from its file bytes (zero-extended)", s.Name)
		}
	}
	ranges, err := f.protections(4096)
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(0)
	for _, r := range ranges {
		if r.Off != next || r.Size == 0 || r.Size%4096 != 0 {
			t.Errorf("range %+v does not follow %#x or is not whole pages", r, next)
		}
		next = r.Off + r.Size
		if r.Prot&mem.ProtWrite != 0 && r.Prot&mem.ProtExec != 0 {
			t.Errorf("range %+v is writable and executable", r)
		}
	}
	if next != f.peImageSize(4096) {
		t.Errorf("ranges end at %#x, image at %#x", next, f.peImageSize(4096))
	}
	if ranges[0].What != "headers" || ranges[0].Prot != mem.ProtRead {
		t.Errorf("first range %+v, want read-only headers", ranges[0])
	}
	for _, r := range ranges {
		if r.What == `section ".text"` && r.Prot != mem.ProtRX {
			t.Errorf(".text is %v", r.Prot)
		}
	}
}

// peMutant is a corruption of a test DLL and what ParsePE or Loadable
// must say about it.
type peMutant struct {
	name   string
	fix    string
	edit   func(t *testing.T, b []byte)
	class  error
	reason string
	// loadable: the parser accepts the file and Loadable refuses it.
	loadable bool
}

// Offsets into a PE file's headers.
func peLfanew(b []byte) int { return int(binary.LittleEndian.Uint32(b[0x3c:])) }
func peOptOff(b []byte) int { return peLfanew(b) + 4 + peCOFFHeaderSize }
func peDirOff(b []byte, i int) int {
	return peOptOff(b) + peOptFixedSize + 8*i
}
func peSectionOff(t *testing.T, b []byte, name string) int {
	t.Helper()
	lf := peLfanew(b)
	n := int(binary.LittleEndian.Uint16(b[lf+6:]))
	off := peOptOff(b) + int(binary.LittleEndian.Uint16(b[lf+4+16:]))
	for i := 0; i < n; i++ {
		h := off + i*peSectionHeaderSize
		if string(bytes.TrimRight(b[h:h+8], "\x00")) == name {
			return h
		}
	}
	t.Fatalf("no section %q", name)
	return 0
}

// peSetDir points data directory i at [rva, +size).
func peSetDir(b []byte, i int, rva, size uint32) {
	binary.LittleEndian.PutUint32(b[peDirOff(b, i):], rva)
	binary.LittleEndian.PutUint32(b[peDirOff(b, i)+4:], size)
}

func peDir(b []byte, i int) (rva, size uint32) {
	return binary.LittleEndian.Uint32(b[peDirOff(b, i):]), binary.LittleEndian.Uint32(b[peDirOff(b, i)+4:])
}

// peReplace replaces the only occurrence of old in b by new (same length).
func peReplace(t *testing.T, b []byte, old, new string) {
	t.Helper()
	if len(old) != len(new) || bytes.Count(b, []byte(old)) != 1 {
		t.Fatalf("%q occurs %d times (want once) or differs in length from %q", old, bytes.Count(b, []byte(old)), new)
	}
	copy(b[bytes.Index(b, []byte(old)):], new)
}

// peMutants are malformed or unsupported variants of the test DLLs, shared
// with the Windows tests (which check Load refuses them the same way).
var peMutants = []peMutant{
	{name: "no MZ", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { b[0] = 'X' }, class: ErrMalformed, reason: "no MZ DOS header"},
	{name: "e_lfanew past the end", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint32(b[0x3c:], 0xfffffff0) }, class: ErrMalformed, reason: "e_lfanew"},
	{name: "no PE signature", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { b[peLfanew(b)+1] = 'X' }, class: ErrMalformed, reason: "no PE signature"},
	{name: "i386", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint16(b[peLfanew(b)+4:], 0x14c) }, class: ErrUnsupported, reason: "not x86-64"},
	{name: "PE32", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint16(b[peOptOff(b):], 0x10b) }, class: ErrUnsupported, reason: "PE32 (32-bit)"},
	{name: "object file", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { b[peLfanew(b)+4+18] &^= peFileExecutable }, class: ErrMalformed, reason: "not an executable image"},
	{name: "SizeOfImage over 2 GiB", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint32(b[peOptOff(b)+56:], 0x80001000) }, class: ErrUnsupported, reason: "larger than 2 GiB"},
	{name: "section past SizeOfImage", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint32(b[peOptOff(b)+56:], 0x3000) }, class: ErrMalformed, reason: "extends past SizeOfImage"},
	{name: "section bytes past EOF", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		binary.LittleEndian.PutUint32(b[peSectionOff(t, b, ".text")+20:], uint32(len(b)-16))
	}, class: ErrMalformed, reason: "outside the"},
	{name: "sections overlap", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		binary.LittleEndian.PutUint32(b[peSectionOff(t, b, ".rdata")+12:], 0x1000)
	}, class: ErrMalformed, reason: "overlaps"},
	{name: "directory past the image", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { peSetDir(b, PEDirDebug, 0x8000, 0x10000) }, class: ErrMalformed, reason: "debug directory"},
	{name: "directory size overflows", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { peSetDir(b, PEDirExport, 0x6000, 0xffffffff) }, class: ErrMalformed, reason: "export directory"},
	{name: "export table outside sections", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		rva, _ := peDir(b, PEDirExport)
		sec := peSectionOff(t, b, ".edata")
		raw := binary.LittleEndian.Uint32(b[sec+20:]) + (rva - binary.LittleEndian.Uint32(b[sec+12:]))
		binary.LittleEndian.PutUint32(b[raw+20:], 0x1000) // NumberOfFunctions
	}, class: ErrMalformed, reason: "export address table"},
	{name: "unknown relocation type", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		rva, _ := peDir(b, PEDirBaseReloc)
		sec := peSectionOff(t, b, ".reloc")
		raw := binary.LittleEndian.Uint32(b[sec+20:]) + (rva - binary.LittleEndian.Uint32(b[sec+12:]))
		e := binary.LittleEndian.Uint16(b[raw+8:])
		binary.LittleEndian.PutUint16(b[raw+8:], 3<<12|e&0xfff)
	}, class: ErrUnsupported, reason: "IMAGE_REL_BASED_HIGHLOW"},
	{name: "relocation block too long", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		rva, _ := peDir(b, PEDirBaseReloc)
		sec := peSectionOff(t, b, ".reloc")
		raw := binary.LittleEndian.Uint32(b[sec+20:]) + (rva - binary.LittleEndian.Uint32(b[sec+12:]))
		binary.LittleEndian.PutUint32(b[raw+4:], 0x400)
	}, class: ErrMalformed, reason: "base relocation block"},
	{name: "import name outside the image", fix: "crt.dll", edit: func(t *testing.T, b []byte) {
		rva, _ := peDir(b, PEDirImport)
		sec := peSectionOff(t, b, ".idata")
		raw := binary.LittleEndian.Uint32(b[sec+20:]) + (rva - binary.LittleEndian.Uint32(b[sec+12:]))
		binary.LittleEndian.PutUint32(b[raw+12:], 0x7fff0000)
	}, class: ErrMalformed, reason: "DLL name"},
	{name: "unsorted export names", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { peReplace(t, b, "apply\x00", "zpply\x00") }, class: ErrMalformed, reason: "ascending"},
	{name: "bad forwarder", fix: "fwd.dll", edit: func(t *testing.T, b []byte) { peReplace(t, b, "ws2_32.#8\x00", "ws2_32.#x\x00") }, class: ErrMalformed, reason: "16-bit number"},
	{name: "entry point outside code", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { binary.LittleEndian.PutUint32(b[peOptOff(b)+16:], 0x2000) }, class: ErrMalformed, reason: "entry point"},
	{name: "TLS directory", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		// Point it at 40 zero bytes: the end of the headers.
		peSetDir(b, PEDirTLS, binary.LittleEndian.Uint32(b[peOptOff(b)+60:])-0x40, peTLSDirSize)
	}, class: ErrUnsupported, reason: "TLS", loadable: true},
	{name: "writable code", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		c := peSectionOff(t, b, ".text") + 36
		binary.LittleEndian.PutUint32(b[c:], binary.LittleEndian.Uint32(b[c:])|peScnMemWrite)
	}, class: ErrUnsupported, reason: "writable and executable", loadable: true},
	{name: "entry point not executable", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		c := peSectionOff(t, b, ".text") + 36
		binary.LittleEndian.PutUint32(b[c:], binary.LittleEndian.Uint32(b[c:])&^peScnMemExecute)
	}, class: ErrUnsupported, reason: "not executable", loadable: true},
	{name: "not a DLL", fix: "noimports.dll", edit: func(t *testing.T, b []byte) {
		o := peLfanew(b) + 4 + 18
		binary.LittleEndian.PutUint16(b[o:], binary.LittleEndian.Uint16(b[o:])&^peFileDLL)
	}, class: ErrUnsupported, reason: "not a DLL", loadable: true},
	{name: "relocations stripped", fix: "noimports.dll", edit: func(t *testing.T, b []byte) { b[peLfanew(b)+4+18] |= peFileRelocsStripped }, class: ErrUnsupported, reason: "relocations stripped", loadable: true},
}

// peMutate returns a corrupted copy of the mutant's test DLL.
func peMutate(t *testing.T, m peMutant) []byte {
	t.Helper()
	b := bytes.Clone(peReadFixture(t, m.fix))
	m.edit(t, b)
	return b
}

// peCheckRefusal checks that err is a *FormatError naming file, of class
// m.class, whose reason mentions m.reason.
func peCheckRefusal(t *testing.T, m peMutant, file string, err error) {
	t.Helper()
	var fe *FormatError
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want refused with %q", m.name, m.reason)
	case !errors.As(err, &fe) || fe.File != file:
		t.Errorf("%s: error %v (%T) is not a *FormatError naming %s", m.name, err, err, file)
	case !errors.Is(err, m.class) || !strings.Contains(fe.Reason, m.reason):
		t.Errorf("%s: error %v, want class %v mentioning %q", m.name, err, m.class, m.reason)
	}
}

func TestParsePEMalformed(t *testing.T) {
	for _, m := range peMutants {
		t.Run(m.name, func(t *testing.T) {
			f, err := ParsePE(m.fix, peMutate(t, m))
			if m.loadable {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				err = f.Loadable()
			}
			peCheckRefusal(t, m, m.fix, err)
		})
	}
}

// TestParsePETruncated parses every prefix of each test DLL: none may
// panic; each is refused or, if it holds the whole image, accepted.
func TestParsePETruncated(t *testing.T) {
	for _, name := range peFixtures {
		data := peReadFixture(t, name)
		for n := 0; n < len(data); n++ {
			if _, err := ParsePE(name, data[:n]); err == nil {
				// A prefix may still hold every byte the image
				// uses (trailing file alignment padding).
				continue
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s[:%d]: %v, want ErrMalformed", name, n, err)
			}
		}
	}
	if _, err := ParsePE("elf", []byte("\x7fELF\x02\x01\x01")); err == nil || !strings.Contains(err.Error(), "ELF") {
		t.Errorf("ELF file: %v", err)
	}
}

// FuzzParsePE feeds arbitrary bytes to the PE parser: it must never panic,
// must fail only with a *FormatError naming the file, and whatever it
// accepts must satisfy what the loader relies on; an image the loader
// would take is built in a Go buffer (layout, relocation, imports) as the
// Windows loader builds it in its slot.
func FuzzParsePE(f *testing.F) {
	for _, name := range peFixtures {
		b := peReadFixture(f, name)
		f.Add(b)
		f.Add(b[:0x400])
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.dll"
		file, err := ParsePE(name, data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != name || (fe.Class != ErrMalformed && fe.Class != ErrUnsupported) {
				t.Fatalf("error %v (%T) is not a *FormatError for %s", err, err, name)
			}
			return
		}
		peCheckInvariants(t, file)
	})
}

// peCheckInvariants verifies what the loader takes for granted of a parsed
// PE file, and builds it if it is loadable and small.
func peCheckInvariants(t *testing.T, f *PEFile) {
	t.Helper()
	size := uint64(f.SizeOfImage)
	prev := uint64(0)
	for _, s := range f.Sections {
		va := uint64(s.VirtualAddress)
		if va < prev || va+uint64(s.MemSize) > size || s.RawSize > s.MemSize || uint64(s.RawOffset)+uint64(s.RawSize) > uint64(len(f.data)) {
			t.Fatalf("section %+v: out of order or outside the image (%#x) or file (%#x)", s, size, len(f.data))
		}
		prev = va + uint64(s.MemSize)
	}
	inSection := func(rva, n uint64) bool {
		for _, s := range f.Sections {
			if rva >= uint64(s.VirtualAddress) && rva+n <= uint64(s.VirtualAddress)+uint64(s.MemSize) {
				return true
			}
		}
		return false
	}
	for _, r := range f.Relocs {
		if !inSection(uint64(r), 8) {
			t.Fatalf("relocation at %#x is not inside a section", r)
		}
	}
	for _, i := range f.Imports {
		if !inSection(uint64(i.IAT), 8) || (!i.ByOrdinal && i.Name == "") || i.DLL == "" {
			t.Fatalf("import %+v: slot outside sections or no name", i)
		}
	}
	for _, e := range f.Exports {
		if (e.Forwarder == "") == (e.RVA == 0) || e.Forwarder == "" && !inSection(uint64(e.RVA), 1) {
			t.Fatalf("export %+v: neither a forwarder nor in a section", e)
		}
		if e.Forwarder != "" {
			splitForwarder(e.Forwarder)
		}
		if e.Name != "" {
			if g, ok := f.Export(e.Name); !ok || g.Ordinal != e.Ordinal {
				t.Fatalf("export %q not found by name", e.Name)
			}
		}
		if g, ok := f.ExportByOrdinal(e.Ordinal); !ok || g != e {
			t.Fatalf("export ordinal %d not found", e.Ordinal)
		}
	}
	if f.Entry != 0 && !inSection(uint64(f.Entry), 1) {
		t.Fatalf("entry %#x not inside a section", f.Entry)
	}
	if f.Loadable() != nil {
		return
	}
	ranges, err := f.protections(4096)
	if err != nil {
		t.Fatalf("loadable but protections fail: %v", err)
	}
	if last := ranges[len(ranges)-1]; last.Off+last.Size != f.peImageSize(4096) {
		t.Fatalf("protections end at %#x, image at %#x", last.Off+last.Size, f.peImageSize(4096))
	}
	if size > 4<<20 {
		return
	}
	img := make([]byte, f.peImageSize(4096))
	if err := f.layout(img); err != nil {
		t.Fatal(err)
	}
	if err := f.relocate(img, 0x1_0000_0000); err != nil {
		t.Fatal(err)
	}
	if err := f.bindImports(img, func(PEImport) (uint64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
}
