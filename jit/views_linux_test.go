//go:build linux && amd64

package jit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/cfi"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// nestedFlags build the nested program as a debugger sees it best: no
// optimization, DWARF, frame pointers.
var nestedFlags = []string{"-O0", "-g", "-fno-omit-frame-pointer"}

// runNested loads the nested program (kind) into a new machine with
// opts and runs it in its "ok" mode, in this process: it exits 0. It
// returns the machine and the program, still loaded.
func runNested(t *testing.T, kind string, opts *Options) (*Machine, *Program, string) {
	t.Helper()
	path := buildProgram(t, "nested", kind, nestedFlags...)
	m, _ := newTestMachine(t, vmm.Config{}, opts)
	p, err := m.LoadProgram(path)
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Run([]string{path, "ok"}, nil)
	if err != nil || code != 0 {
		t.Fatalf("nested ok: status %d, %v", code, err)
	}
	return m, p, path
}

// programFuncs returns the function symbols of the program at path, at
// their addresses as loaded with bias: name -> [start, end).
func programFuncs(t *testing.T, path string, bias uintptr) map[string][2]uintptr {
	t.Helper()
	out := map[string][2]uintptr{}
	for _, s := range elfSymbols(t, path) {
		if (elf.ST_TYPE(s.Info) == elf.STT_FUNC || s.Name == "_start") && s.Section != elf.SHN_UNDEF {
			a := uintptr(s.Value) + bias
			out[s.Name] = [2]uintptr{a, a + uintptr(s.Size)}
		}
	}
	return out
}

