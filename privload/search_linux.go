//go:build linux

package privload

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// This file finds a library by name as glibc's dynamic linker does
// (_dl_map_object in elf/dl-load.c; ld.so(8), dlopen(3)): the order of
// the places searched, the expansion of $ORIGIN, $LIB and $PLATFORM, the
// rules of a secure process and where privload differs from glibc are in
// the package documentation (doc.go, "Finding libraries"), which
// searchPlaces and search implement; ldcache_linux.go reads
// /etc/ld.so.cache.

// searchPlace is one place a bare name is looked for.
type searchPlace struct {
	// dir is the directory; "" stands for /etc/ld.so.cache.
	dir string
	// why says where the directory comes from, for errors.
	why string
	// skip, if not empty, says why the element is not searched.
	skip string
}

// ldCacheFile is the ld.so.cache consulted (a variable for tests).
var ldCacheFile = "/etc/ld.so.cache"

// atSecure is the auxiliary vector's AT_SECURE entry.
const atSecure = 23

// secureProcess reports whether the process runs with AT_SECURE: the
// kernel sets it for set-user-ID and set-group-ID programs and for
// programs given capabilities, whose environment must not steer what
// they load. A variable for tests.
var secureProcess = sync.OnceValue(func() bool {
	auxv, err := unix.Auxv()
	if err != nil {
		// Without the auxiliary vector, glibc's own fallback.
		return os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid()
	}
	for _, kv := range auxv {
		if kv[0] == atSecure {
			return kv[1] != 0
		}
	}
	return false
})

// systemLayout is the machine's library layout: the default search
// directories and the expansion of $LIB and $PLATFORM. Debian and its
// derivatives put the libraries of an architecture in multiarch
// directories (ld.so --help lists them); other distributions in lib64.
type systemLayout struct {
	dirs     []string
	lib      string
	platform string
}

var layout = sync.OnceValue(func() systemLayout {
	var triplet, platform string
	switch runtime.GOARCH {
	case "amd64":
		triplet, platform = "x86_64-linux-gnu", "x86_64"
	case "arm64":
		triplet, platform = "aarch64-linux-gnu", "aarch64"
	}
	if triplet != "" {
		if st, err := os.Stat("/usr/lib/" + triplet); err == nil && st.IsDir() {
			return systemLayout{
				dirs:     []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"},
				lib:      "lib/" + triplet,
				platform: platform,
			}
		}
	}
	return systemLayout{dirs: []string{"/lib64", "/usr/lib64"}, lib: "lib64", platform: platform}
})

// expandDST expands the dynamic string tokens of one element of a search
// list (or of a DT_NEEDED path) as ld.so does: $ORIGIN and ${ORIGIN} to
// origin (computed only if used), $LIB and $PLATFORM (and their braced
// forms) to the layout's values. An unbraced token counts only if a
// slash or the end follows it. skip, if not empty, says why ld.so would
// drop the element: a token it does not know (or one whose value is
// unknown), or, in a secure process, a relative element or one using
// $ORIGIN.
func expandDST(elem string, origin func() (string, error), secure bool) (dir, skip string) {
	if !strings.Contains(elem, "$") {
		if secure && !filepath.IsAbs(elem) {
			return "", "relative, in a secure process"
		}
		return elem, ""
	}
	var b strings.Builder
	usedOrigin := false
	for rest := elem; ; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		var tok string
		if strings.HasPrefix(rest, "{") {
			j := strings.IndexByte(rest, '}')
			if j < 0 {
				return "", "unterminated ${"
			}
			tok, rest = rest[1:j], rest[j+1:]
		} else {
			j := 0
			for j < len(rest) && (rest[j] == '_' || 'A' <= rest[j] && rest[j] <= 'Z' || 'a' <= rest[j] && rest[j] <= 'z' || '0' <= rest[j] && rest[j] <= '9') {
				j++
			}
			tok, rest = rest[:j], rest[j:]
			if rest != "" && rest[0] != '/' {
				return "", fmt.Sprintf("unknown token $%s%s", tok, rest[:1])
			}
		}
		switch tok {
		case "ORIGIN":
			o, err := origin()
			if err != nil {
				return "", fmt.Sprintf("$ORIGIN unknown: %v", err)
			}
			usedOrigin = true
			b.WriteString(o)
		case "LIB":
			b.WriteString(layout().lib)
		case "PLATFORM":
			p := layout().platform
			if p == "" {
				return "", fmt.Sprintf("$PLATFORM unknown on %s", runtime.GOARCH)
			}
			b.WriteString(p)
		default:
			return "", fmt.Sprintf("unknown token $%s", tok)
		}
	}
	dir = b.String()
	if secure && (usedOrigin || !filepath.IsAbs(dir)) {
		return "", "relative or from $ORIGIN, in a secure process"
	}
	return dir, ""
}

