//go:build linux

package privload

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
)

// Unwind tables of private libraries.
//
// A C++ exception (and any other _Unwind_RaiseException, or a
// backtrace) finds the frame description of each PC it unwinds through
// in libgcc's unwinder: first among the objects registered with
// __register_frame_info, then through the host's _dl_find_object or
// dl_iterate_phdr, which know only what the host's dynamic linker loaded.
// So privload registers the .eh_frame of every private library of a
// group with the group's own private libgcc_s (the unwinder its
// libstdc++ binds to), as a program without PT_GNU_EH_FRAME support
// would register its own, once relocation is done and before any
// initialiser runs, and deregisters them at Close, after the finalisers.
// A group without a private unwinder registers nothing.

// ehFrameSym names the unwinder's registration functions.
const (
	regFrameSym   = "__register_frame_info"
	deregFrameSym = "__deregister_frame_info"
	// frameObjSize is the size of the struct object the unwinder keeps
	// per registration in memory its caller provides: 6 words in
	// libgcc, rounded up generously.
	frameObjSize = 128
)

// ehFramePtr decodes the .eh_frame pointer of the .eh_frame_hdr at hdr
// (its second word): version 1, and the encodings ld and lld write
// (absolute or PC-relative, 4 or 8 bytes). It reports false for anything
// else.
func ehFramePtr(hdr uintptr) (uintptr, bool) {
	b := rawmem.Bytes(hdr, 12)
	if b[0] != 1 {
		return 0, false
	}
	enc, field := b[1], hdr+4
	var v uintptr
	switch enc & 0x0f {
	case 0x00, 0x04: // absptr, udata8
		v = uintptr(binary.LittleEndian.Uint64(b[4:]))
	case 0x0c: // sdata8
		v = uintptr(int64(binary.LittleEndian.Uint64(b[4:])))
	case 0x03: // udata4
		v = uintptr(binary.LittleEndian.Uint32(b[4:]))
	case 0x0b: // sdata4
		v = uintptr(int64(int32(binary.LittleEndian.Uint32(b[4:]))))
	default:
		return 0, false
	}
	switch enc & 0x70 {
	case 0x00:
	case 0x10: // pcrel
		v += field
	default:
		return 0, false
	}
	return v, true
}

// registerFrames registers the unwind tables of g's libraries with g's
// private unwinder, if it has one, and sets g.unregister to undo it.
func registerFrames(ld *elfLoader, g *group) error {
	var reg, dereg uintptr
	for _, l := range g.libs {
		r, ok1 := l.Lookup(regFrameSym)
		d, ok2 := l.Lookup(deregFrameSym)
		if ok1 && ok2 && r != 0 && d != 0 {
			reg, dereg = r, d
			break
		}
	}
	if reg == 0 {
		return nil
	}
	type frame struct{ begin, obj uintptr }
	var frames []frame
	undo := func() error {
		var errs []error
		for i := len(frames) - 1; i >= 0; i-- {
			native.Call1(dereg, frames[i].begin)
			if err := ld.v.Free(frames[i].obj); err != nil {
				errs = append(errs, err)
			}
		}
		frames = nil
		return errors.Join(errs...)
	}
	g.unregister = undo
	for _, l := range g.libs {
		h := l.file.EHFrameHdr
		if h.Size == 0 {
			continue
		}
		begin, ok := ehFramePtr(l.bias + uintptr(h.Vaddr))
		if !ok || begin == 0 {
			continue
		}
		if _, ok := l.file.segmentAt(uint64(begin-l.bias), 4); begin < l.bias || !ok {
			return fmt.Errorf("privload: %s: .eh_frame_hdr points outside the image (%#x)", l.path, begin)
		}
		obj, err := ld.v.Alloc(frameObjSize)
		if err != nil {
			return fmt.Errorf("privload: %s: registering its unwind tables: %w", l.path, err)
		}
		native.Call2(reg, begin, obj)
		frames = append(frames, frame{begin, obj})
	}
	return nil
}
