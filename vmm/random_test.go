package vmm_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// fileBytes is the size of the file the random sequence maps.
const filePages = 16

// opRunner drives a VMM with a seeded random sequence of slot operations,
// valid and invalid alike, so that the same seed gives the same sequence on
// every backend.
type opRunner struct {
	v      *vmm.VMM
	rng    *rand.Rand
	obj    mem.Object
	page   uintptr
	slots  []*vmm.Slot
	freed  []*vmm.Slot
	nSlots int
	// heap holds live vmheap allocations: address and size.
	heap [][2]uintptr
}

// pageRange picks a random page-aligned range inside s.
func (r *opRunner) pageRange(s *vmm.Slot) (uintptr, uintptr) {
	n := int(s.Size() / r.page)
	first := r.rng.IntN(n)
	count := 1 + r.rng.IntN(n-first)
	return s.Base() + uintptr(first)*r.page, uintptr(count) * r.page
}

var prots = []mem.Prot{mem.ProtNone, mem.ProtRead, mem.ProtRW, mem.ProtRX}

// step performs one operation and describes it. Errors are expected (the
// sequence includes invalid requests and, on sim, injected faults); what
// matters is that aspacem and the kernel still agree afterwards.
func (r *opRunner) step() (string, error) {
	op := r.rng.IntN(13)
	if len(r.slots) == 0 && op <= 8 {
		op = 0
	}
	var s *vmm.Slot
	if len(r.slots) > 0 {
		s = r.slots[r.rng.IntN(len(r.slots))]
	}
	switch op {
	case 0, 1:
		size := uintptr(1+r.rng.IntN(32)) * r.page
		r.nSlots++
		owner := fmt.Sprintf("slot%d", r.nSlots)
		ns, err := r.v.ReserveSlot(size, owner)
		if err == nil {
			r.slots = append(r.slots, ns)
		}
		return fmt.Sprintf("reserve slot %s %#x", owner, size), err
	case 2, 3:
		addr, size := r.pageRange(s)
		if size > filePages*r.page {
			size = filePages * r.page
		}
		off := uint64(r.rng.IntN(filePages-int(size/r.page)+1)) * uint64(r.page)
		prot := prots[1+r.rng.IntN(3)]
		return fmt.Sprintf("map file at %#x +%#x off %#x %v", addr, size, off, prot), s.MapFile(r.obj, off, addr, size, prot)
	case 4:
		addr, size := r.pageRange(s)
		prot := prots[r.rng.IntN(len(prots))]
		return fmt.Sprintf("commit %#x +%#x %v", addr, size, prot), s.Commit(addr, size, prot)
	case 5:
		addr, size := r.pageRange(s)
		return fmt.Sprintf("decommit %#x +%#x", addr, size), s.Decommit(addr, size)
	case 6, 7:
		addr, size := r.pageRange(s)
		prot := prots[r.rng.IntN(len(prots))]
		return fmt.Sprintf("protect %#x +%#x %v", addr, size, prot), s.Protect(addr, size, prot)
	case 8:
		err := s.Release()
		if err == nil {
			for i, x := range r.slots {
				if x == s {
					r.slots = append(r.slots[:i], r.slots[i+1:]...)
					break
				}
			}
			r.freed = append(r.freed, s)
		}
		return fmt.Sprintf("release slot %s", s.Owner()), err
	case 9:
		// Invalid requests: a range leaving a slot, an unaligned one, a
		// slot released twice. Each must fail and change nothing.
		if len(r.freed) > 0 && r.rng.IntN(2) == 0 {
			f := r.freed[r.rng.IntN(len(r.freed))]
			if err := f.Release(); err == nil {
				return "release twice", errors.New("releasing a slot twice succeeded")
			}
			return "release twice", nil
		}
		if s == nil {
			return "no-op", nil
		}
		if err := s.Commit(s.Base()+s.Size()-r.page, 2*r.page, mem.ProtRW); err == nil {
			return "commit past the slot", errors.New("committing past the end of a slot succeeded")
		}
		if err := s.Protect(s.Base()+1, r.page, mem.ProtRW); err == nil {
			return "unaligned protect", errors.New("an unaligned protect succeeded")
		}
		return "invalid requests", nil
	case 11:
		size := uintptr(1+r.rng.IntN(8)) * r.page
		a, err := r.v.HeapAlloc(size)
		if err == nil {
			r.heap = append(r.heap, [2]uintptr{a, size})
		}
		return fmt.Sprintf("heap alloc %#x", size), err
	case 12:
		if len(r.heap) == 0 {
			return "no-op", nil
		}
		i := r.rng.IntN(len(r.heap))
		h := r.heap[i]
		err := r.v.HeapFree(h[0], h[1])
		if err == nil {
			r.heap = append(r.heap[:i], r.heap[i+1:]...)
		}
		return fmt.Sprintf("heap free %#x+%#x", h[0], h[1]), err
	default:
		if _, size := r.v.VMCode(); r.v.FreeVMCode() == size {
			return "no-op", nil // asking for more than all of vmcode is a different refusal
		}
		_, err := r.v.ReserveSlot(r.v.FreeVMCode()+r.page, "too big")
		var ex *vmm.ExhaustedError
		if !errors.As(err, &ex) {
			return "exhaust", fmt.Errorf("asking for more than vmcode has free: got %v, want *ExhaustedError", err)
		}
		return "exhaust", nil
	}
}

