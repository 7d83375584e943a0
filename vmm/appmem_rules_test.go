package vmm_test

import (
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestAppMemWindowsRules: application memory follows Linux rules, so under
// Windows rules every operation is refused with mem.ErrNotSupported, as
// an *AppError naming the operation, before any OS call: the OS's memory
// and aspacem are as they were, and the VMM still works. It runs on the
// simulator with Windows rules everywhere and, on Windows, on the kernel
// (under Wine in CI), where the tests that run application memory on the
// kernel (TestAppMemNative, TestAppMemConcurrent) do not apply.
func TestAppMemWindowsRules(t *testing.T) {
	oses := []mem.OS{sim.New(mem.RulesWindows, sim.Options{})}
	if runtime.GOOS == "windows" {
		oses = append(oses, osmem.Native())
	}
	for _, o := range oses {
		t.Run(o.Name(), func(t *testing.T) {
			if o.Rules() != mem.RulesWindows {
				t.Fatalf("backend %s has rules %v, want Windows rules", o.Name(), o.Rules())
			}
			v := newAppVMM(t, o)
			defer v.Close()
			// A range in vmheap: committed memory the refusals must not
			// touch even though it is mapped and aligned.
			blk, err := v.Alloc(2 * pg)
			if err != nil {
				t.Fatal(err)
			}
			r := mem.Range{Start: blk, End: blk + 2*pg}
			before := v.Space().Owned()
			file := appFile(t, 2)
			for _, op := range []struct {
				name string
				do   func() error
			}{
				{"reserve", func() error { _, err := v.ReserveApp(0, 4*pg, mem.Hint, "app"); return err }},
				{"reserve", func() error { _, err := v.ReserveApp(0x2_0000_0000, 4*pg, mem.Exact, "app"); return err }},
				{"map", func() error { _, err := v.MapAppAnon(0, 4*pg, mem.ProtRW, mem.Hint, "app"); return err }},
				{"map", func() error { _, err := v.MapAppFile(file, 0, 0, 2*pg, mem.ProtRead, mem.Hint, "app"); return err }},
				{"commit", func() error { return v.CommitApp(r, mem.ProtRW) }},
				{"protect", func() error { return v.ProtectApp(r, mem.ProtNone) }},
				{"decommit", func() error { return v.DecommitApp(r) }},
				{"release", func() error { return v.ReleaseApp(r) }},
			} {
				err := op.do()
				var ae *vmm.AppError
				if !errors.As(err, &ae) || ae.Op != op.name || !errors.Is(err, mem.ErrNotSupported) {
					t.Fatalf("%s under Windows rules: %v; want an *AppError for %q wrapping mem.ErrNotSupported", op.name, err, op.name)
				}
				vmmtest.SyncCheck(t, v, "after the refused "+op.name)
			}
			if after := v.Space().Owned(); !slices.Equal(after, before) {
				t.Fatalf("aspacem's owned segments changed:\nbefore %v\nafter  %v", before, after)
			}
			if v.IsApp(blk, pg) || v.OverlapsApp(r.Start, r.Size()) {
				t.Fatal("a refused operation made vmheap's block application memory")
			}
			if err := v.Free(blk); err != nil {
				t.Fatal(err)
			}
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			checkNothingOwned(t, v)
		})
	}
}
