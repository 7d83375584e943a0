//go:build !(linux && amd64) && !windows

package native

import "github.com/ebitengine/purego"

// syscallN is purego's way into a C function: a cgocall into its
// trampoline.
func syscallN(fn uintptr, args ...uintptr) (r1, r2, err uintptr) {
	return purego.SyscallN(fn, args...)
}
