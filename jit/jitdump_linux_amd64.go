package jit

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/mem"
)

// perf's jitdump format (tools/perf/util/jitdump.h in Linux): a header,
// then records, each with a prefix giving its type, size and time stamp.
// perf inject --jit reads the file after `perf record -k 1` (time stamps
// on CLOCK_MONOTONIC, as the records' are) and writes an ELF object for
// each JIT_CODE_LOAD, mapped into the profile at the record's time: a
// flushed fragment's address taken by a new one gets a new load and a new
// code index, which hides the old one from that time on.
const (
	jitdumpMagic   = 0x4A695444 // "JiTD" read as little-endian
	jitdumpVersion = 1
	jitHeaderSize  = 40
	jitCodeLoad    = 0
	jitDebugInfo   = 2
	jitLoadSize    = 56 // the JIT_CODE_LOAD record before its name
	jitDebugSize   = 32 // the JIT_CODE_DEBUG_INFO record before its entries
	emX86_64       = 62
)

// jitdump is the process's jitdump file, shared by its machines: perf
// reads one per process, jit-<pid>.dump.
var jitdump struct {
	mu sync.Mutex
	// f is the file, open from the first fragment on; err says why it
	// could not be opened, after which no machine tries again.
	f   *os.File
	err error
	// marked is set once the file is mapped executable (by the first
	// machine to write it), the mapping perf finds the file by.
	marked bool
	// index is the next record's code index.
	index uint64
	// buf holds a fragment's records, written at once.
	buf []byte
}

// JitDumpPath returns the jitdump Options.JitDump writes:
// $JITDUMPDIR/jit-<pid>.dump, or /tmp/jit-<pid>.dump if JITDUMPDIR is
// not set. perf inject --jit writes its objects beside it.
func JitDumpPath() string {
	dir := os.Getenv("JITDUMPDIR")
	if dir == "" {
		dir = "/tmp"
	}
	return filepath.Join(dir, fmt.Sprintf("jit-%d.dump", os.Getpid()))
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds, perf's clock with
// -k 1: read once from the kernel, then moved on by Go's monotonic clock
// (the same clock, read without a system call).
func monotonic() uint64 {
	monoOnce.Do(func() {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			monoBase = uint64(ts.Nano())
		}
		monoStart = time.Now()
	})
	return monoBase + uint64(time.Since(monoStart))
}

// monoBase is CLOCK_MONOTONIC at monoStart.
var (
	monoOnce  sync.Once
	monoBase  uint64
	monoStart time.Time
)

// openJitDumpLocked creates the file and writes its header.
//
// Preconditions: jitdump.mu is held.
func openJitDumpLocked() error {
	f, err := os.OpenFile(JitDumpPath(), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	var h [jitHeaderSize]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], jitdumpMagic)
	le.PutUint32(h[4:], jitdumpVersion)
	le.PutUint32(h[8:], jitHeaderSize)
	le.PutUint32(h[12:], emX86_64)
	le.PutUint32(h[20:], uint32(os.Getpid()))
	le.PutUint64(h[24:], monotonic())
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return err
	}
	jitdump.f = f
	ownFD(int(f.Fd()))
	return nil
}

