package vmm_test

import (
	"reflect"
	"testing"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkPlaceVMCode measures placing (and releasing) a 2 GiB vmcode on
// the real kernel: the bare reservation as the baseline, then vmm.New and
// Close with W^X off and on (the memfd and its two views), and near the
// benchmark binary's own text (advice over the real map, shrinking).
func BenchmarkPlaceVMCode(b *testing.B) {
	o := osmem.Native()
	space, err := aspacem.Load(o)
	if err != nil {
		b.Fatal(err)
	}
	const size = 2 << 30
	pc := reflect.ValueOf(BenchmarkPlaceVMCode).Pointer() &^ 0xfff
	near := mem.Range{Start: pc, End: pc + 0x1000}
	b.Run("impl=reserve", func(b *testing.B) {
		for b.Loop() {
			a, err := o.Reserve(0, size, mem.Hint)
			if err != nil {
				b.Fatal(err)
			}
			if err := o.Release(a, size); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		cfg  vmm.Config
	}{
		{"impl=vmm/wx=off", vmm.Config{WX: vmm.WXOff}},
		{"impl=vmm/wx=on", vmm.Config{WX: vmm.WXOn}},
		// Near this benchmark's own code, shrinking until a size fits
		// (DynamoRIO's vm_base_near_app): placement reads the kernel's map
		// only when it lost a race for the advised gap.
		{"impl=vmm/near", vmm.Config{WX: vmm.WXOff, Near: &near, AllowSmaller: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			cfg.OS, cfg.Space, cfg.VMCodeSize, cfg.NoVMHeap = o, space, size, true
			for b.Loop() {
				v, err := vmm.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := v.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
