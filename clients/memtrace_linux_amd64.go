package clients

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// memtrace records every load and store the program makes: a record
// (jit.TraceBuffer, 16 bytes in the thread's buffer) before each
// instruction that accesses memory, one per reference, its tag a site
// number for the instruction's PC, size and kind of access, which Go
// learns at translation; a rep-prefixed string instruction adds a record
// of rcx, the count of its accesses. A full buffer's records are copied
// to an encoder goroutine, which writes them to a compact file (format
// below) and counts them.
//
// The file (MemtraceMagic, then chunks):
//
//	magic   "RVMTRC02"
//	chunk   'T' uvarint(tid) len payload[len], len 4 bytes little-endian
//	payload entries, each one uvarint x:
//	  x odd:  a site defined: id = x>>1, then uvarint(pc), uvarint(size),
//	          one byte of flags (1 read, 2 write, 4 repeated)
//	  x even: an access at site x>>1: varint(address minus the chunk's
//	          previous access address, which starts at 0), and for a
//	          repeated site uvarint(count): count accesses at address,
//	          address+size, ... (a string instruction's iterations, the
//	          direction flag taken as clear)
//
// The integers are prefix varints, not LEB128's: the count of trailing
// zero bits of the first byte, plus one, is the length n (1 to 8 bytes),
// and the value is the n bytes, little-endian, shifted right by n: 7n
// bits. A first byte of zero is followed by the value in 8 bytes. A
// varint is a uvarint of the zigzag encoding (0, -1, 1, -2... as 0, 1,
// 2, 3...). Unlike LEB128's, a value is written with one shift and one
// store, whatever its length: the encoder is what bounds a trace's speed
// (BenchmarkMemtraceEncode).
//
// A site is defined in a file before its first access. A
// read-and-write reference (add [m], r) is one access, both a load and
// a store. ReadMemtrace reads the file back.
type memtrace struct {
	mu sync.Mutex
	// sites are the sites, by number.
	sites  []memSite
	siteOf map[memSiteKey]uint32
	// code is, by site number, what the encoder needs of the site in
	// one word: the site's access tag, uvarint(id<<1), in bits 0 to 31
	// (little-endian, as the file has it) and its length in bits 32 to
	// 39, and the memCode* bits above that send a record to the
	// encoder's slow path. A record of a plain site already defined in
	// the file, the common one, takes neither a branch nor a loop.
	code []uint64
	// tally is, by site number, what the site's records add up to;
	// loads, stores and accesses are made from it at the report, so
	// that the encoder does no more per record than an add (a record's
	// kind of access is the site's, known once).
	tally []memTally
	// The counts: records, and references of instructions the decoder
	// does not cover (not traced).
	records, uncovered uint64

	// The file, nil when the records are dropped. Once the encoder has
	// started, out, obuf, bytes and err are its own until it is done.
	//
	// out is the trace file and path its name; obuf holds the chunks
	// not yet written (encoded in place: no copy), written when it
	// holds memFileBuffer bytes; bytes counts what was written, err is
	// the first write's error.
	out   *os.File
	path  string
	obuf  []byte
	bytes uint64
	err   error
	// enc is the encoder, which writes the file on a goroutine of its
	// own; nil when the records are dropped.
	enc *memEncoder
}

// memTally is one site's records, as the flushes saw them.
type memTally struct {
	// n is the site's records; sum the sum of their addresses, which
	// for a count site (memSite.count) is the sum of the counts: its
	// repeated site's accesses.
	n, sum uint64
}

// MemtraceMagic opens a memtrace file.
const MemtraceMagic = "RVMTRC02"

// Site flags.
const (
	memRead   = 1
	memWrite  = 2
	memRepeat = 4
)

// The bits of memtrace.code above the tag: the site is not yet defined
// in the file, is a count site (memSite.count), is repeated (memRepeat),
// has a tag longer than 4 bytes (past 2^27 sites).
const (
	memCodeUndefined = 1 << (40 + iota)
	memCodeCount
	memCodeRepeat
	memCodeWide
	memCodeSlow = memCodeUndefined | memCodeCount | memCodeRepeat | memCodeWide
)

