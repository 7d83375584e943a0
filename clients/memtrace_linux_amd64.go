package clients

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// memtrace records every load and store the program makes: a record
// (jit.TraceBuffer, 16 bytes in the thread's buffer) before each
// instruction that accesses memory, one per reference, its tag a site
// number for the instruction's PC, size and kind of access, which Go
// learns at translation; a rep-prefixed string instruction adds a record
// of rcx, the count of its accesses. Go writes the records a buffer at a
// time to a compact file (format below) and counts them.
//
// The file (MemtraceMagic, then chunks):
//
//	magic   "RVMTRC01"
//	chunk   'T' uvarint(tid) uvarint(len) payload[len]
//	payload entries, each one uvarint x:
//	  x odd:  a site defined: id = x>>1, then uvarint(pc), uvarint(size),
//	          one byte of flags (1 read, 2 write, 4 repeated)
//	  x even: an access at site x>>1: varint(address minus the chunk's
//	          previous access address, which starts at 0), and for a
//	          repeated site uvarint(count): count accesses at address,
//	          address+size, ... (a string instruction's iterations, the
//	          direction flag taken as clear)
//
// A site is defined in a file before its first access. A
// read-and-write reference (add [m], r) is one access, both a load and
// a store. ReadMemtrace reads the file back.
type memtrace struct {
	mu sync.Mutex
	// sites are the sites, by number.
	sites  []memSite
	siteOf map[memSiteKey]uint32
	// kinds is, by site number, what the encoder needs of the site in
	// one byte (memKind*): a record's site looked up in a loop of
	// thousands costs less in a byte than in a memSite.
	kinds []byte
	// out is the trace file, nil when the records are dropped; w
	// buffers it; path is its name, bytes what was written.
	out   *os.File
	w     *bufio.Writer
	path  string
	bytes uint64
	// chunk is room for a chunk's payload (memMaxEntry bytes a
	// record), reused.
	chunk []byte
	// tally is, by site number, what the site's records add up to;
	// loads, stores and accesses are made from it at the report, so
	// that a flush does no more per record than two adds (a record's
	// kind of access is the site's, known once).
	tally []memTally
	// The counts: records, and references of instructions the decoder
	// does not cover (not traced).
	records, uncovered uint64
	err                error
}

// memTally is one site's records, as the flushes saw them.
type memTally struct {
	// n is the site's records; sum the sum of their addresses, which
	// for a count site (memSite.count) is the sum of the counts: its
	// repeated site's accesses.
	n, sum uint64
}

// MemtraceMagic opens a memtrace file.
const MemtraceMagic = "RVMTRC01"

// Site flags.
const (
	memRead   = 1
	memWrite  = 2
	memRepeat = 4
)

// The bits of memtrace.kinds: the site is defined in the file, is a
// count site (memSite.count), is repeated (memRepeat).
const (
	memKindDefined = 1
	memKindCount   = 2
	memKindRepeat  = 4
)

// memMaxEntry bounds the bytes one record adds to a chunk: a site's
// definition (id, pc, size, flags) and its access (id, address delta,
// count).
const memMaxEntry = 6*binary.MaxVarintLen64 + 1

type memSiteKey struct {
	pc  uintptr
	ref int
}

type memSite struct {
	pc    uintptr
	size  uint64
	flags byte
	// count is set for the record of rcx before a rep string
	// instruction's references: the site it counts.
	count bool
	// countedBy is, for a repeated site (flags&memRepeat), the number
	// of its count site, whose record comes just before each of its
	// own, in the same instruction's records.
	countedBy uint32
}

