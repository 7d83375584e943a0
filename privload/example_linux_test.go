//go:build linux

package privload_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// Example loads the demo library privately into vmcode, calls its entry
// point natively and shows how its imports were bound.
func Example() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	// The library must be a file: the kernel maps it from there.
	dir, err := os.MkdirTemp("", "privload-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o755); err != nil {
		log.Fatal(err)
	}

	lib, err := privload.Load(v, path, privload.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer lib.Close()

	fn, err := lib.Func(demolib.Compute)
	if err != nil {
		log.Fatal(err)
	}
	base, size := v.VMCode()
	fmt.Println("image inside vmcode:", v.InVMCode(lib.Base(), lib.Size()) && fn.Addr()-base < size)
	r, err := fn.Call2(6, 7)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("demo_compute(6, 7) = %d, expected %d\n", int64(r), demolib.Expected(6, 7))
	for _, im := range lib.Imports() {
		fmt.Printf("%s bound by %s\n", im.Name, im.How)
	}
	// Output:
	// image inside vmcode: true
	// demo_compute(6, 7) = 1118, expected 1118
	// demo_fini_hook bound by self
	// demo_scale bound by self
	// demo_helper bound by self
}
