//go:build !(linux && amd64)

package jit

// Run runs fn under the translator, which exists for linux/amd64 only:
// elsewhere it panics.
//
//go:uintptrescapes
func Run(fn uintptr, args ...uintptr) uintptr {
	panic("jit: the translator runs on linux/amd64 only")
}
