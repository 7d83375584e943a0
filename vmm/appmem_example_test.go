package vmm_test

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Application memory: a program's anonymous mmap, an mprotect of part of
// it and a munmap of another part, each made by the VMM and recorded in
// aspacem; vmcode is out of the application's reach.
func ExampleVMM_MapAppAnon() {
	v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	r, err := v.MapAppAnon(0, 4*mem.PageSize, mem.ProtRW, mem.Hint, "client mmap")
	if err != nil {
		panic(err)
	}
	head := mem.Range{Start: r.Start, End: r.Start + mem.PageSize}
	fmt.Println(v.ProtectApp(head, mem.ProtRead))
	fmt.Println(v.ReleaseApp(mem.Range{Start: r.End - mem.PageSize, End: r.End}))
	for _, s := range v.Space().Segments(r.Start, r.End) {
		fmt.Printf("%d pages %s %s %q\n", s.Size()/mem.PageSize, s.Kind, s.Prot, s.Owner)
	}
	code, _ := v.VMCode()
	err = v.ReleaseApp(mem.Range{Start: code, End: code + mem.PageSize})
	fmt.Println(errors.Is(err, vmm.ErrNotApp))
	// Output:
	// <nil>
	// <nil>
	// 1 pages anon r-- "client mmap"
	// 2 pages anon rw- "client mmap"
	// 1 pages free --- ""
	// true
}
