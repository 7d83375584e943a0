package jit

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/reachvm/reachvm/jit/internal/cfi"
)

// module is application code with a name, for naming and unwinding
// translated code after the code it came from: a program LoadProgram
// loaded, or a file mapped in the address space (a library).
type module struct {
	// name is the file's base name; base is where offsets count from
	// (the image's start, the file's first mapping).
	name string
	base uintptr
	// syms are the module's functions, nil if it has no symbol table.
	syms *funcSyms
	// frames is its call frame information (.eh_frame, else
	// .debug_frame), nil if none, at link-time addresses: an address
	// pc of the module is looked up at pc-bias.
	frames *cfi.Table
	bias   uintptr
	// lines are its DWARF line table at loaded addresses, nil without
	// one; read only for the jitdump.
	lines *lineTable
}

// newModule reads the symbols and call frame information of the ELF
// file f, loaded with bias, and its line table if lines.
func newModule(name string, base uintptr, f *elf.File, bias uintptr, lines bool) *module {
	mod := &module{name: name, base: base, syms: elfFuncs(f, bias), bias: bias}
	if lines {
		mod.lines = dwarfLines(f, bias)
	}
	for _, s := range []struct {
		name string
		eh   bool
	}{{".eh_frame", true}, {".debug_frame", false}} {
		sec := f.Section(s.name)
		if sec == nil || sec.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			continue
		}
		if t, err := cfi.Parse(data, sec.Addr, s.eh); err == nil {
			mod.frames = t
			break
		}
	}
	return mod
}

// fileModule reads the module of the file at path whose first mapping is
// at start (with its line table if lines). A file that is not ELF, or not
// readable, gives a module with its name only.
func fileModule(path string, start uintptr, lines bool) *module {
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		return &module{name: name, base: start}
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return &module{name: name, base: start}
	}
	// The bias: where the segment at file offset 0 was linked.
	bias := start
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			bias = start - uintptr(p.Vaddr-p.Off)
			break
		}
	}
	return newModule(name, start, f, bias, lines)
}

// row returns the unwinding row of application address pc (the table's:
// read only).
func (mod *module) row(pc uintptr) (*cfi.Row, bool) {
	if mod == nil || mod.frames == nil {
		return nil, false
	}
	return mod.frames.Row(uint64(pc - mod.bias))
}

// function returns the name and start of the function holding pc, and
// the end of the range from start with the same answer.
func (mod *module) function(pc uintptr) (name string, start, end uintptr, ok bool) {
	if mod == nil {
		return "", 0, 0, false
	}
	return mod.syms.lookup(pc)
}

// perfName names pc for perf: "nested!f3+0x4" in a function, else
// "libz.so.1+0x33b0" (the offset from the module's base), else
// "anon+0x7f0000001000" outside any module.
func (mod *module) perfName(pc uintptr) string {
	if mod == nil {
		return fmt.Sprintf("anon+%#x", pc)
	}
	if fn, start, _, ok := mod.function(pc); ok {
		return fmt.Sprintf("%s!%s+%#x", mod.name, fn, pc-start)
	}
	return fmt.Sprintf("%s+%#x", mod.name, pc-mod.base)
}

// gdbName names pc for a debugger's backtrace: "f3" at a function's
// start, "f3+0x4" inside it, else as perfName.
func (mod *module) gdbName(pc uintptr) string {
	if fn, start, _, ok := mod.function(pc); ok {
		if pc == start {
			return fn
		}
		return fmt.Sprintf("%s+%#x", fn, pc-start)
	}
	return mod.perfName(pc)
}

// lineTable is a DWARF line table: the source line of each address.
type lineTable struct {
	// addrs are the rows' loaded addresses, ascending; files and lines
	// their source (line 0: no line, past the end of a sequence).
	addrs []uintptr
	files []string
	lines []int
}

// dwarfLines reads f's DWARF line table, at addresses loaded with bias,
// or returns nil if it has none.
func dwarfLines(f *elf.File, bias uintptr) *lineTable {
	d, err := f.DWARF()
	if err != nil {
		return nil
	}
	type row struct {
		addr uintptr
		file string
		line int
	}
	var rows []row
	r := d.Reader()
	for {
		cu, err := r.Next()
		if err != nil || cu == nil {
			break
		}
		if cu.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		lr, err := d.LineReader(cu)
		r.SkipChildren()
		if err != nil || lr == nil {
			continue
		}
		var e dwarf.LineEntry
		for lr.Next(&e) == nil {
			rw := row{addr: uintptr(e.Address) + bias}
			if !e.EndSequence && e.File != nil {
				rw.file, rw.line = e.File.Name, e.Line
			}
			rows = append(rows, rw)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].addr < rows[j].addr })
	t := &lineTable{}
	for _, rw := range rows {
		t.addrs = append(t.addrs, rw.addr)
		t.files = append(t.files, rw.file)
		t.lines = append(t.lines, rw.line)
	}
	return t
}

