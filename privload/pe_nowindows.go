//go:build !windows

package privload

// peLookup is the hook Library.Lookup needs for libraries loaded from PE
// DLLs; off Windows there are none.
func (l *Library) peLookup(name string) (addr uintptr, found, isPE bool) { return 0, false, false }
