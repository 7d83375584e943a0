//go:build !linux && !windows

package privload

import "github.com/reachvm/reachvm/vmm"

// Load loads a shared library into vmcode: ELF shared objects on Linux,
// PE DLLs on Windows. Elsewhere Load fails (the parsers, Parse and
// ParsePE, work everywhere).
func Load(v *vmm.VMM, path string, opts Options) (*Library, error) {
	return nil, &FormatError{File: path, Reason: "loading libraries is supported on Linux (ELF) and Windows (PE) only", Class: ErrUnsupported}
}

// runFini is never reached: no Library exists off Linux and Windows.
func (l *Library) runFini() error { return nil }