// line returns the source file and line of address pc.
func (t *lineTable) line(pc uintptr) (string, int, bool) {
	if t == nil {
		return "", 0, false
	}
	i := sort.Search(len(t.addrs), func(i int) bool { return t.addrs[i] > pc }) - 1
	if i < 0 || t.lines[i] == 0 {
		return "", 0, false
	}
	return t.files[i], t.lines[i], true
}

// funcSyms are a module's functions, sorted by address.
type funcSyms struct {
	// addrs are the functions' addresses (loaded), ascending, one per
	// address; ends are one past their last bytes (the address itself
	// for a symbol of unknown size); names their names.
	addrs, ends []uintptr
	names       []string
	// byName is every function's address by each of its names (an
	// address may have several: malloc and __libc_malloc), a global's
	// before a local's of the same name.
	byName map[string]uintptr
}

// elfFuncs returns the functions of f's .symtab and .dynsym, and the
// global labels in its code, loaded with bias, or nil if it has none.
func elfFuncs(f *elf.File, bias uintptr) *funcSyms {
	var all []elf.Symbol
	if s, err := f.Symbols(); err == nil {
		all = append(all, s...)
	}
	if s, err := f.DynamicSymbols(); err == nil {
		all = append(all, s...)
	}
	var fs []elf.Symbol
	for _, s := range all {
		if s.Section == elf.SHN_UNDEF || s.Name == "" {
			continue
		}
		switch elf.ST_TYPE(s.Info) {
		case elf.STT_FUNC, elf.STT_GNU_IFUNC:
			fs = append(fs, s)
		case elf.STT_NOTYPE:
			// A label of hand-written assembly (_start) in code.
			if int(s.Section) < len(f.Sections) && f.Sections[s.Section].Flags&elf.SHF_EXECINSTR != 0 && elf.ST_BIND(s.Info) != elf.STB_LOCAL {
				fs = append(fs, s)
			}
		}
	}
	if len(fs) == 0 {
		return nil
	}
	// By address; at one address a global before a local, then the
	// larger first.
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Value != b.Value {
			return a.Value < b.Value
		}
		if ga, gb := elf.ST_BIND(a.Info) != elf.STB_LOCAL, elf.ST_BIND(b.Info) != elf.STB_LOCAL; ga != gb {
			return ga
		}
		return a.Size > b.Size
	})
	s := &funcSyms{byName: make(map[string]uintptr, len(fs))}
	for _, f := range fs {
		if _, ok := s.byName[f.Name]; !ok || elf.ST_BIND(f.Info) != elf.STB_LOCAL {
			s.byName[f.Name] = uintptr(f.Value) + bias
		}
	}
	for _, f := range fs {
		a := uintptr(f.Value) + bias
		if n := len(s.addrs); n > 0 && s.addrs[n-1] == a {
			continue
		}
		s.addrs = append(s.addrs, a)
		s.ends = append(s.ends, a+uintptr(f.Size))
		s.names = append(s.names, f.Name)
	}
	return s
}

// lookup returns the name and start of the function holding pc: the
// last one starting at or before pc, if pc is within its size (or its
// size is unknown), and the end of the range from its start where every
// address has the same answer.
func (s *funcSyms) lookup(pc uintptr) (name string, start, end uintptr, ok bool) {
	if s == nil {
		return "", 0, 0, false
	}
	i := sort.Search(len(s.addrs), func(i int) bool { return s.addrs[i] > pc }) - 1
	if i < 0 || s.ends[i] > s.addrs[i] && pc >= s.ends[i] {
		return "", 0, 0, false
	}
	end = ^uintptr(0)
	if i+1 < len(s.addrs) {
		end = s.addrs[i+1]
	}
	if s.ends[i] > s.addrs[i] {
		end = min(end, s.ends[i])
	}
	return s.names[i], s.addrs[i], end, true
}

// libKey identifies a file mapped for code.
type libKey struct {
	// path is the file's path as the kernel shows it, start the
	// address of its first mapping.
	path  string
	start uintptr
}

// moduleAt returns the module holding application address pc (a program
// of the machine's, or a file mapped there; nil for anonymous code) and
// [lo, hi), a range around pc with the same answer, for callers that
// look up consecutive addresses.
//
// Preconditions: m.mu is held.
func (m *Machine) moduleAt(pc uintptr) (mod *module, lo, hi uintptr) {
	for p := range m.programs {
		if pc >= p.lo && pc < p.hi && p.mod != nil {
			return p.mod, p.lo, p.hi
		}
	}
	path, start, lo, hi := m.codes.file(pc)
	if path == "" {
		return nil, lo, hi
	}
	key := libKey{path, start}
	mod, ok := m.libs[key]
	if !ok {
		if m.libs == nil {
			m.libs = make(map[libKey]*module)
		}
		mod = fileModule(path, start, m.opts.JitDump)
		m.libs[key] = mod
	}
	return mod, lo, hi
}
