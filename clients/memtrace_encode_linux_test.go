//go:build linux && amd64

package clients

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/reachvm/reachvm/jit"
)

// TestVarint: the file's uvarints, byte for byte at each length's
// edges, and read back as written at every length.
func TestVarint(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{
		{0, "01"},
		{1, "03"},
		{127, "ff"},
		{128, "0202"},
		{1<<14 - 1, "feff"},
		{1 << 14, "040002"},
		{1<<56 - 1, "80ffffffffffffff"},
		{1 << 56, "000000000000000001"},
		{math.MaxUint64, "00ffffffffffffffff"},
	} {
		var p [memMaxVarint + 8]byte
		n := putUvarint(p[:], tc.v)
		if got := hex.EncodeToString(p[:n]); got != tc.hex {
			t.Errorf("putUvarint(%#x) = %s, want %s", tc.v, got, tc.hex)
		}
	}
	vs := []uint64{math.MaxUint64}
	for b := range 64 {
		vs = append(vs, 1<<b-1, 1<<b, 1<<b+1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vs = append(vs, r.Uint64()>>r.IntN(64))
	}
	for _, v := range vs {
		var p [memMaxVarint + 8]byte
		n := putUvarint(p[:], v)
		if want := min(memMaxVarint, max(1, (bits.Len64(v)+6)/7)); n != want && !(n == memMaxVarint && v >= 1<<56) {
			t.Fatalf("putUvarint(%#x) took %d bytes, want %d", v, n, want)
		}
		if got, m := uvarint(p[:n]); got != v || m != n {
			t.Fatalf("uvarint(putUvarint(%#x)) = %#x, %d bytes; want %d", v, got, m, n)
		}
		if _, m := uvarint(p[:n-1]); m != 0 {
			t.Fatalf("uvarint of %#x's first %d bytes read %d", v, n-1, m)
		}
		got, err := readUvarint(bufio.NewReader(bytes.NewReader(p[:n])))
		if got != v || err != nil {
			t.Fatalf("readUvarint(putUvarint(%#x)) = %#x, %v", v, got, err)
		}
	}
	for _, d := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		if u := zigzag(uint64(d)); u>>1^-(u&1) != uint64(d) || (d >= 0) != (u&1 == 0) {
			t.Errorf("zigzag(%d) = %d", d, u)
		}
	}
}

