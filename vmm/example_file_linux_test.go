//go:build linux

package vmm_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// ExampleVMM_FileObject maps a file the caller opened (and could have
// examined first) into a slot of vmcode, from that descriptor: no second
// open by path.
func ExampleVMM_FileObject() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Close()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data")
	if err := os.WriteFile(path, []byte("hello from a file"), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	obj, err := v.FileObject(f)
	if err != nil {
		f.Close()
		fmt.Println(err)
		return
	}
	defer v.OS().CloseObject(obj) // closes f
	page := v.OS().PageSize()
	s, err := v.ReserveSlot(page, "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Release()
	if err := s.MapFile(obj, 0, s.Base(), page, mem.ProtRead); err != nil {
		fmt.Println(err)
		return
	}
	seg, _ := v.Space().Lookup(s.Base())
	fmt.Println(seg.Kind, seg.Prot, filepath.Base(seg.Name), obj.Size())
	// Output: file r-- data 17
}
