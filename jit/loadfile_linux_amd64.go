package jit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// execFile is an ELF file LoadProgram loads (the program, or its
// interpreter): open for the load, parsed from its headers, and mapped as
// the kernel maps it, private and copy-on-write, rather than read and
// copied: a page of it is then read from the page cache when the program
// (or the translator) first touches it, and a page the program never
// touches costs nothing.
type execFile struct {
	// name is the file's absolute path with every symbolic link
	// resolved: what the kernel's map names its mappings by, and
	// /proc/self/exe the program.
	name string
	// file is the open file until obj owns it (nil then).
	file *os.File
	// obj is the file as a vmm object, which the image's segments are
	// mapped from; nil where the backend cannot map an open file (the
	// segments' bytes are then read into committed memory).
	obj mem.Object
	// size is the file's size.
	size int64
	// data is the whole file, read only where something uses the file's
	// contents after the load (the views name code from its symbols;
	// gdb is handed a copy of it); nil otherwise.
	data []byte
	// blocks reads the file (without data) a block at a time.
	blocks blockReader
	// elf is the file parsed: its headers, and its sections read from
	// data or (lazily) from the file, which only the load reads.
	elf *elf.File
	// phoff is the file offset of the program headers (e_phoff).
	phoff uint64
}

// openExecFile opens the file at path for loading; whole reads all of it
// into data too.
func openExecFile(v *vmm.VMM, path string, whole bool) (*execFile, error) {
	file, err := openFile(path, true)
	if err != nil {
		return nil, err
	}
	x := &execFile{file: file, name: file.Name()}
	x.blocks.f = file
	if x.name == path {
		// The kernel's name could not be read.
		x.name = exePath(path)
	}
	st, err := file.Stat()
	if err != nil {
		x.close(v)
		return nil, err
	}
	x.size = st.Size()
	if whole {
		if x.data, err = io.ReadAll(file); err != nil {
			x.close(v)
			return nil, err
		}
		x.size = int64(len(x.data))
	}
	return x, nil
}

// readAt reads len(b) bytes at off, or fewer at the end of the file.
func (x *execFile) readAt(b []byte, off int64) (int, error) {
	if x.data != nil {
		if off >= int64(len(x.data)) {
			return 0, nil
		}
		return copy(b, x.data[off:]), nil
	}
	n, err := x.blocks.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// readSegment reads len(b) bytes at off into b, or fewer at the end of
// the file: straight from the file, not through the blocks' cache (by
// its name again once its object owns the descriptor).
func (x *execFile) readSegment(b []byte, off int64) (int, error) {
	if x.data != nil {
		return x.readAt(b, off)
	}
	f := x.file
	if f == nil {
		var err error
		if f, err = openFile(x.name, false); err != nil {
			return 0, err
		}
		defer f.Close()
	}
	n, err := f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// readerAt returns what the file is read through.
func (x *execFile) readerAt() io.ReaderAt {
	if x.data != nil {
		return bytes.NewReader(x.data)
	}
	return &x.blocks
}

// blockReader reads a file through a cache of blockSize-byte blocks:
// elf.NewFile reads the ELF header, the program headers, then each
// section header on its own and the section names, a read call each
// (some forty for ld.so), where they lie in two or three blocks.
type blockReader struct {
	// f is the file; nil once its object owns it (execFile.object),
	// after which only cached blocks can be read.
	f *os.File
	// blocks holds the blocks read, by offset; a short one is the
	// file's last.
	blocks map[int64][]byte
}

// blockSize is a block of blockReader: a few pages of the page cache
// copied, which costs less than the calls it saves.
const blockSize = 16 << 10

// ReadAt reads len(p) bytes at off, or fewer and io.EOF at the end of
// the file.
func (r *blockReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		base := at - at%blockSize
		b, ok := r.blocks[base]
		if !ok {
			if r.f == nil {
				return n, os.ErrClosed
			}
			b = make([]byte, blockSize)
			m, err := r.f.ReadAt(b, base)
			if err != nil && !errors.Is(err, io.EOF) {
				return n, err
			}
			b = b[:m]
			if r.blocks == nil {
				r.blocks = map[int64][]byte{}
			}
			r.blocks[base] = b
		}
		if int(at-base) >= len(b) {
			return n, io.EOF
		}
		n += copy(p[n:], b[at-base:])
	}
	return n, nil
}

// parse parses the file as an x86-64 ELF64 executable or shared object,
// while it is open for reading (until object).
func (x *execFile) parse() error {
	f, err := parseExecutable(x.readerAt())
	if err != nil {
		return err
	}
	var b [8]byte
	n, err := x.readAt(b[:], 32)
	if err == nil && n < len(b) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("reading e_phoff: %w", err)
	}
	x.elf, x.phoff = f, binary.LittleEndian.Uint64(b[:])
	return nil
}

