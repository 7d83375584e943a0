package kernels

import (
	"fmt"
)

// Static is the kind of a program built the ordinary way and linked at
// gcc -static's default address, 0x400000, where a Go executable that is
// not a PIE sits: only a reachvm built as a PIE can load it.
const Static = "static"

// Libc builds the program c/libc/NAME.c the ordinary way, with the C
// library linked statically, and returns its path: as kind Exec an
// ET_EXEC linked at ExecBase (which reachvm's test binaries can load),
// as PIE a static PIE, as Static gcc -static's ET_EXEC at 0x400000.
func Libc(name, kind string) (string, error) {
	flags := []string{"-O2"}
	switch kind {
	case Exec:
		flags = append(flags, "-static", fmt.Sprintf("-Wl,-Ttext-segment=%#x", ExecBase))
	case PIE:
		flags = append(flags, "-static-pie", "-fPIE")
	case Static:
		flags = append(flags, "-static")
	default:
		return "", fmt.Errorf("kernels: unknown program kind %q", kind)
	}
	src := "c/libc/" + name + ".c"
	if _, err := sources.ReadFile(src); err != nil {
		return "", fmt.Errorf("kernels: no C library program %q", name)
	}
	return build([]string{src}, flags, "libc-"+name+"-"+kind)
}