// originOf returns the $ORIGIN of a library loaded as path: the
// directory of the path it was found by (not resolved through symbolic
// links, as in glibc), made absolute.
func originOf(path string) func() (string, error) {
	return func() (string, error) {
		d := filepath.Dir(path)
		if filepath.IsAbs(d) {
			return d, nil
		}
		return filepath.Abs(d)
	}
}

// exeOrigin is the $ORIGIN of LD_LIBRARY_PATH: the executable's
// directory.
func exeOrigin() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

// appendList appends the places of one search list, each directory once
// (as glibc does within a list), expanding its tokens with origin ($ORIGIN)
// unless origin is nil.
func appendList(places []searchPlace, elems []string, why string, origin func() (string, error), secure bool) []searchPlace {
	start := len(places)
	for _, e := range elems {
		d := e
		if origin != nil {
			var skip string
			if d, skip = expandDST(e, origin, secure); skip != "" {
				places = append(places, searchPlace{dir: e, why: why, skip: skip})
				continue
			}
		}
		if d == "" {
			d = "."
		}
		dup := false
		for _, p := range places[start:] {
			dup = dup || p.dir == d
		}
		if !dup {
			places = append(places, searchPlace{dir: d, why: why})
		}
	}
	return places
}

// searchPlaces lists, in order, where a bare name needed by loader (nil
// for the library the caller names) is looked for.
func (ld *elfLoader) searchPlaces(loader *elfImage) []searchPlace {
	secure := secureProcess()
	var places []searchPlace
	if loader != nil && len(loader.lib.file.Runpath) == 0 {
		for l := loader; l != nil; l = l.loader {
			if len(l.lib.file.Rpath) > 0 {
				places = appendList(places, l.lib.file.Rpath, "DT_RPATH of "+l.lib.path, originOf(l.lib.path), secure)
			}
		}
	}
	if llp := os.Getenv("LD_LIBRARY_PATH"); llp != "" && !secure {
		// glibc splits it at colons and semicolons.
		elems := strings.Split(strings.ReplaceAll(llp, ";", ":"), ":")
		places = appendList(places, elems, "LD_LIBRARY_PATH", exeOrigin, secure)
	}
	if len(ld.opts.SearchPath) > 0 {
		// The caller's directories, taken as they are.
		places = appendList(places, ld.opts.SearchPath, "Options.SearchPath", nil, false)
	}
	if loader != nil && len(loader.lib.file.Runpath) > 0 {
		places = appendList(places, loader.lib.file.Runpath, "DT_RUNPATH of "+loader.lib.path, originOf(loader.lib.path), secure)
	}
	if loader == nil || loader.lib.file.Flags1&uint64(elf.DF_1_NODEFLIB) == 0 {
		places = append(places, searchPlace{why: ldCacheFile})
		for _, d := range layout().dirs {
			places = append(places, searchPlace{dir: d, why: "system directory"})
		}
	} else {
		places = append(places, searchPlace{why: ldCacheFile + ", outside the system directories (DF_1_NODEFLIB)"})
	}
	return places
}

// notFoundError is a bare name found nowhere: tried lists the places
// looked in, in order.
type notFoundError struct {
	name  string
	tried []string
}

func (e *notFoundError) Error() string {
	return fmt.Sprintf("%s not found; looked in %s", e.name, strings.Join(e.tried, ", "))
}

