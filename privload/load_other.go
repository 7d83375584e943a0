//go:build !linux

package privload

import "github.com/reachvm/reachvm/vmm"

// Load loads an ELF shared object into vmcode. ELF code runs on Linux
// only; elsewhere Load fails (the parser, Parse, works everywhere).
func Load(v *vmm.VMM, path string, opts Options) (*Library, error) {
	return nil, &FormatError{File: path, Reason: "loading ELF shared objects is supported on Linux only", Class: ErrUnsupported}
}

// runFini is never reached: no Library exists off Linux.
func (l *Library) runFini() error { return nil }
