package vmm_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// objModel drives a VMM's object allocator and checks it against a model:
// the live allocations and their sizes. Every allocation is filled with a
// pattern of its own when made and checked when freed, so an overlap, a
// slot handed out twice or memory not zeroed shows.
type objModel struct {
	t    testing.TB
	v    *vmm.VMM
	live map[uintptr]uintptr
	// order lists live's keys, for picking one at random.
	order []uintptr
}

func newObjModel(t testing.TB, v *vmm.VMM) *objModel {
	return &objModel{t: t, v: v, live: map[uintptr]uintptr{}}
}

// pattern is allocation a's fill byte: never zero.
func pattern(a uintptr) byte { return byte(a>>4^a>>12) | 1 }

func (m *objModel) alloc(size uintptr) {
	m.t.Helper()
	a, err := m.v.Alloc(size)
	if err != nil {
		m.t.Fatalf("Alloc(%d): %v", size, err)
	}
	if a%vmm.ObjectAlign != 0 {
		m.t.Fatalf("Alloc(%d) = %#x: not aligned to %d", size, a, vmm.ObjectAlign)
	}
	if _, ok := m.live[a]; ok {
		m.t.Fatalf("Alloc(%d) = %#x: already live", size, a)
	}
	b, err := m.v.Bytes(a, size)
	if err != nil {
		m.t.Fatalf("Bytes of new allocation [%#x, +%d): %v", a, size, err)
	}
	for i, c := range b {
		if c != 0 {
			m.t.Fatalf("Alloc(%d) = %#x: byte %d is %#x, not zero", size, a, i, c)
		}
	}
	for i := range b {
		b[i] = pattern(a)
	}
	m.live[a] = size
	m.order = append(m.order, a)
}

// verify checks live allocation a still holds its pattern, whole.
func (m *objModel) verify(a uintptr) {
	m.t.Helper()
	size := m.live[a]
	b, err := m.v.Bytes(a, size)
	if err != nil {
		m.t.Fatalf("Bytes of live [%#x, +%d): %v", a, size, err)
	}
	for i, c := range b {
		if c != pattern(a) {
			m.t.Fatalf("allocation [%#x, +%d): byte %d is %#x, want %#x (overwritten by an overlapping one?)", a, size, i, c, pattern(a))
		}
	}
	if _, err := m.v.Bytes(a, size+1); err == nil {
		m.t.Fatalf("Bytes [%#x, +%d) past a %d-byte allocation accepted", a, size+1, size)
	}
	if _, err := m.v.Bytes(a+size-1, 1); err != nil {
		m.t.Fatalf("Bytes of the last byte of [%#x, +%d): %v", a, size, err)
	}
}

// free frees the i-th live allocation and checks a second free of it, and
// a view of it, are refused.
func (m *objModel) free(i int) {
	m.t.Helper()
	a := m.order[i]
	m.verify(a)
	if err := m.v.Free(a); err != nil {
		m.t.Fatalf("Free(%#x): %v", a, err)
	}
	delete(m.live, a)
	m.order[i] = m.order[len(m.order)-1]
	m.order = m.order[:len(m.order)-1]
	if err := m.v.Free(a); !errors.Is(err, vmm.ErrNotAllocated) {
		m.t.Fatalf("double Free(%#x) = %v, want ErrNotAllocated", a, err)
	}
	if _, err := m.v.Bytes(a, 1); !errors.Is(err, vmm.ErrNotAllocated) {
		m.t.Fatalf("Bytes of freed %#x = %v, want ErrNotAllocated", a, err)
	}
}

// foreign frees an address inside the i-th live allocation, off bytes
// past its start (1 <= off < ObjectAlign: never another slot's start),
// and checks it is refused and the allocation intact.
func (m *objModel) foreign(i int, off uintptr) {
	m.t.Helper()
	a := m.order[i]
	if err := m.v.Free(a + off); !errors.Is(err, vmm.ErrNotAllocated) {
		m.t.Fatalf("Free(%#x), inside [%#x, +%d) = %v, want ErrNotAllocated", a+off, a, m.live[a], err)
	}
	m.verify(a)
}

