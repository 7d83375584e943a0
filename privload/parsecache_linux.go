//go:build linux

package privload

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The parse cache keeps parsed files by identity, so that loading a
// library again, or a dependency shared by several loads, skips parsing
// (for libz, about a third of a load). An entry is used only if the bytes
// its parse read are, read again now, the same: a File is a function of
// those bytes alone (and of the file's size), so a hit gives exactly what
// parsing would, and a file rewritten in place (same inode, even within
// the timestamps' granularity) is parsed again. Parsed files are shared
// between loads and never modified after parsing.

// cacheKey identifies a file: the same inode reached by another name
// (a hard link) misses, so that File.Name is always the path loaded.
type cacheKey struct {
	dev, ino, size uint64
	name           string
}

const (
	cacheMaxFiles = 256
	cacheMaxBytes = 64 << 20
)

var (
	cacheMu    sync.Mutex
	cacheFiles = map[cacheKey]*File{}
	// cacheOrder lists the keys oldest first, for eviction.
	cacheOrder []cacheKey
	cacheBytes int
	// cacheOff disables the cache, for benchmarks of cold loads.
	cacheOff bool

	// readBufs holds buffers for re-reading a cached file's bytes.
	readBufs = sync.Pool{New: func() any { return new([]byte) }}
)

// readBytes returns how many bytes of its file f's parse read.
func (f *File) readBytes() int {
	if f.chunks == nil {
		return len(f.data)
	}
	n := 0
	for _, c := range f.chunks {
		n += len(c.b)
	}
	return n
}

// cachedParse returns the parse of the open file fd (of key's identity),
// from the cache if the bytes still match, else by reading and parsing
// it, named who for errors and key.name once parsed.
func cachedParse(fd int, key cacheKey, who string) (*File, error) {
	if !cacheOff {
		cacheMu.Lock()
		f := cacheFiles[key]
		cacheMu.Unlock()
		if f != nil && sameBytes(fd, f) {
			return f, nil
		}
	}
	f, err := readParse(fd, key.size, who)
	if err != nil {
		return nil, err
	}
	f.Name = key.name
	if !cacheOff {
		cachePut(key, f)
	}
	return f, nil
}

// sameBytes reports whether the file holds, now, the bytes f was parsed
// from.
func sameBytes(fd int, f *File) bool {
	chunks := f.chunks
	if chunks == nil {
		chunks = []chunk{{0, f.data}}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	for _, c := range chunks {
		if cap(*bp) < len(c.b) {
			*bp = make([]byte, len(c.b))
		}
		b := (*bp)[:len(c.b)]
		if preadFull(fd, b, int64(c.off)) != nil || !bytes.Equal(b, c.b) {
			return false
		}
	}
	return true
}

func cachePut(key cacheKey, f *File) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if old, ok := cacheFiles[key]; ok {
		cacheBytes -= old.readBytes()
	} else {
		cacheOrder = append(cacheOrder, key)
	}
	cacheFiles[key] = f
	cacheBytes += f.readBytes()
	for len(cacheOrder) > 1 && (len(cacheOrder) > cacheMaxFiles || cacheBytes > cacheMaxBytes) {
		k := cacheOrder[0]
		cacheOrder = cacheOrder[1:]
		if old, ok := cacheFiles[k]; ok {
			cacheBytes -= old.readBytes()
			delete(cacheFiles, k)
		}
	}
}

// The warm path. A library loaded by the same path again, whose status
// (device, inode, size, modification and change times) is what it was
// when it was parsed, skips reading and parsing altogether: one stat
// instead of opening, reading and comparing. A file's change time moves
// on every write, but only by the clock tick, so a write within the tick
// of the change time recorded would go unseen: as git does with racily
// clean files, an entry is trusted only if the file had not changed for
// racyMargin when it was parsed, so that any later write falls in a later
// tick and changes the status. Other files take the byte-compared cache
// above.

const racyMargin = 2 * time.Second

// warmEntry is what the warm path knows of a path.
type warmEntry struct {
	dev, ino, size uint64
	mtim, ctim     unix.Timespec
	canon          string
	file           *File
}

var (
	warmMu   sync.Mutex
	warmPath = map[string]warmEntry{}
	// warmHits counts the loads the warm path served, for tests.
	warmHits atomic.Int64
)

// warmGet returns the parsed file and resolved name of path if st, its
// status now, is what it was when it was parsed and that was safely
// after its last change.
func warmGet(path string, st *unix.Stat_t) (*File, string, bool) {
	if cacheOff {
		return nil, "", false
	}
	warmMu.Lock()
	e, ok := warmPath[path]
	warmMu.Unlock()
	if !ok || e.dev != uint64(st.Dev) || e.ino != st.Ino || e.size != uint64(st.Size) || e.mtim != st.Mtim || e.ctim != st.Ctim {
		return nil, "", false
	}
	warmHits.Add(1)
	return e.file, e.canon, true
}

// warmPut records the parse of path, whose status st was taken before it
// was read, if the file had not changed for racyMargin.
func warmPut(path string, st *unix.Stat_t, canon string, f *File) {
	if cacheOff || time.Since(time.Unix(st.Ctim.Unix())) < racyMargin || time.Since(time.Unix(st.Mtim.Unix())) < racyMargin {
		return
	}
	warmMu.Lock()
	defer warmMu.Unlock()
	if len(warmPath) >= cacheMaxFiles {
		clear(warmPath)
	}
	warmPath[path] = warmEntry{dev: uint64(st.Dev), ino: st.Ino, size: uint64(st.Size), mtim: st.Mtim, ctim: st.Ctim, canon: canon, file: f}
}