// memMaxVarint is the longest varint of the file.
const memMaxVarint = 9

// memMaxEntry bounds the bytes one record adds to a chunk: a site's
// definition (id, pc, size, flags) and its access (id, address delta,
// count).
const memMaxEntry = 6*memMaxVarint + 1

// memChunkHead bounds a chunk's header: 'T', the thread, the length.
const memChunkHead = 1 + memMaxVarint + 4

// memFileBuffer is how many bytes of chunks the encoder gathers before
// it writes them.
const memFileBuffer = 1 << 20

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
	mt := &memtrace{siteOf: map[memSiteKey]uint32{}}
	if !drop {
		var err error
		if mt, err = newMemtraceFile(path); err != nil {
			return nil, err
		}
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
	c.ThreadExit = mt.threadExit
	return &Tool{Name: "memtrace", Client: c, Report: mt.report, state: mt}, nil
}

// newMemtraceFile returns a memtrace with no sites that writes its trace
// to a new file at path, its encoder started.
func newMemtraceFile(path string) (*memtrace, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("clients: memtrace: %w", err)
	}
	mt := &memtrace{siteOf: map[memSiteKey]uint32{}, out: f, path: path,
		obuf: append(make([]byte, 0, memFileBuffer), MemtraceMagic...)}
	mt.startEncoder()
	return mt, nil
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
	code := uint64(memCodeUndefined)
	if count {
		code |= memCodeCount
	}
	if flags&memRepeat != 0 {
		code |= memCodeRepeat
	}
	var tag [memMaxVarint + 8]byte
	if n := putUvarint(tag[:], uint64(id)<<1); n <= 4 {
		code |= uint64(binary.LittleEndian.Uint32(tag[:4])) | uint64(n)<<32
	} else {
		code |= memCodeWide
	}
	mt.code = append(mt.code, code)
	mt.tally = append(mt.tally, memTally{})
	mt.siteOf[k] = id
	return id
}

// flush takes a thread's full buffer: with a file, the records are
// copied to the thread's stage, handed to the encoder when it holds
// memBatch records (so that the encoder is woken once for many buffers:
// a wake-up per buffer cost the thread as much as the copy), which waits
// only when memInFlight stages are already queued; without a file, the
// records are counted here.
func (mt *memtrace) flush(t *jit.Thread, recs []jit.TraceRecord) {
	if e := mt.enc; e != nil {
		st, _ := t.Data.(*memStage)
		if st == nil {
			st = &memStage{recs: e.get()}
			t.Data = st
		}
		st.recs = append(st.recs, recs...)
		if len(st.recs) >= memBatch {
			e.put(t.TID, st.recs)
			st.recs = e.get()
		}
		return
	}
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mt.records += uint64(len(recs))
	tally := mt.tally
	for _, r := range recs {
		c := &tally[r.Tag]
		c.n++
		c.sum += r.Addr
	}
}

// threadExit hands what the thread's stage holds to the encoder: the
// jit flushed the thread's buffer just before.
func (mt *memtrace) threadExit(t *jit.Thread) {
	st, ok := t.Data.(*memStage)
	switch {
	case !ok || mt.enc == nil:
	case len(st.recs) > 0:
		mt.enc.put(t.TID, st.recs)
	default:
		mt.enc.recycle(st.recs)
	}
	t.Data = nil
}

// memStage is a thread's records not yet handed to the encoder: its
// Thread.Data.
type memStage struct {
	recs []jit.TraceRecord
}

// memEncoder encodes and writes the trace on a goroutine of its own, so
// that a thread whose buffer filled pays for a copy of its records, not
// for their encoding and the file's write: where a core is free, a trace
// costs the program little more than the recording (DynamoRIO's
// memtrace sample writes on the thread, inline).
type memEncoder struct {
	// queue carries the threads' stages to the encoder, each thread's
	// in its order.
	queue chan memQueued
	// mu guards the pool of stages: free, those the encoder gave back;
	// made, how many there are; queued, how many are with the encoder.
	// given is signalled when the encoder gives one back.
	mu     sync.Mutex
	given  sync.Cond
	free   [][]jit.TraceRecord
	made   int
	queued int
	// done is closed when the encoder has written everything queued
	// before the queue's close; once closes the queue.
	done chan struct{}
	once sync.Once
}