// search looks for the bare name needed by loader (nil for the root) in
// the places searchPlaces lists, opening the first file found with open.
// A missing name's error lists every place tried, in order.
func (ld *elfLoader) search(name string, loader *elfImage, open func(path string) (*elfImage, error)) (*elfImage, error) {
	places := ld.searchPlaces(loader)
	nodeflib := loader != nil && loader.lib.file.Flags1&uint64(elf.DF_1_NODEFLIB) != 0
	var tried []string
	for _, pl := range places {
		var p string
		if pl.skip != "" {
			tried = append(tried, fmt.Sprintf("%q (%s; skipped: %s)", pl.dir, pl.why, pl.skip))
			continue
		}
		if pl.dir == "" {
			cached, err := ldCacheLookup(name)
			switch {
			case err != nil:
				tried = append(tried, fmt.Sprintf("%s (unusable: %v)", pl.why, err))
				continue
			case cached == "":
				tried = append(tried, pl.why+" (no entry)")
				continue
			case nodeflib && inSystemDir(cached):
				tried = append(tried, fmt.Sprintf("%s (entry %s skipped)", pl.why, cached))
				continue
			}
			p = cached
			img, err := open(p)
			if errors.Is(err, errNotFound) {
				tried = append(tried, fmt.Sprintf("%s (entry %s missing)", pl.why, p))
				continue
			}
			return img, err
		}
		// glibc tries the glibc-hwcaps subdirectories the CPU
		// supports first, best first.
		for _, sub := range hwcapsSubdirs(pl.dir) {
			img, err := open(filepath.Join(sub, name))
			if errors.Is(err, errNotFound) {
				tried = append(tried, fmt.Sprintf("%s (%s)", sub, pl.why))
				continue
			}
			if otherSystem(err) {
				tried = append(tried, fmt.Sprintf("%s (%s; %s)", sub, pl.why, err.(*FormatError).Reason))
				continue
			}
			return img, err
		}
		p = filepath.Join(pl.dir, name)
		if pl.dir == "." {
			// Joined, "./name" would lose its slash.
			p = "./" + name
		}
		img, err := open(p)
		if errors.Is(err, errNotFound) {
			tried = append(tried, fmt.Sprintf("%s (%s)", pl.dir, pl.why))
			continue
		}
		if otherSystem(err) {
			tried = append(tried, fmt.Sprintf("%s (%s; %s)", pl.dir, pl.why, err.(*FormatError).Reason))
			continue
		}
		return img, err
	}
	return nil, &notFoundError{name: name, tried: tried}
}

// otherSystem reports whether err refuses a file built for another
// system: another ELF class or machine. ld.so's open_verify passes over
// such a file and searches on (a 32-bit library in a directory of both);
// anything else wrong with a file found ends the search.
func otherSystem(err error) bool {
	fe, ok := err.(*FormatError)
	return ok && fe.Class == ErrUnsupported && (strings.HasPrefix(fe.Reason, reasonOtherClass) || strings.HasPrefix(fe.Reason, reasonOtherMachine))
}

// hwcapsDirs caches, by absolute directory, those of its glibc-hwcaps
// subdirectories that exist and that the CPU supports, best first: glibc
// too notes once per process which of its search directories exist.
// Guarded by hwcapsMu.
var (
	hwcapsMu   sync.Mutex
	hwcapsDirs = map[string][]string{}
)

// hwcapsSubdirs returns the glibc-hwcaps subdirectories of dir to try
// before dir itself (dir/glibc-hwcaps/x86-64-v3, ...), best first. The
// first search through a directory costs a stat of dir/glibc-hwcaps
// (and, where that exists, one per level); later ones nothing.
func hwcapsSubdirs(dir string) []string {
	levels := thisMachine().Subdirs
	if len(levels) == 0 {
		return nil
	}
	abs := filepath.IsAbs(dir)
	if abs {
		hwcapsMu.Lock()
		subs, ok := hwcapsDirs[dir]
		hwcapsMu.Unlock()
		if ok {
			return subs
		}
	}
	var subs []string
	isDir := func(p string) bool {
		var st unix.Stat_t
		return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	if base := filepath.Join(dir, "glibc-hwcaps"); isDir(base) {
		for _, l := range levels {
			if d := filepath.Join(base, l); isDir(d) {
				subs = append(subs, d)
			}
		}
	}
	if abs {
		hwcapsMu.Lock()
		if len(hwcapsDirs) >= cacheMaxFiles {
			clear(hwcapsDirs)
		}
		hwcapsDirs[dir] = subs
		hwcapsMu.Unlock()
	}
	return subs
}

// inSystemDir reports whether path lies directly in a system directory.
func inSystemDir(path string) bool {
	d := filepath.Dir(path)
	for _, s := range layout().dirs {
		if d == s {
			return true
		}
	}
	return false
}