// disjoint checks no two live allocations overlap.
func (m *objModel) disjoint() {
	m.t.Helper()
	s := slices.Clone(m.order)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i-1]+m.live[s[i-1]] > s[i] {
			m.t.Fatalf("[%#x, +%d) overlaps [%#x, +%d)", s[i-1], m.live[s[i-1]], s[i], m.live[s[i]])
		}
	}
}

func (m *objModel) freeAll() {
	m.t.Helper()
	for len(m.order) > 0 {
		m.free(len(m.order) - 1)
	}
}

// heapCommitted is the number of vmheap bytes aspacem records committed.
func heapCommitted(v *vmm.VMM) uintptr {
	hb, hs := v.VMHeap()
	n := uintptr(0)
	for _, s := range v.Space().Segments(hb, hb+hs) {
		if s.Kind == aspacem.KindAnon {
			n += s.End - s.Start
		}
	}
	return n
}

// maxIdle is the most vmheap the object allocator keeps committed with
// nothing allocated: 1 MiB of idle runs, one more per class (of at most
// 64 KiB, the Windows granularity), and a run of slack for a race.
const maxIdle = 1<<20 + 25*64<<10

func newHeapVMM(t testing.TB, heap uintptr) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: heap, WX: vmm.WXOff})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// closeSynced closes v and checks aspacem against the OS.
func closeSynced(t testing.TB, v *vmm.VMM) {
	t.Helper()
	if err := v.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	vmmtest.SyncCheck(t, v, "after Close")
}

// TestAllocRandom runs random sequences of allocations, frees, double
// frees and frees of interior addresses against the model, with sizes
// weighted to the size classes and some of pages, then frees everything:
// the committed memory falls back to at most the idle runs a class keeps, and aspacem
// matches the kernel before and after Close.
func TestAllocRandom(t *testing.T) {
	v := newHeapVMM(t, 256<<20)
	defer v.Close()
	for seed := uint64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		m := newObjModel(t, v)
		for range 3000 {
			switch op := rng.IntN(10); {
			case op < 5 || len(m.order) == 0:
				size := uintptr(1 + rng.IntN(vmm.MaxSmallObject))
				switch rng.IntN(8) {
				case 0:
					size = uintptr(1 + rng.IntN(3*vmm.MaxSmallObject+1<<14))
				case 1, 2:
					size = uintptr(1 + rng.IntN(64))
				}
				m.alloc(size)
			case op < 9:
				m.free(rng.IntN(len(m.order)))
			default:
				m.foreign(rng.IntN(len(m.order)), uintptr(1+rng.IntN(vmm.ObjectAlign-1)))
			}
		}
		m.disjoint()
		vmmtest.SyncCheck(t, v, "with allocations live")
		m.freeAll()
		if c := heapCommitted(v); c > maxIdle {
			t.Fatalf("seed %d: %d bytes of vmheap committed with nothing allocated, more than the idle runs kept (%d)", seed, c, maxIdle)
		}
	}
	vmmtest.SyncCheck(t, v, "after freeing everything")
	closeSynced(t, v)
	if _, err := v.Alloc(8); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("Alloc after Close = %v, want ErrClosed", err)
	}
	if err := v.Free(1 << 20); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("Free after Close = %v, want ErrClosed", err)
	}
}