// TestPerfMapProgram runs the nested program with PerfMap: every line
// names the program and one of its functions (or _start, a label of its
// assembly) with an offset inside it ("reachvm:nested-exec!f2+0x8"),
// lines do not overlap, and f1, f2 and f3
// each have a line at their first instruction (each is entered by a
// call, which either starts a fragment or a piece of one).
func TestPerfMapProgram(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			path := PerfMapPath()
			before, _ := os.ReadFile(path)
			m, p, prog := runNested(t, kind.name, &Options{PerfMap: true})
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(before) == 0 {
				defer os.Remove(path)
			}
			fns := programFuncs(t, prog, p.bias)
			base := filepath.Base(prog)
			lines := strings.Split(strings.TrimSpace(string(data[len(before):])), "\n")
			if len(lines) < m.Stats().Fragments {
				t.Fatalf("%d lines for %d fragments", len(lines), m.Stats().Fragments)
			}
			starts := map[string]bool{}
			var prevEnd uintptr
			for _, l := range lines {
				var start, size uintptr
				var name string
				if n, err := fmt.Sscanf(l, "%x %x %s", &start, &size, &name); n != 3 || err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if start < prevEnd {
					t.Errorf("line %q overlaps the one before (ending at %#x)", l, prevEnd)
				}
				prevEnd = start + size
				rest, ok := strings.CutPrefix(name, "reachvm:"+base+"!")
				fn, off, ok2 := strings.Cut(rest, "+0x")
				r, known := fns[fn]
				var o uintptr
				fmt.Sscanf(off, "%x", &o)
				if !ok || !ok2 || !known || r[1] > r[0] && r[0]+o >= r[1] {
					t.Errorf("line %q: want reachvm:%s!FUNCTION+OFFSET, a function of the program and an offset inside it", l, base)
					continue
				}
				if o == 0 {
					starts[fn] = true
				}
			}
			for _, fn := range []string{"main", "f1", "f2", "f3"} {
				if !starts[fn] {
					t.Errorf("no line at %s's start:\n%s", fn, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// resetJitDump forgets the process's jitdump, so that the next fragment
// opens a new one (in the JITDUMPDIR of the test that runs next).
func resetJitDump() {
	jitdump.mu.Lock()
	defer jitdump.mu.Unlock()
	if jitdump.f != nil {
		jitdump.f.Close()
	}
	jitdump.f, jitdump.err, jitdump.marked, jitdump.index = nil, nil, false, 0
}

// jitLoad is a JIT_CODE_LOAD record read back, with the
// JIT_CODE_DEBUG_INFO entries that came before it.
type jitLoad struct {
	pid, tid             uint32
	stamp                uint64
	vma, addr, size, idx uint64
	name                 string
	code                 []byte
	lines                []jitLine
}

// jitLine is a JIT_CODE_DEBUG_INFO entry.
type jitLine struct {
	addr uint64
	line uint32
	file string
}

// readJitDump parses a jitdump: its header, then every record.
func readJitDump(t *testing.T, b []byte) []jitLoad {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < jitHeaderSize || le.Uint32(b) != jitdumpMagic || le.Uint32(b[4:]) != 1 || le.Uint32(b[8:]) != jitHeaderSize || le.Uint32(b[12:]) != 62 || le.Uint32(b[20:]) != uint32(os.Getpid()) {
		t.Fatalf("header % x", b[:min(len(b), jitHeaderSize)])
	}
	var out []jitLoad
	var lines []jitLine
	for off := jitHeaderSize; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("a record prefix cut at %d", off)
		}
		id, total := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if total < 16 || off+total > len(b) {
			t.Fatalf("record at %d: size %d", off, total)
		}
		r := b[off : off+total]
		off += total
		if id == jitDebugInfo {
			if lines != nil || total < jitDebugSize {
				t.Fatalf("debug info at %d: two in a row or short", off-total)
			}
			n := le.Uint64(r[24:])
			e := r[jitDebugSize:]
			file := ""
			for i := uint64(0); i < n; i++ {
				if len(e) < 18 {
					t.Fatalf("debug info at %d: entry %d cut", off-total, i)
				}
				l := jitLine{addr: le.Uint64(e), line: le.Uint32(e[8:])}
				nul := bytes.IndexByte(e[16:], 0)
				if nul < 0 {
					t.Fatalf("debug info at %d: entry %d has no file name", off-total, i)
				}
				if name := e[16 : 16+nul]; !bytes.Equal(name, []byte{0xff}) {
					file = string(name)
				}
				l.file = file
				lines = append(lines, l)
				e = e[16+nul+1:]
			}
			if len(e) != 0 || n == 0 {
				t.Fatalf("debug info at %d: %d entries, %d bytes left", off-total, n, len(e))
			}
			continue
		}
		if id != jitCodeLoad || total < jitLoadSize {
			t.Fatalf("record at %d: id %d, size %d", off-total, id, total)
		}
		l := jitLoad{stamp: le.Uint64(r[8:]), pid: le.Uint32(r[16:]), tid: le.Uint32(r[20:]), vma: le.Uint64(r[24:]), addr: le.Uint64(r[32:]), size: le.Uint64(r[40:]), idx: le.Uint64(r[48:]), lines: lines}
		lines = nil
		nul := bytes.IndexByte(r[jitLoadSize:], 0)
		if nul < 0 {
			t.Fatalf("record at %d: no name", off-total)
		}
		l.name = string(r[jitLoadSize : jitLoadSize+nul])
		l.code = r[jitLoadSize+nul+1:]
		if uint64(len(l.code)) != l.size {
			t.Fatalf("record at %d (%s): %d code bytes for code_size %d", off-total, l.name, len(l.code), l.size)
		}
		out = append(out, l)
	}
	return out
}

// TestJitDump runs the nested program with JitDump into a directory of
// its own (JITDUMPDIR): the file has perf's header and a JIT_CODE_LOAD
// for every piece of every fragment, with this process's pid, rising
// code indexes and time stamps, an address in the cache, the code's
// bytes and the name the perf map gives, after a JIT_CODE_DEBUG_INFO
// giving the source lines of its code (the program has DWARF): f3's
// holds the line of its null write; and it is mapped read-execute, once,
// in vmcode, where aspacem records it as the kernel does.
func TestJitDump(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("JITDUMPDIR", dir)
	resetJitDump()
	t.Cleanup(resetJitDump)
	m, p, prog := runNested(t, kern.Exec, &Options{JitDump: true})
	path := filepath.Join(dir, fmt.Sprintf("jit-%d.dump", os.Getpid()))
	if JitDumpPath() != path {
		t.Errorf("JitDumpPath %s, want %s", JitDumpPath(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	loads := readJitDump(t, data)
	if len(loads) < m.Stats().Fragments {
		t.Fatalf("%d loads for %d fragments", len(loads), m.Stats().Fragments)
	}
	fns := programFuncs(t, prog, p.bias)
	src, err := os.ReadFile("kernels/c/programs/nested.c")
	if err != nil {
		t.Fatal(err)
	}
	before, _, _ := strings.Cut(string(src), "*target = v;")
	writeLine := uint32(strings.Count(before, "\n") + 1)
	var stamp uint64
	f3 := false
	for i, l := range loads {
		inCache := false
		for _, u := range m.units {
			inCache = inCache || u.contains(uintptr(l.addr)) && u.contains(uintptr(l.addr+l.size-1))
		}
		if l.pid != uint32(os.Getpid()) || l.idx != uint64(i) || l.stamp < stamp || l.vma != l.addr || !inCache || l.size == 0 {
			t.Errorf("load %d: %+v", i, l)
		}
		stamp = l.stamp
		if !strings.HasPrefix(l.name, "reachvm:"+filepath.Base(prog)+"!") {
			t.Errorf("load %d named %q", i, l.name)
		}
		for _, ln := range l.lines {
			if ln.addr < l.addr || ln.addr >= l.addr+l.size || !strings.HasSuffix(ln.file, "nested.c") && !strings.HasSuffix(ln.file, "rt.h") || ln.line == 0 {
				t.Errorf("load %d (%s, [%#x, +%#x)): line entry %+v", i, l.name, l.addr, l.size, ln)
			}
		}
		if strings.HasSuffix(l.name, "!f3+0x0") {
			f3 = true
			found := false
			for _, ln := range l.lines {
				found = found || ln.line == writeLine
			}
			if !found {
				t.Errorf("f3's piece has no entry for line %d, its null write: %+v", writeLine, l.lines)
			}
			// f3's piece starts with its code as compiled: endbr64,
			// push rbp.
			r := fns["f3"]
			want := readApp(r[0], 5)
			if !bytes.HasPrefix(l.code, want) && !bytes.Contains(l.code[:min(len(l.code), 32)], want) {
				t.Errorf("f3's piece % x does not hold f3's first instructions % x", l.code[:min(len(l.code), 16)], want)
			}
		}
	}
	if !f3 {
		t.Error("no load named after f3's start")
	}
	// The marker mapping.
	if m.marker == nil {
		t.Fatal("the jitdump is not mapped")
	}
	var seg aspacem.Segment
	for _, s := range m.v.Space().Segments(m.marker.Base(), m.marker.Base()+m.marker.Size()) {
		seg = s
	}
	if seg.Kind != aspacem.KindFile || seg.Prot != mem.ProtRX || seg.Name != path {
		t.Errorf("marker segment %v, want a read-execute view of %s", seg, path)
	}
	if ms, err := m.v.Space().SyncCheck(m.v.OS()); err != nil || len(ms) != 0 {
		t.Errorf("aspacem and the kernel disagree: %v %v", ms, err)
	}
}

// readApp copies n bytes of application memory at a.
func readApp(a uintptr, n int) []byte {
	b := make([]byte, n)
	copy(b, rawmem.Bytes(a, uintptr(n)))
	return b
}

// gdbEntries returns the objects registered with gdb, as gdb walks them:
// from the descriptor's first entry along the next links.
func gdbEntries() [][]byte {
	gdbList.mu.Lock()
	defer gdbList.mu.Unlock()
	var out [][]byte
	for g := gdbList.first; g != nil; g = g.next {
		if g.addr() != gdbDescriptor.first && g.prev == nil || g.e.size != uint64(len(g.obj)) {
			return nil
		}
		out = append(out, g.obj)
	}
	return out
}

// TestGDBObjects runs the nested program with GDB, without gdb, and
// reads back what gdb would: the program's own object (its symbols, at
// their run-time addresses for a static PIE too) and an object per
// fragment, whose function symbols name the application's functions and
// cover the cache without overlapping, and whose .debug_frame gives the
// translated entry of f3 the application's row at f3. Closing the
// program unregisters them all.
func TestGDBObjects(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			before := len(gdbEntries())
			m, p, prog := runNested(t, kind.name, &Options{GDB: true})
			if gdbDescriptor.version != 1 || gdbDescriptor.action != jitNoAction {
				t.Errorf("descriptor %+v", gdbDescriptor)
			}
			objs := gdbEntries()
			if len(objs) != before+1+m.Stats().Fragments {
				t.Fatalf("%d objects registered, want %d (the program and %d fragments)", len(objs)-before, 1+m.Stats().Fragments, m.Stats().Fragments)
			}
			fns := programFuncs(t, prog, p.bias)
			f3row, ok := p.mod.row(fns["f3"][0])
			if !ok {
				t.Fatal("no unwinding row at f3 in the program")
			}
			sawProgram, sawF3 := false, false
			for _, o := range objs[:len(objs)-before] {
				f, err := elf.NewFile(bytes.NewReader(o))
				if err != nil {
					t.Fatal(err)
				}
				syms, err := f.Symbols()
				if err != nil {
					t.Fatal(err)
				}
				text := f.Section(".text")
				if text != nil && text.Type == elf.SHT_NOBITS {
					// A fragment's object.
					var frames *cfi.Table
					if df := f.Section(".debug_frame"); df != nil {
						d, _ := df.Data()
						if frames, err = cfi.Parse(d, 0, false); err != nil {
							t.Fatal(err)
						}
					}
					end := text.Addr
					for _, s := range syms {
						if s.Value != end || s.Value+s.Size > text.Addr+text.Size {
							t.Errorf("symbol %s [%#x, +%#x) leaves a gap or overlaps in [%#x, +%#x)", s.Name, s.Value, s.Size, text.Addr, text.Size)
						}
						end = s.Value + s.Size
						fn, _, _ := strings.Cut(s.Name, "+")
						if _, ok := fns[fn]; !ok {
							t.Errorf("symbol %q names no function of the program", s.Name)
						}
						if s.Name == "f3" {
							sawF3 = true
							// The row at the piece's first instruction
							// (past an indirect-branch prefix, if it
							// is a fragment's start) is f3's.
							if frames == nil {
								t.Errorf("f3's fragment has no .debug_frame")
							} else if first, ok := frames.Row(s.Value); !ok || *first != *f3row {
								t.Errorf("f3's piece starts with row %+v (%v), want f3's %+v", first, ok, f3row)
							}
						}
					}
					if end != text.Addr+text.Size {
						t.Errorf("symbols end at %#x, the fragment at %#x", end, text.Addr+text.Size)
					}
					f.Close()
					continue
				}
				// The program's object: f3 where it runs.
				for _, s := range syms {
					if s.Name == "f3" {
						sawProgram = true
						if uintptr(s.Value) != fns["f3"][0] {
							t.Errorf("the program's object has f3 at %#x, it runs at %#x", s.Value, fns["f3"][0])
						}
					}
				}
				if kind.name == kern.PIE && f.Section(".debug_info") != nil {
					t.Error("a moved static PIE keeps its DWARF, at the wrong addresses")
				}
				f.Close()
			}
			if !sawProgram || !sawF3 {
				t.Errorf("program object %v, a fragment piece named f3 %v", sawProgram, sawF3)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(gdbEntries()); n != before {
				t.Errorf("%d objects left registered after Close, want %d", n, before)
			}
		})
	}
}