// newMemtrace is the memtrace sample: arguments "file=PATH" (the trace,
// memtrace.<pid>.bin by default) or "drop" (no file: the records are
// only counted).
func newMemtrace(args []string) (*Tool, error) {
	mt := &memtrace{siteOf: map[memSiteKey]uint32{}}
	drop := false
	path := fmt.Sprintf("memtrace.%d.bin", os.Getpid())
	for _, a := range args {
		switch {
		case a == "drop":
			drop = true
		case strings.HasPrefix(a, "file="):
			path = strings.TrimPrefix(a, "file=")
		default:
			return nil, fmt.Errorf("clients: memtrace takes file=PATH or drop, given %q", a)
		}
	}
	if !drop {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("clients: memtrace: %w", err)
		}
		mt.out, mt.w, mt.path = f, bufio.NewWriterSize(f, 1<<20), path
		if _, err := mt.w.WriteString(MemtraceMagic); err != nil {
			f.Close()
			return nil, fmt.Errorf("clients: memtrace: %w", err)
		}
		mt.bytes = uint64(len(MemtraceMagic))
	}
	buf := jit.NewTraceBuffer(mt.flush)
	c := &jit.Client{Block: func(b *jit.Block) {
		for i := range b.Len() {
			in := b.Instr(i)
			refs := in.MemRefs()
			if refs == nil {
				if in.OperandsErr() != nil && in.HasMemOperand() {
					mt.mu.Lock()
					mt.uncovered++
					mt.mu.Unlock()
				}
				continue
			}
			rep := strings.HasPrefix(in.Mnemonic(), "rep")
			for k, ref := range refs {
				if ref.AddressOnly || ref.Size == 0 || ref.Seg == jit.SegGS {
					continue
				}
				var flags byte
				if ref.Read {
					flags |= memRead
				}
				if ref.Write {
					flags |= memWrite
				}
				if rep && ref.Implicit {
					flags |= memRepeat
				}
				site := mt.site(in.PC(), k, uint64(ref.Size), flags, false)
				if flags&memRepeat != 0 {
					count := mt.site(in.PC(), -1-k, 0, 0, true)
					mt.mu.Lock()
					mt.sites[site].countedBy = count
					mt.mu.Unlock()
					b.RecordAddr(i, buf, jit.RCX, 0, count)
				}
				b.RecordRef(i, buf, ref, site)
			}
		}
	}}
	return &Tool{Name: "memtrace", Client: c, Report: mt.report, state: mt}, nil
}

// site returns the number of reference ref of the instruction at pc.
func (mt *memtrace) site(pc uintptr, ref int, size uint64, flags byte, count bool) uint32 {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	k := memSiteKey{pc, ref}
	if id, ok := mt.siteOf[k]; ok {
		return id
	}
	id := uint32(len(mt.sites))
	mt.sites = append(mt.sites, memSite{pc: pc, size: size, flags: flags, count: count})
	var kind byte
	if count {
		kind |= memKindCount
	}
	if flags&memRepeat != 0 {
		kind |= memKindRepeat
	}
	mt.kinds = append(mt.kinds, kind)
	mt.tally = append(mt.tally, memTally{})
	mt.siteOf[k] = id
	return id
}

// flush counts a thread's records and writes them as a chunk.
func (mt *memtrace) flush(t *jit.Thread, recs []jit.TraceRecord) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mt.records += uint64(len(recs))
	tally := mt.tally
	for _, r := range recs {
		c := &tally[r.Tag]
		c.n++
		c.sum += r.Addr
	}
	if mt.w == nil {
		return
	}
	if need := len(recs) * memMaxEntry; cap(mt.chunk) < need {
		mt.chunk = make([]byte, need)
	}
	p := mt.chunk[:cap(mt.chunk)]
	kinds := mt.kinds
	i := 0
	var prev uint64
	count := uint64(1)
	for _, r := range recs {
		k := kinds[r.Tag]
		if k&memKindCount != 0 {
			count = r.Addr
			continue
		}
		if k&memKindDefined == 0 {
			kinds[r.Tag] |= memKindDefined
			s := &mt.sites[r.Tag]
			i += binary.PutUvarint(p[i:], uint64(r.Tag)<<1|1)
			i += binary.PutUvarint(p[i:], uint64(s.pc))
			i += binary.PutUvarint(p[i:], s.size)
			p[i] = s.flags
			i++
		}
		i += binary.PutUvarint(p[i:], uint64(r.Tag)<<1)
		i += binary.PutVarint(p[i:], int64(r.Addr-prev))
		prev = r.Addr
		if k&memKindRepeat != 0 {
			i += binary.PutUvarint(p[i:], count)
			count = 1
		}
	}
	p = p[:i]
	if len(p) == 0 || mt.err != nil {
		return
	}
	var h [1 + 2*binary.MaxVarintLen64]byte
	hb := append(h[:0], 'T')
	hb = binary.AppendUvarint(hb, uint64(t.TID))
	hb = binary.AppendUvarint(hb, uint64(len(p)))
	if _, err := mt.w.Write(hb); err != nil {
		mt.err = err
		return
	}
	if _, err := mt.w.Write(p); err != nil {
		mt.err = err
		return
	}
	mt.bytes += uint64(len(hb) + len(p))
}

