package aspacem

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

const P = 0x1000

func committed(start, end uintptr, prot mem.Prot) mem.Region {
	return mem.Region{Start: start, End: end, State: mem.StateCommitted, Type: mem.TypePrivate, Prot: prot}
}

func fileRegion(start, end uintptr, prot mem.Prot, name string, off uint64, shared bool) mem.Region {
	return mem.Region{Start: start, End: end, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: prot, Name: name, Offset: off, Shared: shared}
}

func TestSyncCheckRules(t *testing.T) {
	const B = 0x1000_0000
	tests := []struct {
		name    string
		windows bool
		segs    []Segment
		regions []mem.Region
		want    []Mismatch
	}{
		{
			name: "agree, kernel merged two owned segments",
			segs: []Segment{
				{Start: B, End: B + 2*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"},
				{Start: B + 2*P, End: B + 4*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "fcache"},
			},
			regions: []mem.Region{committed(B, B+4*P, mem.ProtRW)},
		},
		{
			name: "agree, kernel split one segment",
			segs: []Segment{{Start: B, End: B + 4*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Offset: 0x2000}},
			regions: []mem.Region{
				fileRegion(B, B+P, mem.ProtRead, "/lib/x.so", 0x2000, false),
				fileRegion(B+P, B+4*P, mem.ProtRead, "/lib/x.so", 0x3000, false),
			},
		},
		{
			name:    "reservation equals PROT_NONE anon on Linux",
			segs:    []Segment{{Start: B, End: B + 4*P, Kind: KindReservation, Owner: "vmcode"}, {Start: B + 4*P, End: B + 8*P, Kind: KindAnon, Owner: "vmcode"}},
			regions: []mem.Region{{Start: B, End: B + 4*P, State: mem.StateCommitted, Type: mem.TypePrivate}, {Start: B + 4*P, End: B + 8*P, State: mem.StateReserved, Type: mem.TypePrivate}},
		},
		{
			name:    "reservation differs from committed no-access on Windows",
			windows: true,
			segs:    []Segment{{Start: B, End: B + 4*P, Kind: KindReservation, Owner: "vmcode"}},
			regions: []mem.Region{{Start: B, End: B + P, State: mem.StateReserved, Type: mem.TypePrivate}, {Start: B + P, End: B + 4*P, State: mem.StateCommitted, Type: mem.TypePrivate}},
			want:    []Mismatch{{What: "kernel maps anon where aspacem has a reservation", Start: B + P, End: B + 4*P, Expected: "a reservation ---", Found: "anon ---"}},
		},
		{
			name: "hole and protection, coalesced across segments",
			segs: []Segment{
				{Start: B, End: B + 2*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"},
				{Start: B + 2*P, End: B + 4*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "fcache"},
				{Start: B + 4*P, End: B + 6*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"},
			},
			regions: []mem.Region{committed(B, B+P, mem.ProtRW), committed(B+P, B+3*P, mem.ProtRead), committed(B+5*P, B+6*P, mem.ProtRW)},
			want: []Mismatch{
				{What: "protection differs", Start: B + P, End: B + 3*P, Expected: "rw-", Found: "r--"},
				{What: "kernel has no mapping", Start: B + 3*P, End: B + 5*P, Expected: "anon rw-", Found: "free"},
			},
		},
		{
			name:    "file where anon",
			segs:    []Segment{{Start: B, End: B + 2*P, Kind: KindAnon, Prot: mem.ProtRead}},
			regions: []mem.Region{fileRegion(B, B+2*P, mem.ProtRead, "/etc/passwd", 0, false)},
			want:    []Mismatch{{What: "kernel maps a file where aspacem has anon", Start: B, End: B + 2*P, Expected: "anon r--", Found: "a file r-- /etc/passwd"}},
		},
		{
			name:    "every difference of a view at once",
			segs:    []Segment{{Start: B, End: B + 2*P, Kind: KindFile, Prot: mem.ProtRX, Name: "/lib/a.so", Offset: 0x1000, Inode: 7}},
			regions: []mem.Region{{Start: B, End: B + 2*P, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRead, Name: "/lib/b.so", Offset: 0x3000, Inode: 8}},
			want: []Mismatch{
				{What: "protection differs", Start: B, End: B + 2*P, Expected: "r-x", Found: "r--"},
				{What: "name differs", Start: B, End: B + 2*P, Expected: `"/lib/a.so"`, Found: `"/lib/b.so"`},
				{What: "offset differs", Start: B, End: B + 2*P, Expected: "0x1000", Found: "0x3000"},
				{What: "inode differs", Start: B, End: B + 2*P, Expected: "dev 0x0 inode 7", Found: "dev 0x0 inode 8"},
			},
		},
		{
			name: "memfd name, deleted suffix, relative name",
			segs: []Segment{
				{Start: B, End: B + P, Kind: KindShared, Prot: mem.ProtRX, Name: "reachvm-dual", Owner: "vmcode"},
				{Start: B + P, End: B + 2*P, Kind: KindFile, Prot: mem.ProtRead, Name: "testdata/libdemo.so"},
				{Start: B + 2*P, End: B + 3*P, Kind: KindShared, Prot: mem.ProtRW, Owner: "vmcode"},
			},
			regions: []mem.Region{
				fileRegion(B, B+P, mem.ProtRX, "/memfd:reachvm-dual (deleted)", 0, true),
				fileRegion(B+P, B+2*P, mem.ProtRead, "/home/u/reachvm/testdata/libdemo.so", 0, false),
				fileRegion(B+2*P, B+3*P, mem.ProtRW, "/memfd:anything (deleted)", 0, true),
			},
		},
		{
			name:    "memfd name differs",
			segs:    []Segment{{Start: B, End: B + P, Kind: KindShared, Prot: mem.ProtRX, Name: "reachvm-dual"}},
			regions: []mem.Region{fileRegion(B, B+P, mem.ProtRX, "/memfd:other (deleted)", 0, true)},
			want:    []Mismatch{{What: "name differs", Start: B, End: B + P, Expected: `"reachvm-dual"`, Found: `"/memfd:other (deleted)"`}},
		},
		{
			name:    "private view where shared expected",
			segs:    []Segment{{Start: B, End: B + P, Kind: KindShared, Prot: mem.ProtRX, Name: "dual"}},
			regions: []mem.Region{fileRegion(B, B+P, mem.ProtRX, "/memfd:dual (deleted)", 0, false)},
			want:    []Mismatch{{What: "kernel maps a file where aspacem has a shared object", Start: B, End: B + P, Expected: "a shared object r-x dual", Found: "a file r-x /memfd:dual (deleted)"}},
		},
		{
			name:    "Windows names fold case, drive letters, nameless sections, no offsets",
			windows: true,
			segs: []Segment{
				{Start: B, End: B + P, Kind: KindFile, Prot: mem.ProtRead, Name: `C:\Lib\Demo.DLL`, Offset: 0x1000},
				{Start: B + P, End: B + 2*P, Kind: KindShared, Prot: mem.ProtRX, Name: "reachvm-dual"},
				{Start: B + 2*P, End: B + 3*P, Kind: KindFile, Prot: mem.ProtRead, Name: `C:\lib\other.dll`},
			},
			regions: []mem.Region{
				fileRegion(B, B+P, mem.ProtRead, `\Device\HarddiskVolume3\lib\demo.dll`, 0, false),
				fileRegion(B+P, B+2*P, mem.ProtRX, "", 0, true),
				fileRegion(B+2*P, B+3*P, mem.ProtRead, `C:\LIB\OTHER.DLL`, 0, false),
			},
		},
		{
			name: "offset deltas coalesce only when equal",
			segs: []Segment{{Start: B, End: B + 3*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/f"}},
			regions: []mem.Region{
				fileRegion(B, B+2*P, mem.ProtRead, "/f", 0x10000, false),
				fileRegion(B+2*P, B+3*P, mem.ProtRead, "/f", 0x20000, false),
			},
			want: []Mismatch{
				{What: "offset differs", Start: B, End: B + 2*P, Expected: "0x0", Found: "0x10000"},
				{What: "offset differs", Start: B + 2*P, End: B + 3*P, Expected: "0x2000", Found: "0x20000"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeLinux()
			if tt.windows {
				f = newFakeWindows()
			}
			m, err := New(ConfigFor(f))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.segs {
				mustUpdate(t, m, s)
			}
			f.regions = tt.regions
			got, err := m.SyncCheck(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SyncCheck:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSyncCheckNothingOwned(t *testing.T) {
	f := newFakeLinux()
	f.regions = []mem.Region{committed(0x400000, 0x500000, mem.ProtRX)}
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	calls := f.regCalls
	if got, err := m.SyncCheck(f); got != nil || err != nil {
		t.Fatalf("SyncCheck with nothing owned = %v, %v", got, err)
	}
	if f.regCalls != calls {
		t.Fatal("SyncCheck read the kernel with nothing to check")
	}
	mustUpdate(t, m, Segment{Start: 0x600000, End: 0x601000, Kind: KindReservation})
	f.err = errors.New("no /proc")
	if _, err := m.SyncCheck(f); err == nil || !strings.Contains(err.Error(), "no /proc") {
		t.Fatalf("SyncCheck with failing OS: %v", err)
	}
	mm := Mismatch{What: "protection differs", Start: 0x1000, End: 0x2000, Expected: "rw-", Found: "r--"}
	if s := mm.String(); s != "[0x1000-0x2000) protection differs: aspacem has rw-, kernel has r--" {
		t.Fatalf("Mismatch.String() = %q", s)
	}
}

// TestSyncCheckSim drives the simulator under both rules through a
// reserve/commit/protect/map sequence, records each step with Update, and
// expects SyncCheck to agree; then it changes the simulator behind
// aspacem's back and expects exactly the mismatch that change makes.
func TestSyncCheckSim(t *testing.T) {
	for _, rules := range []mem.Rules{mem.RulesLinux, mem.RulesWindows} {
		t.Run(rules.String(), func(t *testing.T) {
			os := sim.New(rules, sim.Options{})
			m, err := Load(os)
			if err != nil {
				t.Fatal(err)
			}
			check := func(want ...Mismatch) {
				t.Helper()
				if err := m.CheckInvariants(); err != nil {
					t.Fatal(err)
				}
				got, err := m.SyncCheck(os)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("SyncCheck:\n got %v\nwant %v", got, want)
				}
			}
			const size = 64 * P
			near := uintptr(0x7000_0000_0000)
			base, err := m.Advise(size, 0, near, 1<<31)
			if err != nil {
				t.Fatal(err)
			}
			if base%os.Granularity() != 0 {
				t.Fatalf("advice %#x not aligned to %#x", base, os.Granularity())
			}
			if _, err := os.Reserve(base, size, mem.Exact); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: base, End: base + size, Kind: KindReservation, Owner: "vmcode"})
			check()
			if err := os.Commit(base, 4*P, mem.ProtRW); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: base, End: base + 4*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmcode"})
			check()
			if err := os.Protect(base, P, mem.ProtRX); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: base, End: base + P, Kind: KindAnon, Prot: mem.ProtRX, Owner: "vmcode"})
			check()

			// A shared object mapped twice (W^X), elsewhere.
			obj, err := os.CreateShared("reachvm-dual", 16*P)
			if err != nil {
				t.Fatal(err)
			}
			rx, err := m.Advise(16*P, 0, base+size, 1<<31)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.MapObject(obj, 0, rx, 16*P, mem.ProtRX, mem.Exact); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: rx, End: rx + 16*P, Kind: KindShared, Prot: mem.ProtRX, Name: obj.Name(), Owner: "fcache"})
			rw, err := m.Advise(16*P, 0, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.MapObject(obj, 0, rw, 16*P, mem.ProtRW, mem.Exact); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: rw, End: rw + 16*P, Kind: KindShared, Prot: mem.ProtRW, Name: obj.Name(), Owner: "fcache rw"})
			check()

			// Behind aspacem's back: protect a page, release the view.
			if err := os.Protect(base+2*P, P, mem.ProtRead); err != nil {
				t.Fatal(err)
			}
			check(Mismatch{What: "protection differs", Start: base + 2*P, End: base + 3*P, Expected: "rw-", Found: "r--"})
			if err := os.Protect(base+2*P, P, mem.ProtRW); err != nil {
				t.Fatal(err)
			}
			if err := os.Unmap(rw, 16*P); err != nil {
				t.Fatal(err)
			}
			check(Mismatch{What: "kernel has no mapping", Start: rw, End: rw + 16*P, Expected: "a shared object rw- reachvm-dual", Found: "free"})
			mustUpdate(t, m, Segment{Start: rw, End: rw + 16*P, Kind: KindFree})
			check()

			// Release everything; a Refresh then sees the space free.
			if err := os.Unmap(rx, 16*P); err != nil {
				t.Fatal(err)
			}
			if err := os.Release(base, size); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, m, Segment{Start: rx, End: rx + 16*P, Kind: KindFree})
			mustUpdate(t, m, Segment{Start: base, End: base + size, Kind: KindFree})
			check()
			if err := m.Refresh(os); err != nil {
				t.Fatal(err)
			}
			if len(m.Owned()) != 0 {
				t.Fatalf("owned after release: %v", m.Owned())
			}
			if s, _ := m.Lookup(base); s.Kind != KindFree {
				t.Fatalf("released range is %v", s)
			}
		})
	}
}
