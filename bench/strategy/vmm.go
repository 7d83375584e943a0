package strategy

import (
	"errors"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// VMM is reachvm's own vmm package as a strategy, the code that ships:
// its vmcode is the grid (strategy D) under Windows rules and one
// reservation with MAP_FIXED (linux-fixed) under Linux rules. Libraries are placed as
// the private loader places them: ReserveSlot, Slot.MapFile, and
// Slot.Release to unload.
//
// vmm exposes no hook between a release and the map that follows, so the
// race windows are observed at the OS boundary instead (windowOS): every
// Release or Unmap between Setup and Teardown opens one, and every Exact
// map or reservation that finds its addresses taken is a lost race.
//
// The zero VMM is vmm-linear (Linux rules); NewVMM chooses the rules.
type VMM struct {
	base
	rules mem.Rules
	// Size is vmcode's size; 0 selects DefaultRegion.
	Size  uintptr
	v     *vmm.VMM
	w     *windowOS
	slots map[uintptr]*vmm.Slot
}

// NewVMM returns the vmm strategy for rules: vmm-grid under
// mem.RulesWindows, vmm-linear under mem.RulesLinux.
func NewVMM(rules mem.Rules) *VMM { return &VMM{rules: rules} }

// Name returns "vmm-grid" under Windows rules, "vmm-linear" under Linux
// rules.
func (s *VMM) Name() string {
	if s.rules == mem.RulesWindows {
		return "vmm-grid"
	}
	return "vmm-linear"
}

// Rules returns the rules NewVMM was given.
func (s *VMM) Rules() mem.Rules { return s.rules }

// EndInit does nothing: vmcode is claimed from Setup on.
func (s *VMM) EndInit() error { return nil }

// Setup creates a vmm.VMM on o with a vmcode of Size bytes and no vmheap,
// W^X off; the region is its vmcode.
func (s *VMM) Setup(o mem.OS) error {
	s.w = &windowOS{OS: o, b: &s.base}
	s.os = s.w
	s.slots = map[uintptr]*vmm.Slot{}
	v, err := vmm.New(vmm.Config{OS: s.w, VMCodeSize: orDefault(s.Size, DefaultRegion), NoVMHeap: true, WX: vmm.WXOff})
	if err != nil {
		return err
	}
	s.v = v
	lo, size := v.VMCode()
	s.lo, s.hi = lo, lo+size
	s.w.armed = true
	return nil
}

// Place reserves a slot of vmcode for lib and maps it there, retrying on
// a *vmm.SlotLostError, as vmm asks its callers to: the lost slots stay
// out of the allocator and the next ReserveSlot picks others. vmcode
// exhausted is ErrUnsupported.
func (s *VMM) Place(lib Lib, post bool) (View, error) {
	var err error
	for try := 0; try < placeTries; try++ {
		var v View
		v, err = s.place(lib)
		var lost *vmm.SlotLostError
		if err == nil || !errors.As(err, &lost) {
			return v, err
		}
	}
	return View{}, err
}

func (s *VMM) place(lib Lib) (View, error) {
	sl, err := s.v.ReserveSlot(lib.Size, "privlib "+lib.Name)
	if err != nil {
		var ex *vmm.ExhaustedError
		if errors.As(err, &ex) {
			return View{}, ErrUnsupported
		}
		return View{}, err
	}
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	obj, err := s.os.CreateShared(lib.Name, uint64(size))
	if err != nil {
		_ = sl.Release()
		return View{}, err
	}
	err = sl.MapFile(obj, 0, sl.Base(), size, mem.ProtRX)
	_ = s.os.CloseObject(obj)
	if err != nil {
		_ = sl.Release()
		return View{}, err
	}
	s.slots[sl.Base()] = sl
	return View{Lib: lib, Addr: sl.Base(), Size: size, Relocated: relocated(lib, sl.Base())}, nil
}

// Unload releases v's slot.
func (s *VMM) Unload(v View) error {
	sl := s.slots[v.Addr]
	delete(s.slots, v.Addr)
	if sl == nil {
		return errors.New("strategy: vmm: no slot there")
	}
	// A slot lost to the intruder while re-reserving is vmm doing its job
	// (the loss is counted by windowOS), not a failure of the run.
	var lost *vmm.SlotLostError
	if err := sl.Release(); err != nil && !errors.As(err, &lost) {
		return err
	}
	return nil
}

// Teardown releases every slot still placed and closes the vmm.VMM.
func (s *VMM) Teardown() error {
	s.w.armed = false
	// Windows rules: views must go one by one before vmcode; Linux rules:
	// Close's one release takes them all.
	if s.rules == mem.RulesWindows {
		var lost *vmm.SlotLostError
		for a, sl := range s.slots {
			if err := sl.Release(); err != nil && !errors.As(err, &lost) {
				return err
			}
			delete(s.slots, a)
		}
	}
	return s.v.Close()
}

// windowOS sees race windows at the OS boundary, for strategies (vmm)
// that have no hook of their own.
type windowOS struct {
	mem.OS
	b     *base
	armed bool
}

// Release releases and, while armed, opens a window over the range.
func (w *windowOS) Release(addr, size uintptr) error {
	err := w.OS.Release(addr, size)
	if err == nil && w.armed {
		w.b.window(addr, addr+size)
	}
	return err
}

// Unmap unmaps and, while armed, opens a window over the range.
func (w *windowOS) Unmap(addr, size uintptr) error {
	err := w.OS.Unmap(addr, size)
	if err == nil && w.armed {
		w.b.window(addr, addr+size)
	}
	return err
}

// Reserve reserves; while armed, an Exact reservation that finds its
// range taken is a lost race.
func (w *windowOS) Reserve(addr, size uintptr, mode mem.Mode) (uintptr, error) {
	a, err := w.OS.Reserve(addr, size, mode)
	if mode == mem.Exact && errors.Is(err, mem.ErrExists) && w.armed {
		w.b.losses++
	}
	return a, err
}

// MapObject maps; while armed, an Exact map that finds its range taken
// is a lost race.
func (w *windowOS) MapObject(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode) (uintptr, error) {
	a, err := w.OS.MapObject(obj, off, addr, size, prot, mode)
	if mode == mem.Exact && errors.Is(err, mem.ErrExists) && w.armed {
		w.b.losses++
	}
	return a, err
}