func (mt *memtrace) report(w io.Writer) error {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if mt.w != nil {
		if err := mt.w.Flush(); err != nil && mt.err == nil {
			mt.err = err
		}
		if err := mt.out.Close(); err != nil && mt.err == nil {
			mt.err = err
		}
		mt.w = nil
	}
	if mt.err != nil {
		return fmt.Errorf("clients: memtrace: writing %s: %w", mt.path, mt.err)
	}
	var loads, stores, accesses uint64
	for id, s := range mt.sites {
		if s.count {
			continue
		}
		n := mt.tally[id].n
		if s.flags&memRepeat != 0 {
			n = mt.tally[s.countedBy].sum
		}
		accesses += n
		if s.flags&memRead != 0 {
			loads += n
		}
		if s.flags&memWrite != 0 {
			stores += n
		}
	}
	return writeJSON(w, struct {
		Client    string `json:"client"`
		Loads     uint64 `json:"loads"`
		Stores    uint64 `json:"stores"`
		Accesses  uint64 `json:"accesses"`
		Records   uint64 `json:"records"`
		Sites     int    `json:"sites"`
		Uncovered uint64 `json:"uncovered"`
		File      string `json:"file,omitempty"`
		Bytes     uint64 `json:"file_bytes"`
	}{"memtrace", loads, stores, accesses, mt.records, len(mt.sites), mt.uncovered, mt.path, mt.bytes})
}

// MemAccess is one access of a memtrace file.
type MemAccess struct {
	// TID is the thread that made it.
	TID int
	// PC is the instruction's address.
	PC uintptr
	// Addr and Size are the memory accessed.
	Addr uintptr
	Size int
	// Read and Write say how (both for a read-and-write reference).
	Read, Write bool
}

// ReadMemtrace reads a memtrace file from r and calls fn with each access
// in the file's order (each thread's in the order the thread made them),
// a repeated one once per iteration.
func ReadMemtrace(r io.Reader, fn func(MemAccess) error) error {
	br := bufio.NewReader(r)
	var magic [len(MemtraceMagic)]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil || string(magic[:]) != MemtraceMagic {
		return fmt.Errorf("clients: not a memtrace file (no %q)", MemtraceMagic)
	}
	sites := map[uint64]memSite{}
	var payload []byte
	for {
		t, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t != 'T' {
			return fmt.Errorf("clients: memtrace: a chunk opens with %#x, not 'T'", t)
		}
		tid, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("clients: memtrace: a chunk's thread: %w", err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil || n > 1<<30 {
			return fmt.Errorf("clients: memtrace: a chunk's length: %v", err)
		}
		payload = append(payload[:0], make([]byte, n)...)
		if _, err := io.ReadFull(br, payload); err != nil {
			return fmt.Errorf("clients: memtrace: a chunk of %d bytes: %w", n, err)
		}
		if err := readChunk(int(tid), payload, sites, fn); err != nil {
			return err
		}
	}
}

// errMemtraceShort is a chunk that ends inside an entry.
var errMemtraceShort = errors.New("clients: memtrace: a chunk ends inside an entry")

func readChunk(tid int, p []byte, sites map[uint64]memSite, fn func(MemAccess) error) error {
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, errMemtraceShort
		}
		p = p[n:]
		return v, nil
	}
	var prev uint64
	for len(p) > 0 {
		x, err := uv()
		if err != nil {
			return err
		}
		id := x >> 1
		if x&1 == 1 {
			pc, err := uv()
			if err != nil {
				return err
			}
			size, err := uv()
			if err != nil {
				return err
			}
			if len(p) == 0 || size > 1<<16 {
				return errMemtraceShort
			}
			sites[id] = memSite{pc: uintptr(pc), size: size, flags: p[0]}
			p = p[1:]
			continue
		}
		s, ok := sites[id]
		if !ok {
			return fmt.Errorf("clients: memtrace: an access at site %d, not defined", id)
		}
		d, n := binary.Varint(p)
		if n <= 0 {
			return errMemtraceShort
		}
		p = p[n:]
		addr := prev + uint64(d)
		prev = addr
		count := uint64(1)
		if s.flags&memRepeat != 0 {
			if count, err = uv(); err != nil {
				return err
			}
		}
		for k := uint64(0); k < count; k++ {
			a := MemAccess{TID: tid, PC: s.pc, Addr: uintptr(addr + k*s.size), Size: int(s.size), Read: s.flags&memRead != 0, Write: s.flags&memWrite != 0}
			if err := fn(a); err != nil {
				return err
			}
		}
	}
	return nil
}
