//go:build !linux

package privload

// tlsGroup is the thread-local storage of a group of ELF libraries,
// which only the Linux loader makes.
type tlsGroup struct{}

func (g *tlsGroup) free() error { return nil }