// TestAllocBadInput: each address that is not a live allocation's start
// is refused with ErrNotAllocated and changes nothing.
func TestAllocBadInput(t *testing.T) {
	v := newHeapVMM(t, 64<<20)
	defer v.Close()
	small, err := v.Alloc(24)
	if err != nil {
		t.Fatal(err)
	}
	big, err := v.Alloc(10000)
	if err != nil {
		t.Fatal(err)
	}
	page, err := v.HeapAlloc(100)
	if err != nil {
		t.Fatal(err)
	}
	hb, hs := v.VMHeap()
	cb, _ := v.VMCode()
	var local [16]byte
	for _, c := range []struct {
		name   string
		addr   uintptr
		inside bool // Bytes may view it
	}{
		{"inside a small allocation", small + 8, true},
		{"the next slot, never allocated", small + 32, false},
		{"the slot's tail past the 24 bytes asked", small + 24, false},
		{"inside a page allocation", big + 4096, true},
		{"past the asked bytes of a page allocation", big + 12000, false},
		{"vmheap's last byte", hb + hs - 1, false},
		{"past vmheap", hb + hs, false},
		{"below vmheap", hb - 16, false},
		{"vmcode", cb, false},
		{"Go memory", uintptr(unsafe.Pointer(&local[0])), false},
		{"the top of the address space", ^uintptr(15), false},
	} {
		if err := v.Free(c.addr); !errors.Is(err, vmm.ErrNotAllocated) {
			t.Errorf("Free of %s (%#x) = %v, want ErrNotAllocated", c.name, c.addr, err)
		} else {
			t.Logf("Free of %s: %v", c.name, err)
		}
		if _, err := v.Bytes(c.addr, 1); (err == nil) != c.inside {
			t.Errorf("Bytes of %s (%#x) = %v, want it accepted: %v", c.name, c.addr, err, c.inside)
		}
	}
	if err := v.Free(0); err != nil {
		t.Errorf("Free(0) = %v, want nil (as C's free(NULL))", err)
	}
	if _, err := v.Alloc(0); err == nil {
		t.Error("Alloc(0) accepted")
	}
	if _, err := v.Alloc(hs + 1); err == nil {
		t.Error("Alloc larger than vmheap accepted")
	}
	if _, err := v.Bytes(small, 25); err == nil {
		t.Error("Bytes past a 24-byte allocation accepted")
	}
	if _, err := v.Bytes(small+20, ^uintptr(0)-8); err == nil {
		t.Error("Bytes with a wrapping size accepted")
	}
	if b, err := v.Bytes(small+8, 16); err != nil || len(b) != 16 {
		t.Errorf("Bytes of the last 16 of a 24-byte allocation = %d bytes, %v", len(b), err)
	}
	// HeapFree is for page allocations of the size asked.
	if err := v.HeapFree(small, 24); err == nil {
		t.Error("HeapFree of a small object accepted")
	}
	if err := v.HeapFree(page, 2*v.OS().Granularity()); err == nil {
		t.Error("HeapFree with the wrong size accepted")
	}
	if _, err := v.CString("a\x00b"); err == nil {
		t.Error("CString of a string holding a NUL accepted")
	}
	// The refusals changed nothing: everything frees once.
	for _, a := range []uintptr{small, big, page} {
		if err := v.Free(a); err != nil {
			t.Errorf("Free(%#x): %v", a, err)
		}
	}
	closeSynced(t, v)
}