// TestMemtraceEncode encodes records of every kind of site (plain, read
// and write, a rep movsb's count and repeated sites, sites first seen in
// a later chunk) in chunks of two threads through the encoder, as
// flushes from two threads at once, and reads the file back: each
// thread's accesses in its order, as the records say, the last stage of
// each handed over at its exit.
func TestMemtraceEncode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace")
	mt, err := newMemtraceFile(path)
	if err != nil {
		t.Fatal(err)
	}
	load := mt.site(0x1000, 0, 8, memRead, false)
	store := mt.site(0x1004, 0, 4, memWrite, false)
	rmw := mt.site(0x1008, 0, 8, memRead|memWrite, false)
	repLoad := mt.site(0x100c, 0, 1, memRead|memRepeat, false)
	count := mt.site(0x100c, -1, 0, 0, true)
	mt.sites[repLoad].countedBy = count

	// Each thread's records: chunks of up to 4095, addresses far apart
	// and near, so that every varint length is taken.
	want := map[int][]MemAccess{}
	recs := map[int][]jit.TraceRecord{}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tid := range []int{11, 12} {
		for k := range 20000 {
			addr := uint64(0x7ffd_0000_0000) + r.Uint64N(1<<(r.IntN(47)+1))
			switch k % 7 {
			case 0, 1, 2:
				recs[tid] = append(recs[tid], jit.TraceRecord{Addr: addr, Tag: load})
				want[tid] = append(want[tid], MemAccess{TID: tid, PC: 0x1000, Addr: uintptr(addr), Size: 8, Read: true})
			case 3, 4:
				recs[tid] = append(recs[tid], jit.TraceRecord{Addr: addr, Tag: store})
				want[tid] = append(want[tid], MemAccess{TID: tid, PC: 0x1004, Addr: uintptr(addr), Size: 4, Write: true})
			case 5:
				recs[tid] = append(recs[tid], jit.TraceRecord{Addr: addr, Tag: rmw})
				want[tid] = append(want[tid], MemAccess{TID: tid, PC: 0x1008, Addr: uintptr(addr), Size: 8, Read: true, Write: true})
			case 6:
				n := uint64(k % 5)
				recs[tid] = append(recs[tid], jit.TraceRecord{Addr: n, Tag: count}, jit.TraceRecord{Addr: addr, Tag: repLoad})
				for i := range n {
					want[tid] = append(want[tid], MemAccess{TID: tid, PC: 0x100c, Addr: uintptr(addr + i), Size: 1, Read: true})
				}
			}
			if k == 10000 && tid == 12 {
				// A site first seen halfway, in a later chunk.
				late := mt.site(0x2000, 0, 2, memWrite, false)
				recs[tid] = append(recs[tid], jit.TraceRecord{Addr: 0x42, Tag: late})
				want[tid] = append(want[tid], MemAccess{TID: tid, PC: 0x2000, Addr: 0x42, Size: 2, Write: true})
			}
		}
	}
	var wg sync.WaitGroup
	for tid, rs := range recs {
		wg.Go(func() {
			th := &jit.Thread{TID: tid}
			for i := 0; i < len(rs); {
				// A count record and its repeated site's stay in
				// one flush, as the inline code's runs keep them.
				j := min(len(rs), i+4095)
				if j < len(rs) && rs[j-1].Tag == count {
					j++
				}
				mt.flush(th, rs[i:j])
				i = j
			}
			mt.threadExit(th)
		})
	}
	wg.Wait()
	var report bytes.Buffer
	if err := mt.report(&report); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[int][]MemAccess{}
	if err := ReadMemtrace(f, func(a MemAccess) error {
		got[a.TID] = append(got[a.TID], a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for tid := range want {
		if len(got[tid]) != len(want[tid]) {
			t.Fatalf("thread %d: %d accesses read back, want %d", tid, len(got[tid]), len(want[tid]))
		}
		for i := range want[tid] {
			if got[tid][i] != want[tid][i] {
				t.Fatalf("thread %d, access %d: %+v, want %+v", tid, i, got[tid][i], want[tid][i])
			}
		}
	}
	if s := report.String(); !bytes.Contains(report.Bytes(), fmt.Appendf(nil, `"accesses":%d`, len(want[11])+len(want[12]))) {
		t.Errorf("report %s", s)
	}
}

// TestEncodePlainAsm: the encoder's loop in assembly writes the bytes,
// stops at the record, tallies and returns what encodePlain does, on
// records of plain sites, sites that stop it and tags out of range,
// with addresses near and far (deltas of every varint length, the
// 9-byte one included).
func TestEncodePlainAsm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	mt := &memtrace{siteOf: map[memSiteKey]uint32{}}
	for k := range 300 {
		// One site in ten is repeated: the loop stops at it.
		mt.site(uintptr(0x1000+k), 0, 8, memRead|byte(k%10/9*memRepeat), false)
	}
	for k := range mt.code {
		if r.IntN(20) > 0 {
			mt.code[k] &^= memCodeUndefined
		}
	}
	for trial := range 2000 {
		recs := make([]jit.TraceRecord, 1+r.IntN(64))
		addr := r.Uint64()
		for k := range recs {
			switch r.IntN(4) {
			case 0:
				addr = r.Uint64()
			case 1:
				addr += uint64(r.IntN(64)) - 32
			default:
				addr += r.Uint64N(1 << r.IntN(60))
			}
			tag := uint32(r.IntN(len(mt.code)))
			if r.IntN(500) == 0 {
				tag = uint32(len(mt.code)) + uint32(r.IntN(3))
			}
			recs[k] = jit.TraceRecord{Addr: addr, Tag: tag}
		}
		start, prev := r.IntN(16), r.Uint64()
		want := make([]byte, start+len(recs)*memMaxEntry+8)
		got := slices.Clone(want)
		wantTally, gotTally := make([]memTally, len(mt.code)), make([]memTally, len(mt.code))
		wi, wk, wprev := encodePlain(want, start, recs[:plainPrefix(recs, mt.code)], mt.code, wantTally, prev)
		gi, gk, gprev := encodePlainAsm(&got[0], start, &recs[0], len(recs), &mt.code[0], len(mt.code), &gotTally[0], prev)
		if gi != wi || gk != wk || gprev != wprev || !bytes.Equal(got[:gi], want[:wi]) || !slices.Equal(gotTally, wantTally) {
			t.Fatalf("trial %d: asm ended at %d after %d records (last %#x), Go at %d after %d (%#x); bytes equal %v, tallies equal %v",
				trial, gi, gk, gprev, wi, wk, wprev, bytes.Equal(got[:gi], want[:wi]), slices.Equal(gotTally, wantTally))
		}
	}
}

// plainPrefix is how many records from the start of recs have tags in
// code: encodePlain's bounds checks would panic past them, where the
// assembly stops.
func plainPrefix(recs []jit.TraceRecord, code []uint64) int {
	for k, r := range recs {
		if int(r.Tag) >= len(code) {
			return k
		}
	}
	return len(recs)
}

// TestMemtraceStagePool: every stage comes back to the pool, the one a
// thread ends with empty (its records filled the last one exactly)
// included, so that the threads after it find stages to reuse.
func TestMemtraceStagePool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace")
	mt, err := newMemtraceFile(path)
	if err != nil {
		t.Fatal(err)
	}
	site := mt.site(0x1000, 0, 8, memRead, false)
	recs := make([]jit.TraceRecord, memBatch)
	for i := range recs {
		recs[i] = jit.TraceRecord{Addr: uint64(i * 8), Tag: site}
	}
	for tid := range 3 {
		th := &jit.Thread{TID: 100 + tid}
		for i := 0; i < len(recs); i += 4096 {
			mt.flush(th, recs[i:min(len(recs), i+4096)])
		}
		mt.threadExit(th)
	}
	if err := mt.report(io.Discard); err != nil {
		t.Fatal(err)
	}
	e := mt.enc
	if len(e.free) != e.made || e.queued != 0 {
		t.Errorf("%d stages made, %d back in the pool, %d with the encoder: want every one back", e.made, len(e.free), e.queued)
	}
	if mt.records != 3*memBatch {
		t.Errorf("%d records encoded, want %d", mt.records, 3*memBatch)
	}
}
