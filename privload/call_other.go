//go:build !(linux && amd64)

package privload

import (
	"fmt"
	"runtime"

	"github.com/ebitengine/purego"
)

// callNative runs the call described by fr through purego.SyscallN,
// which places integer arguments only: floating-point arguments and
// results need the amd64 trampoline of Linux.
func callNative(fr *callFrame) {
	if fr.nfloat > 0 {
		panic(fmt.Sprintf("privload: floating-point arguments are not supported on %s/%s", runtime.GOOS, runtime.GOARCH))
	}
	args := make([]uintptr, 0, maxIntRegs+int(fr.nstack))
	for _, a := range fr.ints {
		args = append(args, uintptr(a))
	}
	for _, a := range fr.stack[:fr.nstack] {
		args = append(args, uintptr(a))
	}
	r, _, _ := purego.SyscallN(fr.fn, args...)
	fr.rax = uint64(r)
}