// TestAllocRuns checks the run policy: alternating one allocation and its
// free commits nothing new; filling several runs of one class and freeing
// them all leaves them committed, up to 1 MiB; slots are reused last freed
// first.
func TestAllocRuns(t *testing.T) {
	v := newHeapVMM(t, 64<<20)
	defer v.Close()
	a, err := v.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	base := heapCommitted(v)
	if base == 0 {
		t.Fatal("an allocation committed nothing")
	}
	for range 1000 {
		if err := v.Free(a); err != nil {
			t.Fatal(err)
		}
		b, err := v.Alloc(50) // the same class
		if err != nil {
			t.Fatal(err)
		}
		if b != a {
			t.Fatalf("freed slot %#x not reused: got %#x", a, b)
		}
	}
	if c := heapCommitted(v); c != base {
		t.Fatalf("alloc/free of one object went from %d to %d committed bytes", base, c)
	}
	run := base // one run of the class
	var objs []uintptr
	for range 8 * int(run/64) {
		o, err := v.Alloc(64)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	if c := heapCommitted(v); c < 8*run {
		t.Fatalf("%d objects of 64 bytes in %d committed bytes", len(objs), c)
	}
	for _, o := range append(objs, a) {
		if err := v.Free(o); err != nil {
			t.Fatal(err)
		}
	}
	if c, want := heapCommitted(v), min(9*run, 1<<20); c != want {
		t.Fatalf("with nothing allocated, %d bytes stay committed, want the idle runs' %d", c, want)
	}
	// 2 MiB of the largest class, then freed: the idle runs beyond 1 MiB
	// go back to the OS.
	objs = objs[:0]
	for range 2 << 20 / vmm.MaxSmallObject {
		o, err := v.Alloc(vmm.MaxSmallObject)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	if c := heapCommitted(v); c < 2<<20 {
		t.Fatalf("2 MiB of objects in %d committed bytes", c)
	}
	for _, o := range objs {
		if err := v.Free(o); err != nil {
			t.Fatal(err)
		}
	}
	if c := heapCommitted(v); c > 1<<20 || c+run <= 1<<20 {
		t.Fatalf("with nothing allocated after 2 MiB, %d bytes stay committed, want the 1 MiB of idle runs kept", c)
	}
	closeSynced(t, v)
}

// TestCString round-trips strings through vmheap.
func TestCString(t *testing.T) {
	v := newHeapVMM(t, 64<<20)
	defer v.Close()
	for _, s := range []string{"", "x", "reachvm", "long " + strings.Repeat("y", 4000)} {
		a, err := v.CString(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := v.Bytes(a, uintptr(len(s))+1)
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:len(s)]) != s || b[len(s)] != 0 {
			t.Errorf("CString(%.10q...): memory holds %.10q..., last byte %#x", s, b[:len(s)], b[len(s)])
		}
		if err := v.Free(a); err != nil {
			t.Fatal(err)
		}
	}
	closeSynced(t, v)
}

// TestAllocNoVMHeap: without vmheap every call says so.
func TestAllocNoVMHeap(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOff})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Alloc(8); !errors.Is(err, vmm.ErrNoVMHeap) {
		t.Errorf("Alloc = %v", err)
	}
	if err := v.Free(16); !errors.Is(err, vmm.ErrNoVMHeap) {
		t.Errorf("Free = %v", err)
	}
	if _, err := v.Bytes(16, 1); !errors.Is(err, vmm.ErrNoVMHeap) {
		t.Errorf("Bytes = %v", err)
	}
	if _, err := v.CString("x"); !errors.Is(err, vmm.ErrNoVMHeap) {
		t.Errorf("CString = %v", err)
	}
}

