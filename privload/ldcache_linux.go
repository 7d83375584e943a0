//go:build linux

package privload

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/privload/internal/ldcache"
)

// The ld.so.cache is read once per process, when a search first reaches
// it, and again only when the file changes (ldconfig replaces it by
// renaming a new file over it): each lookup costs a stat of the file and
// a map lookup.

// ldCacheState is the cache last read.
type ldCacheState struct {
	mu sync.Mutex
	// The fields below are guarded by mu.
	//
	// file, dev, ino, size and mtime identify the file paths was read
	// from; file is "" before the first read.
	file     string
	dev, ino uint64
	size     int64
	mtime    unix.Timespec
	paths    map[string]string
	err      error
	reads    int // for tests
}

var ldCache ldCacheState

// ldCacheLookup returns the path ld.so.cache gives name on this machine,
// "" if it has no entry (or there is no cache), or an error if the cache
// cannot be read or parsed (which glibc ignores silently, and privload
// reports in the list of places tried).
func ldCacheLookup(name string) (string, error) {
	c := &ldCache
	c.mu.Lock()
	defer c.mu.Unlock()
	file := ldCacheFile
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		if err == unix.ENOENT {
			return "", nil
		}
		return "", err
	}
	if c.file != file || c.dev != uint64(st.Dev) || c.ino != st.Ino || c.size != st.Size || c.mtime != st.Mtim {
		c.file, c.dev, c.ino, c.size, c.mtime = file, uint64(st.Dev), st.Ino, st.Size, st.Mtim
		c.paths, c.err = readLDCache(file)
		c.reads++
	}
	if c.err != nil {
		return "", c.err
	}
	return c.paths[name], nil
}

// readLDCache reads and parses the cache at file and selects this
// machine's entries.
func readLDCache(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := ldcache.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c.Select(thisMachine()), nil
}

// thisMachine describes this machine as glibc's library search sees it:
// the cache flags of its own libraries and the glibc-hwcaps
// subdirectories its CPU supports, best first (the x86-64
// micro-architecture levels of the x86-64 psABI).
var thisMachine = sync.OnceValue(func() ldcache.Machine {
	switch runtime.GOARCH {
	case "amd64":
		m := ldcache.Machine{Flags: ldcache.FlagX8664Lib64 | ldcache.FlagELFLibc6}
		x := cpu.X86
		v2 := x.HasCX16 && x.HasLAHF && x.HasPOPCNT && x.HasSSE3 && x.HasSSE41 && x.HasSSE42 && x.HasSSSE3
		v3 := v2 && x.HasAVX && x.HasAVX2 && x.HasBMI1 && x.HasBMI2 && x.HasF16C && x.HasFMA && x.HasLZCNT && x.HasMOVBE && x.HasOSXSAVE
		v4 := v3 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512CD && x.HasAVX512DQ && x.HasAVX512VL
		for _, l := range []struct {
			ok   bool
			name string
		}{{v4, "x86-64-v4"}, {v3, "x86-64-v3"}, {v2, "x86-64-v2"}} {
			if l.ok {
				m.Subdirs = append(m.Subdirs, l.name)
			}
		}
		return m
	case "arm64":
		return ldcache.Machine{Flags: ldcache.FlagAArch64Lib64 | ldcache.FlagELFLibc6}
	}
	// Only the architecture-neutral entries.
	return ldcache.Machine{Flags: ldcache.FlagELF}
})
