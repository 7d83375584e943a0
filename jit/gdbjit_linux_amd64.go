package jit

import (
	"debug/elf"
	"encoding/binary"
	"strings"
	"sync"
	"unsafe"
	_ "unsafe" // go:linkname

	"github.com/reachvm/reachvm/jit/internal/cfi"
	"github.com/reachvm/reachvm/jit/internal/elfobj"
)

// gdb's JIT interface ("JIT Compilation Interface" in gdb's manual): the
// process exports a function __jit_debug_register_code, on which gdb puts
// a breakpoint, and a descriptor __jit_debug_descriptor heading a list of
// in-memory object files. To add or remove an object, the process links
// or unlinks its entry, points relevant_entry at it, sets action_flag and
// calls the function; gdb, stopped there, reads the object from the
// process's memory as it would a file, with its symbols and its DWARF,
// at the addresses its sections give. Without gdb the call returns at
// once.

// cfiRSP is rsp's DWARF register number.
const cfiRSP = 7

// gdb's action_flag values.
const (
	jitNoAction   = 0
	jitRegister   = 1
	jitUnregister = 2
)

// jitCodeEntry is gdb's struct jit_code_entry.
type jitCodeEntry struct {
	next, prev uintptr
	symfile    uintptr
	size       uint64
}

// jitDescriptor is gdb's struct jit_descriptor.
type jitDescriptor struct {
	version, action uint32
	relevant, first uintptr
}

// gdbDescriptor is __jit_debug_descriptor, version 1 from the start: gdb
// reads it when the program starts, before any registration.
//
//go:linkname gdbDescriptor __jit_debug_descriptor
var gdbDescriptor = jitDescriptor{version: 1}

// gdbRegisterCode is __jit_debug_register_code, where gdb stops to read
// the descriptor. It must stay a real function that is really called.
//
//go:linkname gdbRegisterCode __jit_debug_register_code
//go:noinline
func gdbRegisterCode() {}

// gdbEntry is one registered object.
type gdbEntry struct {
	// e is what gdb reads; its next and prev mirror next and prev,
	// which keep the entries (and so their objects) alive: gdb's list
	// holds addresses, which the garbage collector does not follow.
	// Go's heap does not move objects, so the addresses stay valid.
	e          jitCodeEntry
	next, prev *gdbEntry
	obj        []byte
}

// gdbList is the registered entries. mu serializes registrations, which
// gdb sees one call at a time.
var gdbList struct {
	mu    sync.Mutex
	first *gdbEntry
}

func (g *gdbEntry) addr() uintptr {
	if g == nil {
		return 0
	}
	return uintptr(unsafe.Pointer(&g.e))
}

// gdbRegister registers the ELF object obj with gdb.
//
// Preconditions: obj is not empty.
func gdbRegister(obj []byte) *gdbEntry {
	g := &gdbEntry{obj: obj}
	g.e.symfile, g.e.size = uintptr(unsafe.Pointer(&obj[0])), uint64(len(obj))
	gdbList.mu.Lock()
	defer gdbList.mu.Unlock()
	g.next = gdbList.first
	g.e.next = g.next.addr()
	if g.next != nil {
		g.next.prev = g
		g.next.e.prev = g.addr()
	}
	gdbList.first = g
	gdbDescriptor.first = g.addr()
	gdbDescriptor.relevant = g.addr()
	gdbDescriptor.action = jitRegister
	gdbRegisterCode()
	gdbDescriptor.action = jitNoAction
	return g
}

// gdbUnregister removes g's object from gdb's view.
func gdbUnregister(g *gdbEntry) {
	gdbList.mu.Lock()
	defer gdbList.mu.Unlock()
	if g.prev != nil {
		g.prev.next = g.next
		g.prev.e.next = g.next.addr()
	} else {
		gdbList.first = g.next
		gdbDescriptor.first = g.next.addr()
	}
	if g.next != nil {
		g.next.prev = g.prev
		g.next.e.prev = g.prev.addr()
	}
	gdbDescriptor.relevant = g.addr()
	gdbDescriptor.action = jitUnregister
	gdbRegisterCode()
	gdbDescriptor.action = jitNoAction
	gdbDescriptor.relevant = 0
	g.next, g.prev = nil, nil
}

// gdbDrop unregisters the fragments' objects: their cache addresses are
// about to hold other code.
//
// Preconditions: m.mu is held, or m is being made or freed.
func (m *Machine) gdbDrop() {
	for _, g := range m.gdbFrags {
		gdbUnregister(g)
	}
	m.gdbFrags = m.gdbFrags[:0]
}