// badOp reports whether err from step is a test failure rather than an
// expected refusal.
func badOp(desc string, err error) bool {
	return err != nil && (desc == "release twice" || desc == "commit past the slot" || desc == "unaligned protect" || desc == "exhaust")
}

func tempFile(t *testing.T, size int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reachvm-vmm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "mapped.bin")
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i / 4096)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertNothingOwned checks that after Close the OS shows nothing in what
// was vmcode and aspacem owns nothing.
func assertNothingOwned(t *testing.T, v *vmm.VMM, base, size uintptr, when string) {
	t.Helper()
	rs, err := v.OS().Regions(base, base+size)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		t.Errorf("%s: leaked %#x-%#x %v %s", when, r.Start, r.End, r.Prot, r.Name)
	}
	if owned := v.Space().Owned(); len(owned) != 0 {
		t.Errorf("%s: aspacem still owns %v", when, owned)
	}
}

// runSimSequence runs the seeded sequence on a fresh simulator, failing the
// nth OS call (0: none). It returns the number of OS calls made.
func runSimSequence(t *testing.T, path string, nth, ops int) int {
	t.Helper()
	s := sim.New(mem.RulesLinux, sim.Options{})
	if nth > 0 {
		s.FailCall(nth, mem.ErrNoMemory)
	}
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 64 << 20})
	if err != nil {
		if !errors.Is(err, mem.ErrInjected) && !errors.Is(err, mem.ErrNoMemory) {
			t.Fatalf("fault %d: vmm.New: %v", nth, err)
		}
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
			t.Fatalf("fault %d: failed New leaked %v", nth, rs)
		}
		return s.Calls()
	}
	base, size := v.VMCode()
	obj, err := s.OpenFile(path)
	if err != nil {
		// The injected fault hit the open: nothing to map, but the
		// sequence must still leave no trace.
		obj = nil
	}
	r := &opRunner{v: v, rng: rand.New(rand.NewPCG(3, 4)), obj: obj, page: s.PageSize()}
	for i := 0; i < ops; i++ {
		before := s.Calls()
		if r.obj == nil {
			// Without a file every map fails; keep the sequence going.
			r.obj = badObject{}
		}
		desc, err := r.step()
		if badOp(desc, err) {
			t.Fatalf("fault %d, op %d %s: %v", nth, i, desc, err)
		}
		if nth == 0 || (before < nth && s.Calls() >= nth) {
			vmmtest.SyncCheck(t, v, fmt.Sprintf("fault %d, op %d (%s, err %v)", nth, i, desc, err))
		}
	}
	vmmtest.SyncCheck(t, v, fmt.Sprintf("fault %d, end", nth))
	if obj != nil {
		s.CloseObject(obj)
	}
	calls := s.Calls()
	if err := v.Close(); err != nil {
		// Only an injected fault may make Close fail, and a retry succeeds.
		if err2 := v.Close(); err2 != nil {
			t.Fatalf("fault %d: Close: %v, then %v", nth, err, err2)
		}
	}
	assertNothingOwned(t, v, base, size, fmt.Sprintf("fault %d, after Close", nth))
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("fault %d: leaked %v", nth, rs)
	}
	return calls
}

// badObject is an object of no backend: mapping it fails with ErrInvalid.
type badObject struct{}

func (badObject) Name() string { return "bad" }
func (badObject) Size() uint64 { return 0 }
func (badObject) Shared() bool { return false }

// TestRandomOpsSimFaults runs the same kind of sequence on the simulator
// with Linux rules, once clean and then once per OS call with that call
// failing: aspacem must stay consistent and nothing may leak.
func TestRandomOpsSimFaults(t *testing.T) {
	path := tempFile(t, filePages*4096)
	ops := 1000
	calls := runSimSequence(t, path, 0, ops)
	if calls < ops/4 {
		t.Fatalf("the clean sequence made only %d OS calls", calls)
	}
	// Every call of the clean run, plus those of the Close at the end.
	for n := 1; n <= calls+4; n++ {
		runSimSequence(t, path, n, ops)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d ops, a fault injected at each of %d calls", ops, calls)
}
