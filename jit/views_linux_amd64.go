package jit

import (
	"fmt"
	"os"
)

// This file shows translated code to the tools that look at a process
// from outside: perf, through its map (Options.PerfMap) and its jitdump
// (Options.JitDump), and gdb, through its JIT interface (Options.GDB).
// Each gets the fragment cut into pieces, one per run of code translated
// from one application function, named after that function. The cut
// follows the fragment's marks (xlate_linux_amd64.go), which say which
// application instruction each stretch of the fragment's code stands for.

// piece is a run of a fragment's code translated from one application
// function (or from one module's code outside any function).
type piece struct {
	// start and end are its cache addresses; pc the application address
	// of its first instruction, in mod (nil for anonymous code).
	start, end uintptr
	pc         uintptr
	mod        *module
	// fn is the start of the function pc is in, 0 outside functions.
	fn uintptr
	// first and last index the fragment's marks it covers (last
	// exclusive), in Machine.viewMarks.
	first, last int
}

// views reports whether any tool is shown translated code.
func (o *Options) views() bool { return o.PerfMap || o.JitDump || o.GDB }

// pieces cuts fragment f into pieces. The indirect-branch prefix goes
// with the first piece, the literals with the last.
//
// Preconditions: m.mu is held; m.viewMarks holds f's marks.
func (m *Machine) pieces(f *fragment) []piece {
	end := f.entry + uintptr(f.size)
	pcs := m.viewMarks
	if len(pcs) == 0 {
		mod, _, _ := m.moduleAt(f.tag)
		return []piece{{start: f.entry, end: end, pc: f.tag, mod: mod}}
	}
	out := m.piecesBuf[:0]
	// The module and function of the last record, and the ranges
	// around it with the same answers: most records fall in both.
	var mod *module
	var modLo, modHi, fn, fnLo, fnHi uintptr
	for i, r := range pcs {
		at := f.entry + uintptr(r.off)
		if i == 0 || r.pc < modLo || r.pc >= modHi {
			mod, modLo, modHi = m.moduleAt(r.pc)
			fnLo, fnHi = 0, 0
		}
		if r.pc < fnLo || r.pc >= fnHi {
			var ok bool
			if _, fn, fnHi, ok = mod.function(r.pc); ok {
				fnLo = fn
			} else {
				fn, fnLo, fnHi = 0, 0, 0
			}
		}
		n := len(out)
		switch {
		case n > 0 && out[n-1].mod == mod && out[n-1].fn == fn:
			continue
		case n == 0:
			at = f.entry
		case at == out[n-1].start:
			// The previous piece's instructions emitted no code (a
			// followed jump): this one takes its place.
			out[n-1].pc, out[n-1].mod, out[n-1].fn, out[n-1].first = r.pc, mod, fn, i
			continue
		default:
			out[n-1].end, out[n-1].last = at, i
		}
		out = append(out, piece{start: at, pc: r.pc, mod: mod, fn: fn, first: i})
	}
	out[len(out)-1].end, out[len(out)-1].last = end, len(pcs)
	m.piecesBuf = out
	return out
}

// show tells the tools Options selects about fragment f, just installed
// in u.
//
// Preconditions: m.mu is held.
func (m *Machine) show(u *codeUnit, f *fragment) {
	m.viewMarks = f.unpackMarks(m.viewMarks[:0])
	ps := m.pieces(f)
	if m.opts.PerfMap {
		m.perfMap(ps)
	}
	if m.opts.JitDump {
		m.jitDump(u, f, ps)
	}
	if m.opts.GDB {
		m.gdbFragment(f, ps)
	}
}

// perfMap appends the pieces' lines to the perf map, opening it first.
func (m *Machine) perfMap(ps []piece) {
	if m.perf == nil {
		var err error
		m.perf, err = os.OpenFile(PerfMapPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			m.opts.PerfMap = false
			return
		}
		ownFD(int(m.perf.Fd()))
	}
	// One write for the fragment, so that lines of two machines in one
	// process do not interleave.
	var b []byte
	for _, p := range ps {
		b = fmt.Appendf(b, "%x %x reachvm:%s\n", p.start, p.end-p.start, p.mod.perfName(p.pc))
	}
	_, _ = m.perf.Write(b)
}

// PerfMapPath returns the perf map Options.PerfMap writes: the file perf
// reads for this process's JIT code.
func PerfMapPath() string { return fmt.Sprintf("/tmp/perf-%d.map", os.Getpid()) }
