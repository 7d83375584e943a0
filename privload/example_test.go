package privload_test

import (
	"fmt"
	"log"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/privload"
)

// ExampleParse inspects a shared object without loading it: the parser is
// portable and reads only what a loader reads.
func ExampleParse() {
	f, err := privload.Parse(demolib.Name, demolib.SO)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("soname:", f.Soname, "needed:", f.Needed)
	for _, s := range f.Loads {
		fmt.Printf("PT_LOAD %v, .bss %v\n", s.Prot, s.Memsz > s.Filesz)
	}
	kinds := map[string]int{}
	for _, r := range append(f.Rela, f.PLTRela...) {
		kinds[r.Type.String()]++
	}
	fmt.Println("relocations:", kinds)
	_, sym, _ := f.Lookup(demolib.Compute)
	fmt.Printf("%s: %v %v, in code: %v\n", sym.Name, sym.Type, sym.Bind, f.IsCode(sym.Value))

	_, err = privload.Parse("bad.so", demolib.SO[:40])
	fmt.Println(err)
	// Output:
	// soname: libdemo.so needed: []
	// PT_LOAD r--, .bss false
	// PT_LOAD r-x, .bss false
	// PT_LOAD r--, .bss false
	// PT_LOAD rw-, .bss true
	// relocations: map[R_X86_64_64:1 R_X86_64_GLOB_DAT:2 R_X86_64_JMP_SLOT:1 R_X86_64_RELATIVE:3]
	// demo_compute: STT_FUNC STB_GLOBAL, in code: true
	// privload: bad.so: truncated ELF header: file is 40 bytes, the header needs 64
}
