//go:build linux

package aspacem

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/procmaps"
	"github.com/reachvm/reachvm/mem"
)

// TestSyncCheckNative runs the sync check against the real kernel: what
// aspacem records after reserving, committing, protecting and dual-mapping
// through the native backend must match /proc/self/maps exactly; a change
// made behind aspacem's back must show as exactly the expected mismatch.
func TestSyncCheckNative(t *testing.T) {
	nat := osmem.Native()
	m, err := Load(nat)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	// The test binary's own text is foreign and named.
	exe, _ := os.Executable()
	if exe != "" && len(m.SegmentsNamed(exe)) == 0 {
		t.Logf("no segment named %q (binary may be deleted or moved)", exe)
	}
	check := func(want ...Mismatch) {
		t.Helper()
		got, err := m.SyncCheck(nat)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("SyncCheck:\n got %v\nwant %v", got, want)
		}
	}

	const size = 256 * P
	near := uintptr(0x3f00_0000) // DynamoRIO's vm_base
	var base uintptr
	for try := 0; ; try++ {
		hint, err := m.Advise(size, 0, near, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		base, err = nat.Reserve(hint, size, mem.Exact)
		if err == nil {
			break
		}
		// Something (another goroutine's mmap) took it since Load.
		if try == 3 {
			t.Fatal(err)
		}
		if err := m.Refresh(nat); err != nil {
			t.Fatal(err)
		}
	}
	defer nat.Release(base, size)
	mustUpdate(t, m, Segment{Start: base, End: base + size, Kind: KindReservation, Owner: "vmcode"})
	check()

	if err := nat.Commit(base, 16*P, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, m, Segment{Start: base, End: base + 16*P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmcode"})
	// Committed PROT_NONE anon and a reservation are the same to Linux.
	if err := nat.Commit(base+16*P, 16*P, mem.ProtNone); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, m, Segment{Start: base + 16*P, End: base + 32*P, Kind: KindAnon, Prot: mem.ProtNone, Owner: "vmcode"})
	check()

	// W^X: one memfd, an RX view inside the reservation, an RW view
	// elsewhere.
	obj, err := nat.CreateShared("reachvm-aspacem-test", 16*P)
	if err != nil {
		t.Fatal(err)
	}
	defer nat.CloseObject(obj)
	rx := base + 64*P
	if _, err := nat.MapObject(obj, 0, rx, 16*P, mem.ProtRX, mem.Fixed); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, m, Segment{Start: rx, End: rx + 16*P, Kind: KindShared, Prot: mem.ProtRX, Name: obj.Name(), Owner: "fcache"})
	rw, err := nat.MapObject(obj, 0, 0, 16*P, mem.ProtRW, mem.Hint)
	if err != nil {
		t.Fatal(err)
	}
	defer nat.Unmap(rw, 16*P)
	mustUpdate(t, m, Segment{Start: rw, End: rw + 16*P, Kind: KindShared, Prot: mem.ProtRW, Name: obj.Name(), Owner: "fcache rw"})
	check()

	// A private file view.
	exeObj, err := nat.OpenFile(exe)
	if err == nil {
		defer nat.CloseObject(exeObj)
		fv := base + 128*P
		if _, err := nat.MapObject(exeObj, 0, fv, 2*P, mem.ProtRead, mem.Fixed); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, m, Segment{Start: fv, End: fv + 2*P, Kind: KindFile, Prot: mem.ProtRead, Name: exe, Owner: "privlib self"})
		check()
	}

	// Behind aspacem's back.
	if err := nat.Protect(base+4*P, 2*P, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	check(Mismatch{What: "protection differs", Start: base + 4*P, End: base + 6*P, Expected: "rw-", Found: "r--"})
	if err := nat.Protect(base+4*P, 2*P, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	check()

	// The maps dump of what we own parses back with procmaps and agrees
	// with the map.
	var buf bytes.Buffer
	if err := m.WriteMaps(&buf, base, base+size); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), " [vmcode]\n") || !strings.Contains(buf.String(), "reachvm-aspacem-test [fcache]\n") {
		t.Fatalf("maps dump lacks annotations:\n%s", buf.String())
	}
	n := 0
	err = procmaps.Parse(buf.Bytes(), func(e *procmaps.Entry) bool {
		s, _ := m.Lookup(e.Start)
		if s.Start != e.Start || s.End != e.End || s.Prot != mem.Prot(e.Prot) {
			t.Errorf("dump line %+v does not match segment %v", e, s)
		}
		n++
		return true
	})
	if err != nil || n == 0 {
		t.Fatalf("parsing the dump: %v (%d lines)", err, n)
	}
}

// TestLoadSelf loads the running process's map from the native backend:
// it has the native backend's configuration, this function's code lies in
// an executable segment named after the test binary, and the map matches
// the kernel's.
func TestLoadSelf(t *testing.T) {
	m, err := LoadSelf()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config(), ConfigFor(osmem.Native()); got != want {
		t.Fatalf("config %+v, want the native backend's %+v", got, want)
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(TestLoadSelf).Pointer()
	s, ok := m.Lookup(pc)
	if !ok || s.Kind != KindForeign || s.Prot&mem.ProtExec == 0 {
		t.Fatalf("segment at TestLoadSelf's code %#x: %v (found %v), want a foreign executable one", pc, s, ok)
	}
	if exe, err := os.Executable(); err == nil && s.Name != exe {
		t.Errorf("segment at TestLoadSelf's code is named %q, want the executable %q", s.Name, exe)
	}
	if mism, err := m.SyncCheck(osmem.Native()); err != nil || len(mism) != 0 {
		t.Fatalf("SyncCheck: %v %v", mism, err)
	}
}