// object returns the file as a vmm object to map segments from, or nil
// if it cannot be (a backend that maps no open file): the segments are
// then read. The object owns the file from then on: readAt works on
// data only.
func (x *execFile) object(v *vmm.VMM) mem.Object {
	if x.obj == nil && x.file != nil {
		if obj, err := v.FileObject(x.file); err == nil {
			x.obj, x.file, x.blocks.f = obj, nil, nil
		}
	}
	return x.obj
}

// close closes the file: the mappings made from it stay.
func (x *execFile) close(v *vmm.VMM) {
	if x.obj != nil {
		// The views stay whatever close says.
		_ = v.OS().CloseObject(x.obj)
		x.obj = nil
	}
	if x.file != nil {
		_ = x.file.Close()
		x.file, x.blocks.f = nil, nil
	}
}

// mappable reports whether f's PT_LOAD segments can each be mapped from
// the file as the kernel maps them: each one's address and offset agree
// modulo the page, and no page holds two segments (the kernel maps the
// later one over the earlier there; the loader copies both instead).
func mappable(f *elf.File) bool {
	page := uint64(mem.PageSize)
	type span struct{ lo, hi uint64 }
	var spans []span
	for _, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		if ph.Filesz > 0 && ph.Vaddr%page != ph.Off%page {
			return false
		}
		end, _ := mem.AlignUp(ph.Vaddr+ph.Memsz, page)
		spans = append(spans, span{mem.AlignDown(ph.Vaddr, page), end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi {
			return false
		}
	}
	return true
}

// loadSegment fills the PT_LOAD segment ph of x, whose pages [a, b) are
// reserved in the image at bias, read-write: the pages that hold its
// file bytes mapped from the file (obj), the bytes after them to the end
// of their page zeroed when the segment goes on past them (the kernel's
// padzero: they are the start of its zero-filled part), the pages after
// those committed zero; or, with obj nil, or where the file system
// cannot map the file, every page committed and the file bytes read in.
func loadSegment(v *vmm.VMM, x *execFile, obj mem.Object, ph *elf.Prog, bias, a, b uintptr, owner string) error {
	page := uintptr(mem.PageSize)
	start := bias + uintptr(ph.Vaddr)
	read := func() error {
		if err := v.CommitApp(mem.Range{Start: a, End: b}, mem.ProtRW); err != nil {
			return err
		}
		if ph.Filesz == 0 {
			return nil
		}
		n, err := x.readSegment(rawmem.Bytes(start, uintptr(ph.Filesz)), int64(ph.Off))
		if err == nil && n < int(ph.Filesz) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("reading a segment: %w", err)
		}
		return nil
	}
	if obj == nil || ph.Filesz == 0 {
		return read()
	}
	fileEnd, _ := mem.AlignUp(start+uintptr(ph.Filesz), page)
	fileEnd = min(fileEnd, b)
	off := mem.AlignDown(ph.Off, uint64(page))
	if _, err := v.MapAppObject(obj, off, a, fileEnd-a, mem.ProtRW, mem.Fixed, owner); err != nil {
		// A file system with no mmap (ENODEV) refuses before the
		// reservation is touched: the segment is read instead.
		if rerr := read(); rerr != nil {
			return errors.Join(err, rerr)
		}
		return nil
	}
	if ph.Memsz > ph.Filesz {
		if z := start + uintptr(ph.Filesz); z < fileEnd {
			clear(rawmem.Bytes(z, fileEnd-z))
		}
	}
	if fileEnd < b {
		return v.CommitApp(mem.Range{Start: fileEnd, End: b}, mem.ProtRW)
	}
	return nil
}