// memQueued is a stage handed to the encoder, and its thread.
type memQueued struct {
	tid  int
	recs []jit.TraceRecord
}

// memBatch is how many records a stage gathers before it is handed to
// the encoder (256 KiB); memInFlight how many stages may wait for the
// encoder before a thread waits, enough to ride out a write that waits
// on the disk; memStages how many stages there are once the encoder has
// some: the stages a short run touches are pages that fault in (64 a
// stage, 0.5 ms here), and a long one whose encoder is the slower waits
// for them (k_fib with three: 10% slower than with six).
const (
	memBatch    = 16 << 10
	memInFlight = 4
	memStages   = 6
)

// get returns an empty stage: one the encoder gave back, else a new one
// while there are fewer than memStages, else the next one the encoder
// gives back. It waits only while the encoder has some, which it will
// give back: a stage a thread holds may never come, as its thread may
// wait on the one that waits here.
func (e *memEncoder) get() []jit.TraceRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if n := len(e.free); n > 0 {
			b := e.free[n-1]
			e.free = e.free[:n-1]
			return b
		}
		if e.made < memStages || e.queued == 0 {
			e.made++
			// One buffer past the batch: the append that
			// reaches it does not grow it.
			return make([]jit.TraceRecord, 0, memBatch+4096)
		}
		e.given.Wait()
	}
}

// put hands thread tid's stage recs to the encoder.
func (e *memEncoder) put(tid int, recs []jit.TraceRecord) {
	e.mu.Lock()
	e.queued++
	e.mu.Unlock()
	e.queue <- memQueued{tid: tid, recs: recs}
}

// release takes back a stage the encoder is done with. Every waiter
// looks again: one takes it, and the others make their own if it was
// the encoder's last.
func (e *memEncoder) release(recs []jit.TraceRecord) {
	e.mu.Lock()
	e.free = append(e.free, recs[:0])
	e.queued--
	e.given.Broadcast()
	e.mu.Unlock()
}

// recycle takes back the empty stage of a thread that ended.
func (e *memEncoder) recycle(recs []jit.TraceRecord) {
	e.mu.Lock()
	e.free = append(e.free, recs[:0])
	e.given.Broadcast()
	e.mu.Unlock()
}

// startEncoder starts mt's encoder on the file mt.out.
func (mt *memtrace) startEncoder() {
	e := &memEncoder{queue: make(chan memQueued, memInFlight), done: make(chan struct{})}
	e.given.L = &e.mu
	mt.enc = e
	go func() {
		defer close(e.done)
		for b := range e.queue {
			// In chunks of a thread buffer's records at most: the
			// file buffer's room for one is bounded.
			count := uint64(1)
			for recs := b.recs; len(recs) > 0; recs = recs[min(len(recs), 4096):] {
				mt.mu.Lock()
				mt.records += uint64(min(len(recs), 4096))
				count = mt.encodeLocked(b.tid, recs[:min(len(recs), 4096)], count)
				mt.mu.Unlock()
				if len(mt.obuf) >= memFileBuffer {
					// No lock while the write waits on the disk.
					mt.writeOut()
				}
			}
			e.release(b.recs)
		}
	}()
}

// stopEncoder writes what is queued and ends the encoder.
func (mt *memtrace) stopEncoder() {
	if e := mt.enc; e != nil {
		e.once.Do(func() { close(e.queue) })
		<-e.done
	}
}

// writeOut writes the chunks gathered in mt.obuf to the file.
func (mt *memtrace) writeOut() {
	if len(mt.obuf) > 0 && mt.err == nil {
		n, err := mt.out.Write(mt.obuf)
		mt.bytes += uint64(n)
		mt.err = err
	}
	mt.obuf = mt.obuf[:0]
}