// gdbFragment registers an object for fragment f: a function symbol for
// each piece, and a .debug_frame giving the code of each of the
// fragment's marks the application's unwinding row at the instruction
// the mark stands for (a copied instruction runs on the application's
// stack as it is; inserted code that has moved the stack pointer says by
// how much, and the CFA moves with it), so that gdb unwinds a frame in
// the cache as it would the application's. Runs of code whose
// application address has no row get no FDE: gdb falls back on its own
// analysis there.
//
// Preconditions: m.mu is held.
func (m *Machine) gdbFragment(f *fragment, ps []piece) {
	obj, err := fragmentObject(f, m.viewMarks, ps, &m.gdbRows)
	if err != nil {
		return
	}
	m.gdbFrags = append(m.gdbFrags, gdbRegister(obj))
}

// fragmentObject builds the object gdbFragment registers, from f's
// marks (unpacked) cut into pieces ps; rows is scratch space, kept for the
// next call.
func fragmentObject(f *fragment, marks []mark, ps []piece, rows *[]cfi.At) ([]byte, error) {
	end := f.entry + uintptr(f.size)
	secs := []elfobj.Section{{Name: ".text", Type: elf.SHT_NOBITS, Flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, Addr: uint64(f.entry), Size: uint64(f.size), Align: 1}}
	syms := make([]elfobj.Symbol, 0, len(ps))
	enc := cfi.NewEncoder()
	run := (*rows)[:0]
	defer func() { *rows = run[:0] }()
	flush := func(hi uintptr) error {
		if len(run) == 0 {
			return nil
		}
		err := enc.FDE(run, uint64(hi))
		run = run[:0]
		return err
	}
	for _, p := range ps {
		syms = append(syms, elfobj.Symbol{Name: p.mod.gdbName(p.pc), Value: uint64(p.start), Size: uint64(p.end - p.start), Type: elf.STT_FUNC, Bind: elf.STB_GLOBAL})
		for i := p.first; i < p.last; i++ {
			k := &marks[i]
			at := f.entry + uintptr(k.off)
			if i == 0 {
				at = f.entry
			}
			row, ok := p.mod.row(k.pc)
			if ok && k.rsp != 0 {
				// The application's rsp is the cache's plus k.rsp: a
				// CFA from rsp moves by as much; one from an expression
				// (which may read rsp) is not given.
				switch {
				case row.CFA.Expr != "":
					ok = false
				case row.CFA.Reg == cfiRSP:
					moved := *row
					moved.CFA.Off += int64(k.rsp)
					row = &moved
				}
			}
			if !ok {
				if err := flush(at); err != nil {
					return nil, err
				}
				continue
			}
			if n := len(run); n > 0 && uint64(at) == run[n-1].Addr {
				run[n-1].Row = row // the earlier instruction emitted nothing
				continue
			}
			run = append(run, cfi.At{Addr: uint64(at), Row: row})
		}
	}
	if err := flush(end); err != nil {
		return nil, err
	}
	if enc.Len() > 0 {
		secs = append(secs, elfobj.Section{Name: ".debug_frame", Type: elf.SHT_PROGBITS, Data: enc.Bytes(), Align: 8})
	}
	return elfobj.Write(elf.ET_EXEC, secs, syms)
}

// programObject returns the object gdb is given for a program: its file,
// data, as it is for an ET_EXEC. A static PIE loaded with bias is moved
// to where it runs (gdb takes an object's addresses as they are): its
// entry, program headers, allocated sections and defined symbols, and so
// the PC-relative addresses of its .eh_frame; its DWARF debugging
// sections, whose addresses cannot be moved as simply, are hidden by
// name (".debug_info" becomes "debug_info"), so that gdb does not read
// them at the wrong addresses.
func programObject(data []byte, f *elf.File, bias uintptr) []byte {
	obj := append([]byte(nil), data...)
	if bias == 0 {
		return obj
	}
	le := binary.LittleEndian
	b := uint64(bias)
	add := func(off uint64) {
		if off+8 <= uint64(len(obj)) {
			le.PutUint64(obj[off:], le.Uint64(obj[off:])+b)
		}
	}
	add(24) // e_entry
	phoff, phnum := le.Uint64(obj[32:]), uint64(le.Uint16(obj[56:]))
	for i := uint64(0); i < phnum; i++ {
		add(phoff + i*56 + 16) // p_vaddr
		add(phoff + i*56 + 24) // p_paddr
	}
	shoff := le.Uint64(obj[40:])
	for i, s := range f.Sections {
		h := shoff + uint64(i)*64
		if h+64 > uint64(len(obj)) {
			break
		}
		if s.Flags&elf.SHF_ALLOC != 0 {
			add(h + 16) // sh_addr
		}
		if strings.HasPrefix(s.Name, ".debug_") {
			le.PutUint32(obj[h:], le.Uint32(obj[h:])+1)
		}
		if s.Type == elf.SHT_SYMTAB || s.Type == elf.SHT_DYNSYM {
			for o := s.Offset + 24; o+24 <= s.Offset+s.Size && o+24 <= uint64(len(obj)); o += 24 {
				shndx := elf.SectionIndex(le.Uint16(obj[o+6:]))
				if shndx != elf.SHN_UNDEF && shndx < elf.SHN_LORESERVE {
					add(o + 8)
				}
			}
		}
	}
	return obj
}