// TestAllocConcurrent runs 8 goroutines allocating, writing, checking and
// freeing objects of every class and some pages, a quarter of them freed
// by another goroutine than the one that allocated them, for
// soakDuration. Afterwards only idle runs stay committed and aspacem
// matches the kernel, before and after Close.
func TestAllocConcurrent(t *testing.T) {
	v := newHeapVMM(t, 256<<20)
	defer v.Close()
	// Half the operations allocate and three eighths free, so the
	// live set grows with the run's length: maxLive bounds it (8
	// workers of 4096 objects, about 1 KiB each, a few pages among
	// them), or a long soak on a fast machine exhausts any vmheap.
	const workers, maxLive = 8, 4096
	type obj struct{ addr, size uintptr }
	handoff := make(chan obj, 256)
	deadline := time.Now().Add(soakDuration())
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var ops [workers]int
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			var live []obj
			check := func(o obj) error {
				b, err := v.Bytes(o.addr, o.size)
				if err != nil {
					return err
				}
				for i, c := range b {
					if c != pattern(o.addr) {
						return fmt.Errorf("[%#x, +%d): byte %d is %#x, want %#x", o.addr, o.size, i, c, pattern(o.addr))
					}
				}
				return nil
			}
			free := func(o obj) error {
				if err := check(o); err != nil {
					return err
				}
				return v.Free(o.addr)
			}
			for time.Now().Before(deadline) {
				for range 64 {
					ops[g]++
					switch op := rng.IntN(8); {
					case op < 4 && len(live) < maxLive || len(live) == 0:
						size := uintptr(1 + rng.IntN(vmm.MaxSmallObject))
						if rng.IntN(50) == 0 {
							size = uintptr(vmm.MaxSmallObject + 1 + rng.IntN(20000))
						}
						a, err := v.Alloc(size)
						if err != nil {
							errs <- err
							return
						}
						b, err := v.Bytes(a, size)
						if err != nil {
							errs <- err
							return
						}
						for i := range b {
							if b[i] != 0 {
								errs <- fmt.Errorf("Alloc(%d) = %#x: byte %d not zero", size, a, i)
								return
							}
							b[i] = pattern(a)
						}
						live = append(live, obj{a, size})
					case op == 4:
						i := rng.IntN(len(live))
						select {
						case handoff <- live[i]:
							live[i] = live[len(live)-1]
							live = live[:len(live)-1]
						default:
						}
					case op == 5:
						select {
						case o := <-handoff:
							if err := free(o); err != nil {
								errs <- err
								return
							}
						default:
						}
					default:
						i := rng.IntN(len(live))
						if err := free(live[i]); err != nil {
							errs <- err
							return
						}
						live[i] = live[len(live)-1]
						live = live[:len(live)-1]
					}
				}
			}
			for _, o := range live {
				if err := free(o); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(handoff)
	for o := range handoff {
		if err := v.Free(o.addr); err != nil {
			t.Error(err)
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, n := range ops {
		total += n
	}
	t.Logf("%d operations by %d goroutines", total, workers)
	if c := heapCommitted(v); c > maxIdle {
		t.Errorf("%d bytes of vmheap committed with nothing allocated", c)
	}
	vmmtest.SyncCheck(t, v, "after the soak")
	closeSynced(t, v)
}

// FuzzAlloc runs operation sequences on the object allocator against the
// model: three bytes an operation (op, x, y). Alloc sizes span every class
// and page allocations; frees pick a live allocation, each followed by a
// refused double free; foreign frees hit an address inside one. After
// each input everything is freed: only idle runs stay committed and
// aspacem matches the kernel.
func FuzzAlloc(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 200, 0, 4, 0, 0, 2, 0, 0, 3, 0, 5})
	f.Add([]byte{1, 255, 7, 1, 0, 8, 0, 16, 0, 2, 1, 0, 2, 0, 0, 3, 0, 1})
	f.Add([]byte{0, 15, 0, 0, 15, 0, 0, 15, 0, 2, 2, 0, 2, 1, 0, 0, 15, 0, 4, 0, 0})
	v := newHeapVMM(f, 64<<20)
	f.Cleanup(func() { closeSynced(f, v) })
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newObjModel(t, v)
		for ; len(data) >= 3; data = data[3:] {
			op, x, y := data[0]%5, uintptr(data[1]), uintptr(data[2])
			switch {
			case op == 0 || len(m.order) == 0:
				m.alloc(1 + (x|y<<8)%vmm.MaxSmallObject)
			case op == 1:
				// Up to 4 pages and a bit: page allocations.
				m.alloc(1 + (x|y<<8)*16%(1<<14+100))
			case op == 2, op == 3:
				m.free(int(x|y<<8) % len(m.order))
			case op == 4:
				m.foreign(int(y)%len(m.order), 1+x%(vmm.ObjectAlign-1))
			}
			if len(m.order) > 200 {
				m.freeAll()
			}
		}
		m.disjoint()
		m.freeAll()
		if c := heapCommitted(v); c > maxIdle {
			t.Fatalf("%d bytes of vmheap committed with nothing allocated", c)
		}
		vmmtest.SyncCheck(t, v, "after the input")
	})
}