// jitDump writes a JIT_CODE_LOAD record for each piece of fragment f,
// just installed in u: its cache address, size, code bytes and name;
// before it, where the application has a DWARF line table, a
// JIT_CODE_DEBUG_INFO record giving the source line of each stretch of
// the piece's code (perf inject turns it into the line table of the
// object it writes, which perf annotate shows). A file that cannot be
// written turns JitDump off for the machine.
//
// Preconditions: m.mu is held.
func (m *Machine) jitDump(u *codeUnit, f *fragment, ps []piece) {
	jitdump.mu.Lock()
	defer jitdump.mu.Unlock()
	if jitdump.f == nil && jitdump.err == nil {
		jitdump.err = openJitDumpLocked()
	}
	if jitdump.err != nil {
		m.opts.JitDump = false
		return
	}
	if !jitdump.marked {
		if err := m.markJitDump(jitdump.f); err != nil {
			jitdump.err = fmt.Errorf("jit: mapping the jitdump for perf: %w", err)
			m.opts.JitDump = false
			return
		}
		jitdump.marked = true
	}
	now := monotonic()
	pid, tid := uint32(os.Getpid()), uint32(unix.Gettid())
	b := jitdump.buf[:0]
	le := binary.LittleEndian
	for _, p := range ps {
		b = appendDebugInfo(b, f, m.viewMarks, &p, now)
		name := "reachvm:" + p.mod.perfName(p.pc)
		size := p.end - p.start
		total := jitLoadSize + len(name) + 1 + int(size)
		b = le.AppendUint32(b, jitCodeLoad)
		b = le.AppendUint32(b, uint32(total))
		b = le.AppendUint64(b, now)
		b = le.AppendUint32(b, pid)
		b = le.AppendUint32(b, tid)
		b = le.AppendUint64(b, uint64(p.start)) // vma
		b = le.AppendUint64(b, uint64(p.start)) // code_addr
		b = le.AppendUint64(b, uint64(size))
		b = le.AppendUint64(b, jitdump.index)
		jitdump.index++
		b = append(append(b, name...), 0)
		b = append(b, u.bytes(p.start, size)...)
	}
	jitdump.buf = b
	if _, err := jitdump.f.Write(b); err != nil {
		jitdump.err = err
		m.opts.JitDump = false
	}
}

// appendDebugInfo appends the JIT_CODE_DEBUG_INFO record of piece p of
// fragment f, whose marks (unpacked) are marks: an entry for each mark
// whose application address has a source line, each with its file's
// name (the format's "\xff" for "the same file" is read literally by
// perf inject). No record if none has.
func appendDebugInfo(b []byte, f *fragment, marks []mark, p *piece, now uint64) []byte {
	if p.mod == nil || p.mod.lines == nil {
		return b
	}
	le := binary.LittleEndian
	start := len(b)
	b = le.AppendUint32(b, jitDebugInfo)
	b = le.AppendUint32(b, 0) // total size, below
	b = le.AppendUint64(b, now)
	b = le.AppendUint64(b, uint64(p.start))
	b = le.AppendUint64(b, 0) // entries, below
	n := 0
	for i := p.first; i < p.last; i++ {
		k := &marks[i]
		file, line, ok := p.mod.lines.line(k.pc)
		if !ok {
			continue
		}
		at := f.entry + uintptr(k.off)
		if i == p.first {
			at = p.start
		}
		b = le.AppendUint64(b, uint64(at))
		b = le.AppendUint32(b, uint32(line))
		b = le.AppendUint32(b, 0) // discriminator
		b = append(append(b, file...), 0)
		n++
	}
	if n == 0 {
		return b[:start]
	}
	le.PutUint32(b[start+4:], uint32(len(b)-start))
	le.PutUint64(b[start+24:], uint64(n))
	return b
}

// markJitDump maps the first page of the jitdump f executable, in a
// vmcode slot of m's VMM: perf record sees the mapping (it records
// executable mappings) and perf inject --jit finds the file by its name.
// The mapping is never read; it stays until the machine closes.
func (m *Machine) markJitDump(f *os.File) error {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return err
	}
	dup := os.NewFile(uintptr(fd), f.Name())
	obj, err := m.v.FileObject(dup)
	if err != nil {
		dup.Close()
		return err
	}
	// The mapping keeps the file; the object's descriptor can go.
	defer m.v.OS().CloseObject(obj)
	s, err := m.v.ReserveSlot(mem.PageSize, "jitdump")
	if err != nil {
		return err
	}
	if err := s.MapFile(obj, 0, s.Base(), mem.PageSize, mem.ProtRX); err != nil {
		_ = s.Release()
		return err
	}
	m.marker = s
	return nil
}
