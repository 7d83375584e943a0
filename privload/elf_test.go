package privload

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/mem"
)

// systemLibs returns up to n shared objects of the host of at most maxSize
// bytes, in name order, libz and libc first when present: real-world input
// for the parser, the lookup cross-checks and the fuzz corpus.
func systemLibs(t testing.TB, n int, maxSize int64) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Size() > maxSize {
			return
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			return
		}
		seen[real] = true
		out = append(out, p)
	}
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6"} {
		add(p)
	}
	all, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/*.so.*")
	sort.Strings(all)
	for _, p := range all {
		if len(out) >= n {
			break
		}
		add(p)
	}
	return out
}

func TestParseDemo(t *testing.T) {
	f, err := Parse(demolib.Name, demolib.SO)
	if err != nil {
		t.Fatal(err)
	}
	if f.Soname != demolib.Name {
		t.Errorf("soname %q, want %q", f.Soname, demolib.Name)
	}
	if len(f.Needed) != 0 {
		t.Errorf("needed %q, want none", f.Needed)
	}
	if f.Relro.Size == 0 {
		t.Error("no PT_GNU_RELRO")
	}
	if f.InitArray.Size != 8 || f.FiniArray.Size != 8 {
		t.Errorf("init array %+v, fini array %+v: want one entry each", f.InitArray, f.FiniArray)
	}
	if f.gnu == nil || f.sysv == nil {
		t.Errorf("hash tables: gnu %v sysv %v, want both (--hash-style=both)", f.gnu != nil, f.sysv != nil)
	}
	kinds := map[elf.R_X86_64]int{}
	for _, r := range append(append([]Reloc(nil), f.Rela...), f.PLTRela...) {
		kinds[r.Type]++
	}
	for _, k := range []elf.R_X86_64{elf.R_X86_64_RELATIVE, elf.R_X86_64_GLOB_DAT, elf.R_X86_64_JMP_SLOT} {
		if kinds[k] == 0 {
			t.Errorf("no %v relocation; have %v", k, kinds)
		}
	}
	for _, name := range []string{demolib.Compute, demolib.Helper, demolib.Calls, demolib.Scale, demolib.FiniHook} {
		if _, s, ok := f.Lookup(name); !ok || !s.Defined() {
			t.Errorf("Lookup(%q) = %+v, %v", name, s, ok)
		}
	}
	for _, name := range []string{"", "demo", "demo_compute2", "table", "scratch", "demo_init"} {
		if _, s, ok := f.Lookup(name); ok {
			t.Errorf("Lookup(%q) found %+v", name, s)
		}
	}
}

// TestLookupMatchesDebugElf checks the GNU and SysV lookups against the
// section-header view of debug/elf on the fixture and on system libraries.
func TestLookupMatchesDebugElf(t *testing.T) {
	type input struct {
		name string
		data []byte
	}
	inputs := []input{{demolib.Name, demolib.SO}}
	for _, p := range systemLibs(t, 40, 4<<20) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, input{p, b})
	}
	checked := 0
	for _, in := range inputs {
		f, err := Parse(in.name, in.data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s: %v: want an ErrUnsupported *FormatError or success", in.name, err)
			}
			t.Logf("%s: %v", in.name, err)
			continue
		}
		ef, err := elf.NewFile(bytes.NewReader(in.data))
		if err != nil {
			t.Fatalf("%s: debug/elf: %v", in.name, err)
		}
		syms, err := ef.DynamicSymbols()
		if err != nil {
			t.Fatalf("%s: debug/elf dynamic symbols: %v", in.name, err)
		}
		if len(syms) != f.NumSymbols-1 {
			t.Errorf("%s: %d symbols, debug/elf has %d", in.name, f.NumSymbols-1, len(syms))
		}
		want := map[string]uint64{}
		for _, s := range syms {
			ps := Symbol{Bind: elf.ST_BIND(s.Info), Type: elf.ST_TYPE(s.Info), Vis: elf.ST_VISIBILITY(s.Other), Section: s.Section, Value: s.Value}
			ps.HiddenVersion = s.HasVersion && s.VersionIndex.IsHidden()
			if exported(ps) {
				want[s.Name] = s.Value
			}
		}
		for name, v := range want {
			for _, lk := range []struct {
				kind string
				fn   func(string) (int, Symbol, bool)
				have bool
			}{{"gnu", f.lookupGNU, f.gnu != nil}, {"sysv", f.lookupSysV, f.sysv != nil}} {
				if !lk.have {
					continue
				}
				_, s, ok := lk.fn(name)
				if !ok || s.Value != v || s.Name != name {
					t.Errorf("%s: %s lookup %q = %#x %v, want %#x", in.name, lk.kind, name, s.Value, ok, v)
				}
			}
			if _, _, ok := f.Lookup(name + "\x01"); ok {
				t.Errorf("%s: found %q", in.name, name+"\x01")
			}
		}
		checked++
	}
	if checked < 2 {
		t.Logf("only %d files checked", checked)
	}
}

func TestHashFunctions(t *testing.T) {
	// Values from the ELF gABI and the GNU hash write-ups.
	if h := sysvHashOf(""); h != 0 {
		t.Errorf("sysv(\"\") = %#x", h)
	}
	if h := gnuHashOf(""); h != 5381 {
		t.Errorf("gnu(\"\") = %d", h)
	}
	if h := gnuHashOf("printf"); h != 0x156b2bb8 {
		t.Errorf("gnu(printf) = %#x, want 0x156b2bb8", h)
	}
	if h := sysvHashOf("printf"); h != 0x077905a6 {
		t.Errorf("sysv(printf) = %#x, want 0x077905a6", h)
	}
}

func TestRelrDecode(t *testing.T) {
	p := &parser{f: &File{Name: "relr.so", Loads: []Segment{
		{Vaddr: 0, Memsz: 0x1000, Prot: mem.ProtRX},
		{Vaddr: 0x1000, Memsz: 0x10000, Prot: mem.ProtRW},
	}}}
	enc := func(ws ...uint64) []byte {
		b := make([]byte, 8*len(ws))
		for i, w := range ws {
			binary.LittleEndian.PutUint64(b[8*i:], w)
		}
		return b
	}
	got, err := p.relr(enc(0x1000, 1|1<<1|1<<3, 1|1<<1, 0x3000, 1|1<<63))
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{0x1000, 0x1008, 0x1018, 0x1200, 0x3000, 0x3008 + 62*8}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %#x, want %#x", got, want)
	}
	bitmaps := make([]uint64, 0x10000/(63*8)+1)
	for i := range bitmaps {
		bitmaps[i] = 1 | 1<<63
	}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{enc(1 | 1<<1), "no address entry before it"},
		{enc(0x1004), "not aligned"},
		{enc(0x800), "not in a writable PT_LOAD"},
		{enc(append([]uint64{0x1000}, bitmaps...)...), "not in a writable PT_LOAD"}, // runs off the end
		{enc(0x1000)[:7], "not a multiple of 8"},
	} {
		if _, err := p.relr(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "relr.so") {
			t.Errorf("relr(%x) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}
