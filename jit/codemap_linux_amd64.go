package jit

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/procmaps"
)

// codeMap knows which addresses hold executable code, so that the
// translator reads application code only where it is mapped: decoding
// reads up to 15 bytes past an instruction's start, and a read past the
// end of a mapping would fault inside Go. It caches the executable
// mappings of /proc/self/maps and re-reads them only on a miss (a new
// library, or a jump to something that is not code).
type codeMap struct {
	// ranges are the readable, executable mappings, sorted, adjacent
	// ones merged; names their files (for the perf map), and starts the
	// address of the file's first mapping, from which offsets count.
	ranges [][2]uintptr
	names  []string
	starts []uintptr
}

// name returns the file holding pc and pc's offset from the file's first
// mapping, for naming fragments in the perf map.
func (c *codeMap) name(pc uintptr) (string, uintptr) {
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > pc })
	if i == len(c.ranges) || c.ranges[i][0] > pc || c.names[i] == "" {
		return "", pc
	}
	return c.names[i], pc - c.starts[i]
}

// at returns the bytes from pc to the end of its executable mapping.
func (c *codeMap) at(pc uintptr) ([]byte, error) {
	if b, ok := c.lookup(pc); ok {
		return b, nil
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	if b, ok := c.lookup(pc); ok {
		return b, nil
	}
	return nil, &NotCodeError{PC: pc}
}

func (c *codeMap) lookup(pc uintptr) ([]byte, bool) {
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i][1] > pc })
	if i == len(c.ranges) || c.ranges[i][0] > pc {
		return nil, false
	}
	return osmem.Bytes(pc, c.ranges[i][1]-pc), true
}

func (c *codeMap) load() error {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("jit: reading the code map: %w", err)
	}
	c.ranges, c.names, c.starts = c.ranges[:0], c.names[:0], c.starts[:0]
	first := map[string]uintptr{}
	return procmaps.Parse(data, func(e *procmaps.Entry) bool {
		name := ""
		if len(e.Name) > 0 && e.Name[0] == '/' {
			name = string(e.Name)
			if _, ok := first[name]; !ok {
				first[name] = e.Start - uintptr(e.Offset)
			}
		}
		if e.Prot&procmaps.PermExec == 0 || e.Prot&procmaps.PermRead == 0 {
			return true
		}
		if n := len(c.ranges); n > 0 && c.ranges[n-1][1] == e.Start && c.names[n-1] == name {
			c.ranges[n-1][1] = e.End
		} else {
			c.ranges = append(c.ranges, [2]uintptr{e.Start, e.End})
			c.names = append(c.names, filepath.Base(name))
			c.starts = append(c.starts, first[name])
			if name == "" {
				c.names[len(c.names)-1] = ""
			}
		}
		return true
	})
}

// NotCodeError reports a jump or call to an address with no executable
// mapping: the application's bug, which natively would fault.
type NotCodeError struct{ PC uintptr }

func (e *NotCodeError) Error() string {
	return fmt.Sprintf("jit: the application jumped to %#x, which is not executable code", e.PC)
}