// encodeLocked appends recs, thread tid's records in order, to mt.obuf as
// a chunk, and tallies them. count is the count a count record just
// before recs left for the repeated site's record (1 if none), and it
// returns what recs leave: the chunks of one stage may part the two.
//
// Preconditions: mt.mu is held.
func (mt *memtrace) encodeLocked(tid int, recs []jit.TraceRecord, count uint64) uint64 {
	// 8 bytes of slack: a varint is one 8-byte store whatever its
	// length, the tag one 4-byte store.
	need := memChunkHead + len(recs)*memMaxEntry + 8
	if cap(mt.obuf)-len(mt.obuf) < need {
		mt.obuf = append(make([]byte, 0, max(2*cap(mt.obuf), len(mt.obuf)+need)), mt.obuf...)
	}
	start := len(mt.obuf)
	p := mt.obuf[:cap(mt.obuf)]
	p[start] = 'T'
	i := start + 1 + putUvarint(p[start+1:], uint64(tid))
	body := i + 4
	i = body
	code, tally := mt.code, mt.tally
	var prev uint64
	for len(recs) > 0 {
		var n int
		i, n, prev = plainEncoder(p, i, recs, code, tally, prev)
		if recs = recs[n:]; len(recs) == 0 {
			break
		}
		r := recs[0]
		recs = recs[1:]
		c := code[r.Tag]
		tally[r.Tag].n++
		if c&memCodeCount != 0 {
			tally[r.Tag].sum += r.Addr
			count = r.Addr
			continue
		}
		if c&memCodeUndefined != 0 {
			code[r.Tag] &^= memCodeUndefined
			s := &mt.sites[r.Tag]
			i += putUvarint(p[i:], uint64(r.Tag)<<1|1)
			i += putUvarint(p[i:], uint64(s.pc))
			i += putUvarint(p[i:], s.size)
			p[i] = s.flags
			i++
		}
		i += putUvarint(p[i:], uint64(r.Tag)<<1)
		i += putUvarint(p[i:], zigzag(r.Addr-prev))
		prev = r.Addr
		if c&memCodeRepeat != 0 {
			i += putUvarint(p[i:], count)
			count = 1
		}
	}
	if i > body {
		binary.LittleEndian.PutUint32(p[body-4:], uint32(i-body))
		mt.obuf = p[:i]
	}
	return count
}

// plainEncoder is the loop encodeLocked runs: encodePlain in assembly
// (encodePlain itself in BenchmarkMemtraceEncode's baseline).
var plainEncoder = func(p []byte, i int, recs []jit.TraceRecord, code []uint64, tally []memTally, prev uint64) (int, int, uint64) {
	if len(recs) == 0 || len(code) == 0 || len(tally) < len(code) || len(p)-i < len(recs)*memMaxEntry+8 {
		return encodePlain(p, i, recs, code, tally, prev)
	}
	return encodePlainAsm(&p[0], i, &recs[0], len(recs), &code[0], len(code), &tally[0], prev)
}

// encodePlainAsm is encodePlain in assembly (memtrace_linux_amd64.s).
// p must have room for memMaxEntry bytes a record and 8 more past i;
// tally as many entries as code.
//
//go:noescape
func encodePlainAsm(p *byte, i int, recs *jit.TraceRecord, n int, code *uint64, ncode int, tally *memTally, prev uint64) (end int, took int, last uint64)

// encodePlain encodes records from the start of recs into p at i for as
// long as they are of plain sites already defined (the common record:
// a tag and an address delta, one store each) and tallies them. It
// returns where the payload ends, how many records it took and the
// last one's address.
func encodePlain(p []byte, i int, recs []jit.TraceRecord, code []uint64, tally []memTally, prev uint64) (int, int, uint64) {
	for k, r := range recs {
		c := code[r.Tag]
		if c&memCodeSlow != 0 {
			return i, k, prev
		}
		tally[r.Tag].n++
		binary.LittleEndian.PutUint32(p[i:], uint32(c))
		i += int(c>>32) & 0xff
		// putUvarint, by hand: the compiler does not inline it.
		u := zigzag(r.Addr - prev)
		prev = r.Addr
		if u >= 1<<56 {
			i += putUvarint(p[i:], u)
			continue
		}
		n := varintLen[bits.Len64(u)]
		binary.LittleEndian.PutUint64(p[i:], u<<n|1<<(n-1))
		i += int(n)
	}
	return i, len(recs), prev
}

