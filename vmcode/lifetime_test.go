package vmcode_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// ret is x86 `ret`: bytes to write into a unit.
var ret = []byte{0xc3}

// newSmallVMM returns a native VMM small enough to make hundreds of.
func newSmallVMM(t *testing.T, wx vmm.WXMode) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 16 << 20, WX: wx})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// unitObject allocates a unit of c (sealed if seal) as a close-order test
// object: closing frees it; using it writes, seals and frees again.
func unitObject(t *testing.T, c *vmcode.Code, name string, seal bool) vmmtest.Object {
	t.Helper()
	u, err := c.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Write(0, ret); err != nil {
		t.Fatal(err)
	}
	if seal {
		if err := u.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	return vmmtest.Object{
		Name:    name,
		Parents: []string{"code"},
		Close:   u.Free,
		Use: func() error {
			return errors.Join(
				vmmtest.WantClosed("Write", u.Write(0, ret)),
				vmmtest.WantClosed("Seal", u.Seal()),
				vmmtest.WantClosed("second Free", u.Free()))
		},
	}
}

// TestCloseOrdersCode closes a VMM, a Code, two of its units (one sealed)
// and a slot of the same VMM in every order of two, three and all five,
// with W^X on and off.
func TestCloseOrdersCode(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
		t.Skip("native units need Linux or Windows")
	}
	names := []string{"vmm", "code", "unit", "sealed", "slot"}
	for _, wx := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		t.Run(fmt.Sprintf("wx=%v", wx), func(t *testing.T) {
			vmmtest.CloseOrders(t, names, []int{2, 3, 5}, func(t *testing.T) vmmtest.World {
				v := newSmallVMM(t, wx)
				c := vmcode.New(v)
				s, err := v.ReserveSlot(4096, "slot")
				if err != nil {
					t.Fatal(err)
				}
				return vmmtest.World{VMM: v, Objects: []vmmtest.Object{
					{Name: "vmm", Close: v.Close, Use: func() error {
						_, err := v.ReserveUnit(4096, "late")
						return errors.Join(vmmtest.WantClosed("ReserveUnit", err), vmmtest.WantClosed("second Close", v.Close()))
					}},
					{Name: "code", Close: c.Close, Use: func() error {
						_, err := c.Alloc(4096)
						_, terr := c.Track("late", func() error { return nil })
						return errors.Join(vmmtest.WantClosed("Alloc", err), vmmtest.WantClosed("Track", terr), vmmtest.WantClosed("second Close", c.Close()))
					}},
					unitObject(t, c, "unit", false),
					unitObject(t, c, "sealed", true),
					{Name: "slot", Close: s.Release, Use: func() error { return vmmtest.WantClosed("second Release", s.Release()) }},
				}}
			})
		})
	}
}

// TestCodeOverClosedVMM checks that a Code made over a closed VMM is
// closed from the start.
func TestCodeOverClosedVMM(t *testing.T) {
	v := newSmallVMM(t, vmm.WXAuto)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	c := vmcode.New(v)
	if _, err := c.Alloc(4096); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("Alloc over a closed VMM: %v, want ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, vmcode.ErrClosed) {
		t.Errorf("Close over a closed VMM: %v, want vmcode.ErrClosed", err)
	}
}

// TestCloseConcurrentCode closes the Code (in even rounds) or the VMM (in
// odd ones) while 4 goroutines allocate units, write, seal and free them:
// every call succeeds or fails with ErrClosed, a Write in progress is
// never unmapped under it, and afterwards nothing of the VMM is left.
func TestCloseConcurrentCode(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
		t.Skip("native units need Linux or Windows")
	}
	for round := range 20 {
		v := newSmallVMM(t, vmm.WXAuto)
		foot := vmmtest.FootprintOf(v)
		c := vmcode.New(v)
		var wg sync.WaitGroup
		var ops atomic.Int64
		errs := make(chan error, 64)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := make([]byte, 4096)
				for i := range body {
					body[i] = byte(g)
				}
				for {
					u, err := c.Alloc(4096)
					if err != nil {
						if !errors.Is(err, vmm.ErrClosed) {
							errs <- err
						}
						return
					}
					for _, err := range []error{u.Write(0, body), u.Seal(), u.Free()} {
						if err != nil && !errors.Is(err, vmm.ErrClosed) {
							errs <- err
						}
					}
					ops.Add(1)
				}
			}()
		}
		for ops.Load() < 40 {
			runtime.Gosched()
		}
		closer := c.Close
		if round%2 == 1 {
			closer = v.Close
			foot.Mark(v)
		}
		if err := closer(); err != nil {
			t.Fatal(err)
		}
		var kernel error
		if round%2 == 1 {
			kernel = vmmtest.Unmapped(v, foot)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if round%2 == 0 {
			foot.Mark(v)
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			kernel = vmmtest.Unmapped(v, foot)
		}
		if kernel != nil {
			t.Fatalf("round %d: %v", round, kernel)
		}
		vmmtest.Forgotten(t, v, foot, fmt.Sprintf("round %d", round))
	}
}
