package privload

import (
	"bytes"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// GoString returns a copy of the NUL-terminated string at addr, as native
// code returns them (const char *), and "" for 0. To pass a string the
// other way, use vmm's CString, or a NUL-terminated Go byte slice inline
// in the call.
//
// Nothing can check addr: GoString reads from addr up to the first NUL
// byte, one page at a time, and never past the page holding that byte.
//
// Preconditions: addr is 0 or the start of a NUL-terminated string in
// mapped, readable memory that no one writes during the call (the string
// a library returns, for as long as the library says it stays valid).
func GoString(addr uintptr) string {
	if addr == 0 {
		return ""
	}
	var out []byte
	for a := addr; ; {
		// The rest of a's page: a page is readable whole or not at all,
		// so reading to its end never faults where reading a did not.
		n := mem.PageSize - a%mem.PageSize
		chunk := rawmem.Bytes(a, n)
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			if out == nil {
				return string(chunk[:i])
			}
			return string(append(out, chunk[:i]...))
		}
		out = append(out, chunk...)
		a += n
	}
}