// zigzag maps a difference of addresses, taken as signed, to a uvarint's
// value: 0, -1, 1, -2... as 0, 1, 2, 3...
func zigzag(d uint64) uint64 {
	return d<<1 ^ uint64(int64(d)>>63)
}

// putUvarint stores u as the file's uvarint at p, which has 8 bytes of
// room past the varint (its bytes past the varint's end are garbage the
// next store overwrites), and returns its length.
func putUvarint(p []byte, u uint64) int {
	if u >= 1<<56 {
		p[0] = 0
		binary.LittleEndian.PutUint64(p[1:], u)
		return memMaxVarint
	}
	n := varintLen[bits.Len64(u)]
	binary.LittleEndian.PutUint64(p, u<<n|1<<(n-1))
	return int(n)
}

// uvarint reads a uvarint of the file at the start of p and returns it
// and its length, or a length of 0 if p ends inside it.
func uvarint(p []byte) (uint64, int) {
	if len(p) == 0 {
		return 0, 0
	}
	if p[0] == 0 {
		if len(p) < memMaxVarint {
			return 0, 0
		}
		return binary.LittleEndian.Uint64(p[1:]), memMaxVarint
	}
	n := bits.TrailingZeros8(p[0]) + 1
	if len(p) < n {
		return 0, 0
	}
	var b [8]byte
	copy(b[:], p[:n])
	return binary.LittleEndian.Uint64(b[:]) >> n, n
}

// varintLen is, by the bit length of a value below 2^56, the length of
// its uvarint: 7 bits a byte.
var varintLen = func() (l [57]uint8) {
	for b := range l {
		l[b] = uint8(max(1, (b+6)/7))
	}
	return l
}()

func (mt *memtrace) report(w io.Writer) error {
	mt.stopEncoder()
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if mt.out != nil {
		mt.writeOut()
		if err := mt.out.Close(); err != nil && mt.err == nil {
			mt.err = err
		}
		mt.out = nil
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
		tid, err := readUvarint(br)
		if err != nil {
			return fmt.Errorf("clients: memtrace: a chunk's thread: %w", err)
		}
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return fmt.Errorf("clients: memtrace: a chunk's length: %w", err)
		}
		n := binary.LittleEndian.Uint32(l[:])
		if n > 1<<30 {
			return fmt.Errorf("clients: memtrace: a chunk of %d bytes (at most 1 GiB)", n)
		}
		// Grown as the bytes come: a length the file does not hold
		// costs no more than the file.
		payload = payload[:0]
		for len(payload) < int(n) {
			k := min(int(n)-len(payload), 1<<16)
			payload = slices.Grow(payload, k)
			m, err := io.ReadFull(br, payload[len(payload):len(payload)+k])
			if payload = payload[:len(payload)+m]; err != nil {
				return fmt.Errorf("clients: memtrace: a chunk of %d bytes: %w", n, err)
			}
		}
		if err := readChunk(int(tid), payload, sites, fn); err != nil {
			return err
		}
	}
}

// readUvarint reads a uvarint of the file from br.
func readUvarint(br *bufio.Reader) (uint64, error) {
	first, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	n := bits.TrailingZeros8(first) + 1
	if first == 0 {
		n = memMaxVarint
	}
	var b [memMaxVarint]byte
	b[0] = first
	if _, err := io.ReadFull(br, b[1:n]); err != nil {
		return 0, io.ErrUnexpectedEOF
	}
	v, _ := uvarint(b[:n])
	return v, nil
}

// errMemtraceShort is a chunk that ends inside an entry.
var errMemtraceShort = errors.New("clients: memtrace: a chunk ends inside an entry")

func readChunk(tid int, p []byte, sites map[uint64]memSite, fn func(MemAccess) error) error {
	uv := func() (uint64, error) {
		v, n := uvarint(p)
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
		u, err := uv()
		if err != nil {
			return err
		}
		// The zigzag encoding undone.
		addr := prev + (u>>1 ^ -(u & 1))
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
