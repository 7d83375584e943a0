package jit

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// codeMap knows which addresses hold executable code, so that the
// translator reads application code only where it is mapped: decoding
// reads up to 15 bytes past an instruction's start, and a read past the
// end of a mapping would fault inside Go. It caches the executable
// segments of aspacem and reloads them only on a miss (a new library,
// or a jump to something that is not code), or after forget (a program
// unmapped or reprotected some of them): from aspacem as it is first,
// which records every mapping the program makes as it is made, and only
// if that misses too after refreshing aspacem from the kernel (reading
// /proc/self/maps), for code mapped behind vmm's back. The machines of one address space share it
// (codeSpace): a change one thread makes is seen by all.
type codeMap struct {
	// v is the machine's VMM, whose aspacem map is read. Set by
	// NewMachine.
	v *vmm.VMM
	// mu guards the fields below. The bytes at returns stay mapped only
	// while the address space's lock (codeSpace.mm) is held for reading.
	mu sync.Mutex
	// ranges are the readable, executable segments, sorted, adjacent
	// ones of the same file merged; names their files' base names (for
	// the perf map), paths the files' paths (the kernel's), and starts
	// the address of the file's first mapping, from which offsets count.
	ranges [][2]uintptr
	names  []string
	paths  []string
	starts []uintptr
}

// name returns the file holding pc and pc's offset from the file's first
// mapping, for naming fragments in the perf map.
func (c *codeMap) name(pc uintptr) (string, uintptr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > pc })
	if i == len(c.ranges) || c.ranges[i][0] > pc || c.names[i] == "" {
		return "", pc
	}
	return c.names[i], pc - c.starts[i]
}

// file returns the path of the file holding pc and the address of its
// first mapping, or "" if pc is in no file's executable mapping, and
// [lo, hi), a range around pc with the same answer.
func (c *codeMap) file(pc uintptr) (path string, start, lo, hi uintptr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > pc })
	if i == len(c.ranges) || c.ranges[i][0] > pc {
		return "", 0, pc, pc + 1
	}
	return c.paths[i], c.starts[i], c.ranges[i][0], c.ranges[i][1]
}

// at returns the bytes from pc to the end of its executable mapping.
func (c *codeMap) at(pc uintptr) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.lookup(pc); ok {
		return b, nil
	}
	for _, refresh := range []bool{false, true} {
		if err := c.load(refresh); err != nil {
			return nil, err
		}
		if b, ok := c.lookup(pc); ok {
			return b, nil
		}
	}
	return nil, &NotCodeError{PC: pc}
}

func (c *codeMap) lookup(pc uintptr) ([]byte, bool) {
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > pc })
	if i == len(c.ranges) || c.ranges[i][0] > pc {
		return nil, false
	}
	return rawmem.Bytes(pc, c.ranges[i][1]-pc), true
}

// reset drops the cache: the next lookup reloads it.
func (c *codeMap) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *codeMap) resetLocked() {
	c.ranges, c.names, c.paths, c.starts = c.ranges[:0], c.names[:0], c.paths[:0], c.starts[:0]
}

// forget drops the cache if it holds any of [lo, hi), which has just been
// unmapped, replaced or reprotected.
func (c *codeMap) forget(lo, hi uintptr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > lo })
	if i < len(c.ranges) && c.ranges[i][0] < hi {
		c.resetLocked()
	}
}

// load caches aspacem's executable segments: reachvm's own as it records
// them, the rest as the kernel showed them when aspacem last read its
// map, or with refresh, as it shows them now.
//
// Preconditions: c.mu is held.
func (c *codeMap) load(refresh bool) error {
	if refresh {
		if err := c.v.Refresh(); err != nil {
			return fmt.Errorf("jit: reading the code map: %w", err)
		}
	}
	c.resetLocked()
	first := map[string]uintptr{}
	cfg := c.v.Space().Config()
	for _, s := range c.v.Space().Segments(cfg.Lo, cfg.Hi) {
		if s.Kind == aspacem.KindFree {
			continue
		}
		name := ""
		if len(s.Name) > 0 && s.Name[0] == '/' {
			name = s.Name
			if _, ok := first[name]; !ok {
				first[name] = s.Start - uintptr(s.Offset)
			}
		}
		if s.Prot&mem.ProtExec == 0 || s.Prot&mem.ProtRead == 0 {
			continue
		}
		base := ""
		if name != "" {
			base = filepath.Base(name)
		}
		if n := len(c.ranges); n > 0 && c.ranges[n-1][1] == s.Start && c.names[n-1] == base {
			c.ranges[n-1][1] = s.End
			continue
		}
		c.ranges = append(c.ranges, [2]uintptr{s.Start, s.End})
		c.names = append(c.names, base)
		c.paths = append(c.paths, name)
		c.starts = append(c.starts, first[name])
	}
	return nil
}

// NotCodeError reports a jump or call to an address with no executable
// mapping: the application's bug, which natively would fault.
type NotCodeError struct{ PC uintptr }

func (e *NotCodeError) Error() string {
	return fmt.Sprintf("jit: the application jumped to %#x, which is not executable code", e.PC)
}
