package elfobj

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sample is an object as the jit writes one: code that lives elsewhere
// (NOBITS .text at its address), named by symbols, with a section of
// bytes beside it.
func sample(t *testing.T) ([]Section, []Symbol, []byte) {
	t.Helper()
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	secs := []Section{
		{Name: ".text", Type: elf.SHT_NOBITS, Flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, Addr: 0x7f0000001000, Size: 0x200, Align: 16},
		{Name: ".debug_frame", Type: elf.SHT_PROGBITS, Data: frame, Align: 8},
	}
	syms := []Symbol{
		{Name: "f3", Value: 0x7f0000001000, Size: 0x40, Section: 0, Type: elf.STT_FUNC, Bind: elf.STB_GLOBAL},
		{Name: "local", Value: 0x7f0000001040, Size: 0x10, Section: 0, Type: elf.STT_FUNC, Bind: elf.STB_LOCAL},
		{Name: "main+0x1c", Value: 0x7f0000001050, Size: 0x1b0, Section: 0, Type: elf.STT_FUNC, Bind: elf.STB_GLOBAL},
	}
	b, err := Write(elf.ET_EXEC, secs, syms)
	if err != nil {
		t.Fatal(err)
	}
	return secs, syms, b
}

// TestWriteReadBack writes an object and reads it back with debug/elf:
// the header, every section with its address, flags and bytes, and every
// symbol with its value, size, section, type and binding, locals first.
func TestWriteReadBack(t *testing.T) {
	secs, syms, b := sample(t)
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Fatalf("header: %v %v %v %v", f.Class, f.Data, f.Machine, f.Type)
	}
	if len(f.Progs) != 0 {
		t.Errorf("%d program headers, want none", len(f.Progs))
	}
	for _, want := range secs {
		s := f.Section(want.Name)
		if s == nil {
			t.Fatalf("no section %s", want.Name)
		}
		if s.Type != want.Type || s.Flags != want.Flags || s.Addr != want.Addr || s.Addralign != want.Align {
			t.Errorf("%s: %v %v %#x %d, want %v %v %#x %d", want.Name, s.Type, s.Flags, s.Addr, s.Addralign, want.Type, want.Flags, want.Addr, want.Align)
		}
		if want.Type == elf.SHT_NOBITS {
			if s.Size != want.Size {
				t.Errorf("%s: size %#x, want %#x", want.Name, s.Size, want.Size)
			}
			continue
		}
		data, err := s.Data()
		if err != nil || !bytes.Equal(data, want.Data) {
			t.Errorf("%s: data %x (%v), want %x", want.Name, data, err, want.Data)
		}
		if s.Offset%want.Align != 0 {
			t.Errorf("%s: offset %#x not aligned to %d", want.Name, s.Offset, want.Align)
		}
	}
	got, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	// Locals first: the local one, then the globals in order.
	order := []Symbol{syms[1], syms[0], syms[2]}
	if len(got) != len(order) {
		t.Fatalf("%d symbols, want %d: %+v", len(got), len(order), got)
	}
	for i, w := range order {
		g := got[i]
		if g.Name != w.Name || g.Value != w.Value || g.Size != w.Size || elf.ST_TYPE(g.Info) != w.Type || elf.ST_BIND(g.Info) != w.Bind || f.Sections[g.Section].Name != ".text" {
			t.Errorf("symbol %d: %+v, want %+v", i, g, w)
		}
	}
	// .symtab's sh_info is one past the last local.
	if st := f.Section(".symtab"); st == nil || st.Info != 2 || st.Link != uint32(len(secs)+2) {
		t.Errorf(".symtab: %+v", st)
	}
}

// TestReadelf has binutils' readelf check the object, where it is
// installed: it warns about anything malformed.
func TestReadelf(t *testing.T) {
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		t.Skip("readelf not installed")
	}
	_, _, b := sample(t)
	p := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(readelf, "-W", "-a", p).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf: %v\n%s", err, out)
	}
	s := string(out)
	for _, bad := range []string{"Warning", "Error", "error"} {
		if strings.Contains(s, bad) {
			t.Errorf("readelf complains:\n%s", s)
		}
	}
	for _, want := range []string{"f3", "main+0x1c", ".debug_frame", "NOBITS"} {
		if !strings.Contains(s, want) {
			t.Errorf("readelf output lacks %q:\n%s", want, s)
		}
	}
}

// TestWriteRefuses checks the errors: a symbol in no section, data in a
// NOBITS section, a NUL in a name, a bad alignment.
func TestWriteRefuses(t *testing.T) {
	text := Section{Name: ".text", Type: elf.SHT_NOBITS, Size: 16}
	for name, c := range map[string]struct {
		secs []Section
		syms []Symbol
	}{
		"no section":   {[]Section{text}, []Symbol{{Name: "x", Section: 1}}},
		"nobits data":  {[]Section{{Name: ".text", Type: elf.SHT_NOBITS, Data: []byte{1}}}, nil},
		"nul":          {[]Section{text}, []Symbol{{Name: "a\x00b"}}},
		"align":        {[]Section{{Name: ".x", Type: elf.SHT_PROGBITS, Align: 3}}, nil},
		"size":         {[]Section{{Name: ".x", Type: elf.SHT_PROGBITS, Data: []byte{1}, Size: 2}}, nil},
		"type":         {[]Section{{Name: ".x", Type: elf.SHT_DYNAMIC}}, nil},
		"section name": {[]Section{{Name: ".x\x00", Type: elf.SHT_NOBITS}}, nil},
	} {
		if _, err := Write(elf.ET_EXEC, c.secs, c.syms); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
