//go:build linux

package privload

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Load loads the shared object path privately into a slot of v's
// vmcode, with its private dependencies each in a slot of its own, so
// that code emitted into vmcode reaches them with rel32 calls. path is
// taken as dlopen takes it: with a slash, a path; without, a name
// searched for as ld.so does (LD_LIBRARY_PATH, Options.SearchPath,
// /etc/ld.so.cache, the system directories; see the package
// documentation).
//
// It works in phases, so that everything that can refuse a library does
// so before anything is mapped:
//
//  1. read and parse the library and, breadth-first, every DT_NEEDED
//     entry: a system library (Options.System) is opened by the host's
//     dlopen; any other is found as ld.so finds it (DT_RPATH,
//     LD_LIBRARY_PATH, Options.SearchPath, DT_RUNPATH, ld.so.cache, the
//     system directories), and parsed; each is checked
//     for what privload does not support (initial-exec thread-local
//     storage, text relocations, relocation types, an executable stack);
//  2. reserve a vmcode slot per private library (bookkeeping only), and
//     set up the group's thread-local storage if any library has PT_TLS
//     (see the package documentation);
//  3. bind every symbol reference (see below);
//  4. map each PT_LOAD with MAP_FIXED over its slot's reservation, zero
//     the .bss, relocate (RELR, DT_RELA, DT_JMPREL, all bound now;
//     IRELATIVE and references to ifuncs last, by calling their
//     resolvers), make PT_GNU_RELRO read-only: dependencies before the
//     libraries that need them;
//  5. register the unwind tables with the group's private libgcc_s, if
//     any; run DT_INIT and DT_INIT_ARRAY, dependencies first.
//
// Symbols are searched as ld.so searches the local scope of a library
// opened with dlopen: Options.Imports first; then the loaded library
// itself, then its dependencies breadth-first in DT_NEEDED order, the
// host's system libraries in their place in that order (a library built
// with DT_SYMBOLIC searches itself first); then Options.Resolve; an
// unresolved weak reference binds to 0 and any other fails the load. A
// versioned reference binds only to a definition of its version (or an
// unversioned one).
//
// On any failure every slot is released: nothing stays mapped and v's
// address-space map matches the kernel's. Errors name the file (and the
// library that needed it) and the reason.
func Load(v *vmm.VMM, path string, opts Options) (lib *Library, err error) {
	t, err := trackLoad(v, path)
	if err != nil {
		return nil, err
	}
	defer func() { t.done(lib) }()
	ld := &elfLoader{v: v, os: v.OS(), opts: opts, page: v.OS().PageSize(), byID: map[fileID]*elfImage{}, byName: map[string]scopeEntry{}}
	ld.system = opts.System
	if ld.system == nil {
		ld.system = DefaultSystem
	}
	lib, err = ld.run(path)
	for _, img := range ld.imgs {
		if img.obj != nil {
			if cerr := ld.os.CloseObject(img.obj); cerr != nil && err == nil {
				// Views outlive their object, so the library is
				// loaded, but a descriptor leaked: say so rather
				// than hide it.
				err = fmt.Errorf("privload: %s: closing the file: %w", img.lib.path, cerr)
			}
			img.obj = nil
		}
	}
	if err != nil && lib != nil {
		err = errors.Join(err, lib.Close())
		lib = nil
	}
	return lib, err
}

// fileID identifies a file: two DT_NEEDED names (a soname and a symlink)
// that lead to one file load it once.
type fileID struct{ dev, ino uint64 }

// elfImage is a private library being loaded.
type elfImage struct {
	lib *Library
	obj mem.Object
	id  fileID
	// who names the library for errors: its path, and the library that
	// needed it.
	who string
	// bind holds, for each symbol its relocations refer to, 1 + the
	// index of its binding in the library's elfImports (0: not bound
	// yet),
	// by symbol index.
	bind []int32
	// initProt is the protection each PT_LOAD is mapped with until the
	// final protections are set.
	initProt []mem.Prot
	// deps are its DT_NEEDED entries, resolved.
	deps []scopeEntry
	// loader is the library whose DT_NEEDED entry brought it in first
	// (glibc's l_loader), nil for the root: a bare name it needs is
	// also looked for on the DT_RPATH of its loaders.
	loader *elfImage
	// visited marks it in sortInit's walk.
	visited bool
	// wseg caches the writable segment relocations last wrote to.
	wseg []byte
	wlo  uint64
}

// scopeEntry is one library of the search scope: private or host.
type scopeEntry struct {
	img  *elfImage
	host *hostLib
}

// elfLoader carries the state of one Load.
type elfLoader struct {
	v      *vmm.VMM
	os     mem.OS
	opts   Options
	page   uintptr
	system []string
	// imgs are the private libraries, breadth-first from the root.
	imgs []*elfImage
	// scope is the symbol search order: the private libraries and the
	// host libraries, breadth-first.
	scope  []scopeEntry
	byID   map[fileID]*elfImage
	byName map[string]scopeEntry
	// initOrder has each library after its private dependencies.
	initOrder []*elfImage
	// ifuncs caches resolver results by resolver address.
	ifuncs map[uintptr]uintptr
	// reserved counts the images whose slots are reserved.
	reserved int
	// tls is the group's thread-local storage (setupTLS), nil if no
	// library has PT_TLS.
	tls *tlsGroup
}

func errorf(who, format string, args ...any) error {
	return fmt.Errorf("privload: %s: "+format, append([]any{who}, args...)...)
}

func linkf(who, format string, args ...any) error {
	return &FormatError{File: who, Reason: fmt.Sprintf(format, args...), Class: ErrLink}
}

func unsupportedf(who, format string, args ...any) error {
	return &FormatError{File: who, Reason: fmt.Sprintf(format, args...), Class: ErrUnsupported}
}

func (ld *elfLoader) run(path string) (*Library, error) {
	root, err := ld.openRootName(path)
	if err != nil {
		return nil, err
	}
	ld.add(root, filepath.Base(path))
	for i := 0; i < len(ld.imgs); i++ {
		if err := ld.needed(ld.imgs[i]); err != nil {
			return nil, err
		}
	}
	ld.sortInit(root)
	if err := ld.reserve(); err != nil {
		ld.release()
		return nil, err
	}
	if err := ld.setupTLS(); err != nil {
		ld.release()
		return nil, err
	}
	if err := ld.bindAll(); err != nil {
		ld.release()
		return nil, err
	}
	for _, img := range ld.imgs {
		if err := ld.mapSegments(img); err != nil {
			ld.release()
			return nil, err
		}
	}
	for _, img := range ld.initOrder {
		if err := ld.relocate(img); err != nil {
			ld.release()
			return nil, err
		}
		if err := ld.protect(img); err != nil {
			ld.release()
			return nil, err
		}
	}
	// The group exists from here: a failing initialiser leaves a
	// library Close can unload (running the finalisers of those that
	// ran).
	g := &group{ifuncs: ld.ifuncs, tls: ld.tls}
	for _, img := range ld.imgs {
		g.libs = append(g.libs, img.lib)
		img.lib.group = g
		img.lib.skipIFunc = ld.opts.SkipIFunc
		for _, d := range img.deps {
			dep := Dependency{Name: d.name(), Host: d.host != nil}
			if d.img != nil {
				dep.Path, dep.Library = d.img.lib.path, d.img.lib
			} else {
				dep.Path = d.host.name
			}
			img.lib.deps = append(img.lib.deps, dep)
		}
	}
	for _, img := range ld.initOrder {
		g.initOrder = append(g.initOrder, img.lib)
	}
	g.root = root.lib
	if !ld.opts.SkipInit {
		// The unwinder is a library like the others: with SkipInit,
		// no code of the group runs.
		if err := registerFrames(ld, g); err != nil {
			return root.lib, err
		}
		if ld.tls != nil {
			// The initialisers run on this thread, with its blocks
			// made here: not in the slow path, which would have no
			// way to report vmheap refusing them (a VMM being
			// closed refuses new allocations).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if _, err := ld.tls.thread(); err != nil {
				return root.lib, errorf(root.who, "thread-local storage of the initialising thread: %v", err)
			}
		}
		for _, img := range ld.initOrder {
			if err := runInit(img.lib); err != nil {
				return root.lib, err
			}
		}
	}
	return root.lib, nil
}

// name returns the name the entry is known by.
func (e scopeEntry) name() string {
	if e.host != nil {
		return e.host.name
	}
	return e.img.lib.name
}

// add appends a private library to the load and the scope.
func (ld *elfLoader) add(img *elfImage, name string) {
	ld.imgs = append(ld.imgs, img)
	e := scopeEntry{img: img}
	ld.scope = append(ld.scope, e)
	ld.byID[img.id] = img
	ld.byName[name] = e
	if s := img.lib.file.Soname; s != "" {
		if _, ok := ld.byName[s]; !ok {
			ld.byName[s] = e
		}
	}
}

// needed resolves img's DT_NEEDED entries, loading new private ones.
func (ld *elfLoader) needed(img *elfImage) error {
	for _, name := range img.lib.file.Needed {
		if e, ok := ld.byName[name]; ok {
			img.deps = append(img.deps, e)
			continue
		}
		if ld.isSystem(name) {
			h, err := hostOpen(name)
			if err != nil {
				return errorf(img.who, "system library %s: host dlopen: %v", name, err)
			}
			e := scopeEntry{host: h}
			ld.scope = append(ld.scope, e)
			ld.byName[name] = e
			img.deps = append(img.deps, e)
			continue
		}
		dep, err := ld.find(img, name)
		if err != nil {
			return err
		}
		if old, ok := ld.byID[dep.id]; ok {
			// Another name for a file already loaded.
			ld.closeObj(dep)
			e := scopeEntry{img: old}
			ld.byName[name] = e
			img.deps = append(img.deps, e)
			continue
		}
		dep.loader = img
		ld.add(dep, name)
		img.deps = append(img.deps, scopeEntry{img: dep})
	}
	return nil
}

func (ld *elfLoader) isSystem(name string) bool {
	for _, s := range ld.system {
		if s == name {
			return true
		}
	}
	return false
}

// openRootName opens the library the caller named: a name with a slash
// is a path (relative to the current directory), opened as it is; a bare
// name is searched for as dlopen does (see search_linux.go), with a stat
// of each candidate before the one found is opened.
func (ld *elfLoader) openRootName(name string) (*elfImage, error) {
	if strings.Contains(name, "/") {
		return ld.open(name, "")
	}
	if name == "" {
		return nil, errorf(`""`, "empty library name")
	}
	img, err := ld.search(name, nil, func(p string) (*elfImage, error) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			if notFoundErrno(err) {
				return nil, errNotFound
			}
			return nil, errorf(p, "opening: %v", err)
		}
		return ld.open(p, "")
	})
	var nf *notFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("privload: %w", nf)
	}
	return img, err
}

// find locates and opens the private dependency name of img: a name with
// a slash is a path (relative to the current directory, after $ORIGIN and
// the other tokens are expanded, as ld.so does); a bare name is searched
// for as ld.so does (see search_linux.go).
func (ld *elfLoader) find(img *elfImage, name string) (*elfImage, error) {
	ctx := img.lib.path
	if img != ld.imgs[0] {
		ctx += ", loading " + ld.imgs[0].lib.path
	}
	open := func(p string) (*elfImage, error) { return ld.open(p, ctx) }
	if strings.Contains(name, "/") {
		p, skip := expandDST(name, originOf(img.lib.path), secureProcess() && strings.Contains(name, "$"))
		if skip != "" {
			return nil, linkf(img.who, "dependency %s cannot be opened: %s", name, skip)
		}
		dep, err := open(p)
		if errors.Is(err, errNotFound) {
			return nil, linkf(img.who, "dependency %s not found (no file %s)", name, p)
		}
		return dep, err
	}
	dep, err := ld.search(name, img, open)
	var nf *notFoundError
	if errors.As(err, &nf) {
		return nil, linkf(img.who, "dependency %s not found; looked in %s; it is not a system library either (Options.System)", name, strings.Join(nf.tried, ", "))
	}
	return dep, err
}

// notFoundErrno reports whether a stat or open failure means "no such
// file here, look on": ENOENT and ENOTDIR, and EACCES, which glibc's
// search also passes over.
func notFoundErrno(err error) bool {
	return err == unix.ENOENT || err == unix.ENOTDIR || err == unix.EACCES
}

var errNotFound = errors.New("not found")

// open reads, parses and checks the library at path (needed by parent, or
// "" for the root) and opens it for mapping.
func (ld *elfLoader) open(path, parent string) (*elfImage, error) {
	who := path
	if parent != "" {
		who = fmt.Sprintf("%s (needed by %s)", path, parent)
	}
	if parent == "" {
		return ld.openRoot(path, who)
	}
	// One stat first: it answers the warm path, and for a dependency,
	// whose name comes from a file rather than the caller, it makes sure
	// the name is a regular file before it is opened (opening some
	// devices does something).
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if parent != "" && notFoundErrno(err) {
			return nil, errNotFound
		}
		return nil, errorf(who, "opening: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errorf(who, "not a regular file")
	}
	if f, canon, ok := warmGet(path, &st); ok {
		if img, err := ld.image(f, path, who, canon, &st); err == nil || !errors.Is(err, errChanged) {
			return img, err
		}
		// Replaced since the stat: take the cold path.
	}
	// O_NONBLOCK: a FIFO must not block the open.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if parent != "" && notFoundErrno(err) {
			return nil, errNotFound
		}
		return nil, errorf(who, "opening: %v", err)
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return nil, errorf(who, "stat: %v", err)
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errorf(who, "not a regular file")
	}
	// The kernel names file mappings by their resolved path, and so
	// must aspacem for its sync check to compare like with like; the
	// descriptor's link gives it in one call.
	canon, err := canonicalPath(fd, path, &fst)
	if err != nil {
		return nil, errorf(who, "resolving the path: %v", err)
	}
	f, err := cachedParse(fd, cacheKey{uint64(fst.Dev), fst.Ino, uint64(fst.Size), canon}, who)
	if err != nil {
		return nil, err
	}
	if fst.Dev == st.Dev && fst.Ino == st.Ino && fst.Size == st.Size && fst.Mtim == st.Mtim && fst.Ctim == st.Ctim {
		warmPut(path, &st, canon, f)
	}
	return ld.image(f, path, who, canon, &fst)
}

// openRoot is open for the library the caller named: as glibc's dlopen
// does, it opens the path first and examines the descriptor (fstat), then
// parses (or takes the warm path) and, on the native backend, maps from
// that one descriptor (vmm.VMM.FileObject; a backend without descriptors
// opens the resolved path). A warm load costs an open and an fstat where
// a stat, an open and an fstat of the resolved path did; nothing can
// replace the file between the look and the mapping. (A dependency is
// stat'ed before it is opened: its name comes from a file.)
func (ld *elfLoader) openRoot(path, who string) (*elfImage, error) {
	// O_NONBLOCK: a FIFO must not block the open.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, errorf(who, "opening: %v", err)
	}
	owned := false
	defer func() {
		if !owned {
			unix.Close(fd)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, errorf(who, "stat: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errorf(who, "not a regular file")
	}
	f, canon, ok := warmGet(path, &st)
	if !ok {
		if canon, err = canonicalPath(fd, path, &st); err != nil {
			return nil, errorf(who, "resolving the path: %v", err)
		}
		if f, err = cachedParse(fd, cacheKey{uint64(st.Dev), st.Ino, uint64(st.Size), canon}, who); err != nil {
			return nil, err
		}
		warmPut(path, &st, canon, f)
	}
	if err := ld.check(f, who); err != nil {
		return nil, err
	}
	// The object maps from this descriptor, named by the resolved path.
	file := os.NewFile(uintptr(fd), canon)
	owned = true // by file, from here on
	obj, err := ld.v.FileObject(file)
	if err != nil {
		file.Close()
		if !errors.Is(err, mem.ErrNotSupported) {
			return nil, errorf(who, "opening for mapping: %v", err)
		}
		// A backend that keeps no descriptors (the simulator) opens
		// the file by its path.
		if obj, err = ld.os.OpenFile(canon); err != nil {
			return nil, errorf(who, "opening for mapping: %v", err)
		}
	}
	lib := &Library{file: f, name: filepath.Base(path), path: path}
	return &elfImage{lib: lib, id: fileID{uint64(st.Dev), st.Ino}, who: who, obj: obj}, nil
}

// errChanged says the file changed between its stat and its opening.
var errChanged = errors.New("the file changed while being opened")

// image checks parsed file f (of path, resolved as canon, with status st)
// against the options and opens it for mapping.
func (ld *elfLoader) image(f *File, path, who, canon string, st *unix.Stat_t) (*elfImage, error) {
	if err := ld.check(f, who); err != nil {
		return nil, err
	}
	id := fileID{uint64(st.Dev), st.Ino}
	lib := &Library{file: f, name: filepath.Base(path), path: path}
	img := &elfImage{lib: lib, id: id, who: who}
	if _, dup := ld.byID[id]; dup {
		return img, nil
	}
	obj, err := ld.os.OpenFile(canon)
	if err != nil {
		return nil, errorf(who, "opening for mapping: %v", err)
	}
	img.obj = obj
	if fi, ok := obj.(mem.FileIdentity); ok {
		if dev, ino := fi.FileID(); ino != st.Ino || dev != uint64(unix.Major(st.Dev))<<8|uint64(unix.Minor(st.Dev)) || obj.Size() != uint64(st.Size) {
			ld.closeObj(img)
			return nil, fmt.Errorf("privload: %s: %w (%s was replaced)", who, errChanged, canon)
		}
	}
	return img, nil
}

func (ld *elfLoader) closeObj(img *elfImage) {
	if img.obj != nil {
		_ = ld.os.CloseObject(img.obj)
		img.obj = nil
	}
}

// canonNames caches canonicalPath's answers by the path asked and the
// file's identity: reading the descriptor's link costs a system call and
// a path walk, and a library is loaded by the same path again and again.
// A path that now names another file misses.
var (
	canonMu    sync.Mutex
	canonNames = map[string]canonName{}
)

type canonName struct {
	id   fileID
	name string
}

// canonicalPath returns the resolved path of path, open as fd with status
// st.
func canonicalPath(fd int, path string, st *unix.Stat_t) (string, error) {
	id := fileID{uint64(st.Dev), st.Ino}
	canonMu.Lock()
	c, ok := canonNames[path]
	canonMu.Unlock()
	if ok && c.id == id {
		return c.name, nil
	}
	name, err := readlinkFD(fd)
	if err != nil {
		return "", err
	}
	canonMu.Lock()
	if len(canonNames) >= cacheMaxFiles {
		clear(canonNames)
	}
	canonNames[path] = canonName{id, name}
	canonMu.Unlock()
	return name, nil
}

// readlinkFD returns the path the kernel knows an open file by.
func readlinkFD(fd int) (string, error) {
	var buf [unix.PathMax]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// headRead is how much of a file the first read takes: the ELF header,
// the program headers and, for most libraries, the first PT_LOAD, where
// ld puts the symbol, string, hash, version and relocation tables.
const headRead = 16 << 10

// sparseMin is the size below which a file is read whole: for a small
// file one read beats three. A variable for the tests, which read
// everything sparsely to exercise that path.
var sparseMin uint64 = 2 * headRead

// readParse reads what parsing needs of the open file of size bytes and
// parses it: the first headRead bytes, extended to the end of the first
// PT_LOAD if that is not executable (with -z separate-code, the default,
// it holds exactly the tables), and the file-backed part of the PT_LOAD
// holding PT_DYNAMIC (.dynamic, the GOT, the init and fini arrays). If
// parsing needs more, the whole file is read and parsed again.
func readParse(fd int, size uint64, name string) (*File, error) {
	if size <= sparseMin {
		return readAllParse(fd, size, name)
	}
	head := make([]byte, min(headRead, size))
	if err := preadFull(fd, head, 0); err != nil {
		return nil, errorf(name, "reading: %v", err)
	}
	chunks := []chunk{{0, head}}
	if first, dyn, ok := planReads(head, size); ok {
		if first > uint64(len(head)) {
			b := make([]byte, first)
			copy(b, head)
			if err := preadFull(fd, b[len(head):], int64(len(head))); err != nil {
				return nil, errorf(name, "reading: %v", err)
			}
			chunks[0].b = b
		}
		if dyn.size > 0 && dyn.off+dyn.size > uint64(len(chunks[0].b)) {
			b := make([]byte, dyn.size)
			if err := preadFull(fd, b, int64(dyn.off)); err != nil {
				return nil, errorf(name, "reading: %v", err)
			}
			chunks = append(chunks, chunk{dyn.off, b})
		}
	}
	f, missed, err := parseSparse(name, size, chunks)
	if !missed {
		return f, err
	}
	return readAllParse(fd, size, name)
}

func readAllParse(fd int, size uint64, name string) (*File, error) {
	data := make([]byte, size)
	if err := preadFull(fd, data, 0); err != nil {
		return nil, errorf(name, "reading: %v", err)
	}
	return Parse(name, data)
}

// fileRange is a range of file offsets.
type fileRange struct{ off, size uint64 }

// planReads looks at the program headers in head and returns how far to
// read from the start (the end of the first PT_LOAD if it is not
// executable) and the file range of the PT_LOAD that holds PT_DYNAMIC.
// It only plans: the parser checks everything.
func planReads(head []byte, size uint64) (first uint64, dyn fileRange, ok bool) {
	if len(head) < ehdrSize {
		return 0, fileRange{}, false
	}
	phoff, phnum := le.Uint64(head[32:]), uint64(le.Uint16(head[56:]))
	if phoff > uint64(len(head)) || phnum > (uint64(len(head))-phoff)/phdrSize {
		return 0, fileRange{}, false
	}
	var loads []Segment
	var dynVaddr uint64
	for i := uint64(0); i < phnum; i++ {
		h := head[phoff+i*phdrSize:]
		s := Segment{Offset: le.Uint64(h[8:]), Vaddr: le.Uint64(h[16:]), Filesz: le.Uint64(h[32:]), Prot: protOf(elf.ProgFlag(le.Uint32(h[4:])))}
		switch elf.ProgType(le.Uint32(h[0:])) {
		case elf.PT_LOAD:
			loads = append(loads, s)
		case elf.PT_DYNAMIC:
			dynVaddr = s.Vaddr
		}
	}
	if len(loads) == 0 {
		return 0, fileRange{}, false
	}
	if l := loads[0]; l.Prot&mem.ProtExec == 0 && l.Offset <= size && l.Filesz <= size-l.Offset {
		first = l.Offset + l.Filesz
	}
	for _, l := range loads {
		if dynVaddr >= l.Vaddr && dynVaddr-l.Vaddr < l.Filesz && l.Offset <= size && l.Filesz <= size-l.Offset {
			dyn = fileRange{l.Offset, l.Filesz}
		}
	}
	return first, dyn, true
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		if n == 0 {
			return errors.New("file shorter than its size")
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// check refuses, before anything is mapped, what the loader does not
// support: every relocation type is known, none needs static thread-local
// storage or a TLS descriptor, copy relocations (which belong in
// executables) are absent, and ifunc resolvers are allowed to run if there
// are any.
func (ld *elfLoader) check(f *File, who string) error {
	for _, tab := range [2]struct {
		name string
		rs   []Reloc
	}{{"DT_RELA", f.Rela}, {"DT_JMPREL", f.PLTRela}} {
		for _, r := range tab.rs {
			switch r.Type {
			case elf.R_X86_64_RELATIVE, elf.R_X86_64_64, elf.R_X86_64_GLOB_DAT, elf.R_X86_64_JMP_SLOT:
			case elf.R_X86_64_IRELATIVE:
				if ld.opts.SkipIFunc {
					return unsupportedf(who, "%s relocation %s at %#x calls an ifunc resolver, and Options.SkipIFunc is set", tab.name, relocName(r.Type), r.Off)
				}
				if !f.IsCode(uint64(r.Addend)) {
					return &FormatError{File: who, Reason: fmt.Sprintf("%s relocation %s at %#x: resolver %#x is not in an executable PT_LOAD", tab.name, relocName(r.Type), r.Off, uint64(r.Addend)), Class: ErrMalformed}
				}
			case elf.R_X86_64_COPY:
				return unsupportedf(who, "%s relocation %s at %#x: copy relocations belong in executables, not shared objects", tab.name, relocName(r.Type), r.Off)
			case elf.R_X86_64_DTPMOD64, elf.R_X86_64_DTPOFF64:
				// General- and local-dynamic thread-local storage:
				// privload's __tls_get_addr (tls_linux.go).
				if r.Sym == 0 && f.TLS == nil {
					return &FormatError{File: who, Reason: fmt.Sprintf("%s relocation %s at %#x refers to the library's own thread-local storage, and it has no PT_TLS", tab.name, relocName(r.Type), r.Off), Class: ErrMalformed}
				}
			case elf.R_X86_64_TPOFF64, elf.R_X86_64_TPOFF32:
				return unsupportedf(who, "%s relocation %s at %#x: initial-exec thread-local storage is not supported (it needs static TLS at a fixed offset from the host's thread pointer, which only the host's dynamic linker allocates)", tab.name, relocName(r.Type), r.Off)
			case elf.R_X86_64_TLSDESC:
				if !tlsDescOK() {
					return unsupportedf(who, "%s relocation %s at %#x: thread-local storage descriptors need xsave, which this machine does not enable", tab.name, relocName(r.Type), r.Off)
				}
				if !f.writable(r.Off + 8) {
					return &FormatError{File: who, Reason: fmt.Sprintf("%s relocation %s at %#x: the descriptor's second word is not in a writable segment", tab.name, relocName(r.Type), r.Off), Class: ErrMalformed}
				}
				if r.Sym == 0 && f.TLS == nil {
					return &FormatError{File: who, Reason: fmt.Sprintf("%s relocation %s at %#x refers to the library's own thread-local storage, and it has no PT_TLS", tab.name, relocName(r.Type), r.Off), Class: ErrMalformed}
				}
			case elf.R_X86_64_DTPOFF32:
				return unsupportedf(who, "%s relocation %s at %#x is not supported (it belongs in object files)", tab.name, relocName(r.Type), r.Off)
			default:
				return unsupportedf(who, "%s relocation %s at %#x is not supported", tab.name, relocName(r.Type), r.Off)
			}
		}
	}
	return nil
}

// sortInit orders the private libraries so that each comes after its
// private dependencies (a depth-first post-order from the root, as
// glibc's _dl_sort_maps gives for an acyclic graph; a cycle is broken
// where it is entered).
func (ld *elfLoader) sortInit(root *elfImage) {
	ld.initOrder = make([]*elfImage, 0, len(ld.imgs))
	var visit func(img *elfImage)
	visit = func(img *elfImage) {
		img.visited = true
		for _, d := range img.deps {
			if d.img != nil && !d.img.visited {
				visit(d.img)
			}
		}
		ld.initOrder = append(ld.initOrder, img)
	}
	visit(root)
}

// reserve reserves a slot for each private library and fixes its bias.
func (ld *elfLoader) reserve() error {
	for _, img := range ld.imgs {
		lo, hi, err := ld.span(img)
		if err != nil {
			return err
		}
		slot, err := ld.v.ReserveSlot(uintptr(hi-lo), "privlib "+img.lib.name)
		if err != nil {
			return errorf(img.who, "reserving a %#x-byte slot in vmcode: %w", hi-lo, err)
		}
		img.lib.slot = slot
		img.lib.bias = slot.Base() - uintptr(lo)
		ld.reserved++
	}
	return nil
}

// release gives back every reserved slot, after a failure.
func (ld *elfLoader) release() {
	if ld.tls != nil {
		_ = ld.tls.free()
		ld.tls = nil
	}
	for _, img := range ld.imgs[:ld.reserved] {
		_ = img.lib.slot.Release()
	}
	ld.reserved = 0
}

// span checks the segments against the OS page size and returns the
// page-rounded address range they span.
func (ld *elfLoader) span(img *elfImage) (lo, hi uint64, err error) {
	pg := uint64(ld.page)
	loads := img.lib.file.Loads
	for i, s := range loads {
		if s.Vaddr%pg != s.Offset%pg {
			return 0, 0, unsupportedf(img.who, "PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo the %#x-byte page", i, s.Vaddr, s.Offset, pg)
		}
		if i > 0 {
			prev := loads[i-1]
			if prevEnd, ok := mem.AlignUp(prev.Vaddr+prev.Memsz, pg); !ok || prevEnd > mem.AlignDown(s.Vaddr, pg) {
				return 0, 0, unsupportedf(img.who, "PT_LOAD %d at %#x shares a %#x-byte page with the previous one, which ends at %#x", i, s.Vaddr, pg, prev.Vaddr+prev.Memsz)
			}
		}
	}
	last := loads[len(loads)-1]
	end, ok := mem.AlignUp(last.Vaddr+last.Memsz, pg)
	if !ok {
		return 0, 0, unsupportedf(img.who, "the last PT_LOAD ends at %#x, which no %#x-byte page holds", last.Vaddr+last.Memsz, pg)
	}
	return mem.AlignDown(loads[0].Vaddr, pg), end, nil
}

// bindAll binds every symbol reference of every private library, before
// anything is mapped: an undefined symbol fails the load cheaply.
func (ld *elfLoader) bindAll() error {
	for _, img := range ld.imgs {
		cacheable := ld.bindCacheable()
		if cacheable && ld.bindCached(img) {
			continue
		}
		f := img.lib.file
		img.bind = make([]int32, f.NumSymbols)
		img.lib.elfImports = make([]importRec, 0, min(f.NumSymbols, len(f.Rela)+len(f.PLTRela)))
		for _, tab := range [2][]Reloc{f.Rela, f.PLTRela} {
			for _, r := range tab {
				if r.Sym == 0 || r.Type == elf.R_X86_64_RELATIVE || r.Type == elf.R_X86_64_IRELATIVE {
					continue
				}
				if img.bind[r.Sym] != 0 {
					continue
				}
				if err := ld.bind(img, r); err != nil {
					return err
				}
			}
		}
		if cacheable {
			ld.bindPut(img)
		}
	}
	return nil
}

// The binding cache. A library loaded alone (no private dependency),
// with no Options.Imports or Options.Resolve, binds every reference
// either to itself, at its bias plus a symbol value, or to a host
// library, at an address that stays valid for the process's life (host
// libraries are never closed): the same parsed file with the same host
// libraries in its scope binds the same way every time, but for the
// bias. Binding libz's 35 imports anew (a hash per name, a miss in libz,
// a look-up in the host cache) took about a tenth of a warm load; a hit
// copies the records instead.

// bindTemplate is a cached binding of a file.
type bindTemplate struct {
	// hosts is the scope after the library itself; skipIFunc the option
	// the binding was made under.
	hosts     []*hostLib
	skipIFunc bool
	// recs are the bindings and bind maps symbol indices to them; both
	// are shared, read-only, by every load that hits, except that recs
	// is copied if it binds an indirect function (ifunc), which
	// relocation resolves in place.
	recs  []importRec
	bind  []int32
	ifunc bool
}

var (
	bindMu    sync.Mutex
	bindCache = map[*File]*bindTemplate{}
	// bindHits counts the loads bound from the cache, for tests.
	bindHits atomic.Int64
)

// bindCacheable reports whether the load's binding may be cached: it has
// one private library and no option can redirect a symbol.
func (ld *elfLoader) bindCacheable() bool {
	// A group with thread-local storage binds __tls_get_addr to its own
	// stub, which dies with it.
	return !cacheOff && len(ld.imgs) == 1 && len(ld.opts.Imports) == 0 && ld.opts.Resolve == nil && ld.tls == nil
}

// sameHosts reports whether the host libraries of the load's scope are,
// in order, hosts.
func (ld *elfLoader) sameHosts(hosts []*hostLib) bool {
	i := 0
	for _, e := range ld.scope {
		if e.host != nil {
			if i == len(hosts) || hosts[i] != e.host {
				return false
			}
			i++
		}
	}
	return i == len(hosts)
}

// bindCached binds img from the cache if it holds a binding of its file
// under the same scope and options.
func (ld *elfLoader) bindCached(img *elfImage) bool {
	bindMu.Lock()
	t := bindCache[img.lib.file]
	bindMu.Unlock()
	if t == nil || t.skipIFunc != ld.opts.SkipIFunc || !ld.sameHosts(t.hosts) {
		return false
	}
	recs := t.recs
	if t.ifunc {
		recs = slices.Clone(recs)
	}
	img.lib.elfImports, img.bind = recs, t.bind
	bindHits.Add(1)
	return true
}

// bindPut caches img's binding.
func (ld *elfLoader) bindPut(img *elfImage) {
	t := &bindTemplate{skipIFunc: ld.opts.SkipIFunc, recs: slices.Clone(img.lib.elfImports), bind: img.bind}
	for _, e := range ld.scope {
		if e.host != nil {
			t.hosts = append(t.hosts, e.host)
		}
	}
	for _, r := range t.recs {
		t.ifunc = t.ifunc || r.ifunc
	}
	bindMu.Lock()
	if len(bindCache) >= cacheMaxFiles {
		clear(bindCache)
	}
	bindCache[img.lib.file] = t
	bindMu.Unlock()
}

// relocName names a relocation type for errors, with its number.
func relocName(t elf.R_X86_64) string { return fmt.Sprintf("%v (type %d)", t, uint32(t)) }

// bind binds the symbol relocation r of img refers to.
func (ld *elfLoader) bind(img *elfImage, r Reloc) error {
	f := img.lib.file
	i := uint64(r.Sym)
	ent := f.symtab[i*symSize : i*symSize+symSize]
	name, _ := f.str(uint64(le.Uint32(ent)))
	info, other := ent[4], ent[5]
	typ, bnd := elf.ST_TYPE(info), elf.ST_BIND(info)
	shndx := elf.SectionIndex(le.Uint16(ent[6:]))
	ver, _ := f.symVersion(i)
	if typ == elf.STT_TLS {
		return ld.bindTLS(img, r, i, name, ver, shndx, bnd, other)
	}
	if ld.tls != nil && name == "__tls_get_addr" {
		// The host's would look for the module ids privload gives in
		// the host's own tables.
		ld.record(img, i, ld.tls.getAddr, BoundRuntime, "")
		return nil
	}
	if len(ld.opts.Imports) > 0 {
		a, ok := uintptr(0), false
		if ver != nil {
			a, ok = ld.opts.Imports[name+"@"+ver.Name]
		}
		if !ok {
			a, ok = ld.opts.Imports[name]
		}
		if ok {
			ld.record(img, i, a, BoundTable, "")
			return nil
		}
	}
	// A local symbol, or a definition the library does not export,
	// binds to itself without a search, as in glibc.
	if shndx != elf.SHN_UNDEF && (bnd == elf.STB_LOCAL || elf.ST_VISIBILITY(other) == elf.STV_HIDDEN || elf.ST_VISIBILITY(other) == elf.STV_INTERNAL) {
		return ld.bindDef(img, img, i, r, name, ver)
	}
	gh := gnuHashOf(name)
	if f.Symbolic {
		if j, ok := f.find(name, gh, ver, lookupReloc); ok {
			return ld.bindDef(img, img, j, r, name, ver)
		}
	}
	cname := f.strtab[le.Uint32(ent):]
	for _, e := range ld.scope {
		if e.img != nil {
			if j, ok := e.img.lib.file.find(name, gh, ver, lookupReloc); ok {
				return ld.bindDef(img, e.img, j, r, name, ver)
			}
			continue
		}
		if hs := e.host.sym(name, cname, ver); hs.addr != 0 {
			ld.record(img, i, hs.addr, BoundHost, hs.from)
			return nil
		}
	}
	if ld.opts.Resolve != nil {
		if a, ok := ld.opts.Resolve(name); ok {
			ld.record(img, i, a, BoundResolver, "")
			return nil
		}
	}
	if bnd == elf.STB_WEAK {
		ld.record(img, i, 0, BoundWeakZero, "")
		return nil
	}
	full := name
	if ver != nil {
		full += "@" + ver.Name
	}
	var names []string
	for _, e := range ld.scope {
		names = append(names, e.name())
	}
	return linkf(img.who, "undefined symbol %q (%s at %#x): not defined in the search scope (%s) nor supplied by Options.Imports or Options.Resolve", full, relocName(r.Type), r.Off, strings.Join(names, ", "))
}

// bindTLS binds a reference of img to thread-local variable name: to a
// definition in a private library of the load (its module id and its
// offset in the module's block), searched as other symbols are. Options.
// Imports and Options.Resolve supply addresses, which a thread-local
// variable does not have, and the host's libraries keep theirs in the
// host's static TLS, which private code cannot address: neither is
// consulted, and a variable found only in a host library is refused.
func (ld *elfLoader) bindTLS(img *elfImage, r Reloc, i uint64, name string, ver *Version, shndx elf.SectionIndex, bnd elf.SymBind, other byte) error {
	f := img.lib.file
	if shndx != elf.SHN_UNDEF && (bnd == elf.STB_LOCAL || elf.ST_VISIBILITY(other) == elf.STV_HIDDEN || elf.ST_VISIBILITY(other) == elf.STV_INTERNAL) {
		return ld.bindDef(img, img, i, r, name, ver)
	}
	gh := gnuHashOf(name)
	if f.Symbolic {
		if j, ok := f.find(name, gh, ver, lookupReloc); ok {
			return ld.bindDef(img, img, j, r, name, ver)
		}
	}
	cname := f.strtab[le.Uint32(f.symtab[i*symSize:]):]
	for _, e := range ld.scope {
		if e.img != nil {
			if j, ok := e.img.lib.file.find(name, gh, ver, lookupReloc); ok {
				return ld.bindDef(img, e.img, j, r, name, ver)
			}
			continue
		}
		if hs := e.host.sym(name, cname, ver); hs.addr != 0 {
			return unsupportedf(img.who, "relocation %s at %#x refers to thread-local variable %q of the host's %s: thread-local storage of host libraries is not supported", relocName(r.Type), r.Off, name, e.host.name)
		}
	}
	return linkf(img.who, "undefined thread-local variable %q (%s at %#x): not defined by a private library of the load", name, relocName(r.Type), r.Off)
}

// record notes that symbol i of img is bound to addr, by how, from the
// library fromName, as one of img's imports.
func (ld *elfLoader) record(img *elfImage, i uint64, addr uintptr, how string, fromName string) {
	img.lib.elfImports = append(img.lib.elfImports, importRec{addr: addr, from: fromName, sym: uint32(i), how: how})
	img.bind[i] = int32(len(img.lib.elfImports))
}

// bindDef binds a reference of img (to name at version ver) to symbol j
// of def.
func (ld *elfLoader) bindDef(img, def *elfImage, j uint64, r Reloc, name string, ver *Version) error {
	f := def.lib.file
	ent := f.symtab[j*symSize : j*symSize+symSize]
	typ := elf.ST_TYPE(ent[4])
	shndx := elf.SectionIndex(le.Uint16(ent[6:]))
	value := le.Uint64(ent[8:])
	how := BoundPrivate
	if def == img {
		how = BoundSelf
	}
	// A symbol of img itself is recorded relative to its bias
	// (importRec.self).
	addr := def.lib.bias + uintptr(value)
	self := def == img && shndx != elf.SHN_ABS
	if shndx == elf.SHN_ABS || self {
		addr = uintptr(value)
	}
	switch typ {
	case elf.STT_TLS:
		if def.lib.tlsID == 0 || shndx == elf.SHN_ABS {
			return &FormatError{File: def.who, Reason: fmt.Sprintf("thread-local symbol %q is not in a PT_TLS", name), Class: ErrMalformed}
		}
		if value >= def.lib.file.TLS.Memsz {
			return &FormatError{File: def.who, Reason: fmt.Sprintf("thread-local symbol %q at offset %#x lies outside its %#x-byte PT_TLS", name, value, def.lib.file.TLS.Memsz), Class: ErrMalformed}
		}
		ld.record(img, uint64(r.Sym), uintptr(value), how, def.lib.name)
		img.lib.elfImports[img.bind[r.Sym]-1].tlsMod = uint32(def.lib.tlsID)
		return nil
	case elf.STT_GNU_IFUNC:
		if ld.opts.SkipIFunc {
			return unsupportedf(img.who, "relocation %s at %#x binds to indirect function %q of %s, and Options.SkipIFunc is set", relocName(r.Type), r.Off, name, def.lib.name)
		}
		if shndx == elf.SHN_ABS || !f.IsCode(value) {
			return &FormatError{File: def.who, Reason: fmt.Sprintf("indirect function %q: resolver %#x is not in an executable PT_LOAD", name, value), Class: ErrMalformed}
		}
		ld.record(img, uint64(r.Sym), addr, how, def.lib.name)
		img.lib.elfImports[img.bind[r.Sym]-1].ifunc = true
		img.lib.elfImports[img.bind[r.Sym]-1].self = self
		return nil
	}
	ld.record(img, uint64(r.Sym), addr, how, def.lib.name)
	img.lib.elfImports[img.bind[r.Sym]-1].self = self
	return nil
}

// mapSegments maps every PT_LOAD of img at bias+p_vaddr with MAP_FIXED
// over its slot's reservation, each with its final protection, except
// that a segment with a .bss tail to zero is mapped writable (and, if it
// was executable, not executable until its final protection is set, so
// that no page is ever writable and executable at once). Writable
// segments take their relocations as mapped; PT_GNU_RELRO becomes
// read-only afterwards.
//
// Consecutive segments that the file lays out as in memory (the same
// p_vaddr - p_offset, each wholly file-backed, no page between them), as
// ld's -z separate-code output has its headers, code and read-only data,
// are mapped with one mmap and the pages whose protection differs
// changed with mprotect: for libz, two calls instead of three. A mapping
// replaces part of a reservation, which the kernel must split and tear
// down, and costs more than a protection change.
func (ld *elfLoader) mapSegments(img *elfImage) error {
	lib, slot, pg := img.lib, img.lib.slot, ld.page
	f := lib.file
	img.initProt = make([]mem.Prot, len(f.Loads))
	lib.segs = make([]SegmentInfo, 0, len(f.Loads))
	for i, s := range f.Loads {
		prot := s.Prot
		vaddr := lib.bias + uintptr(s.Vaddr)
		// Inside the slot, which holds every segment's pages: no
		// rounding below can overflow.
		start := mem.AlignDown(vaddr, pg)
		fileEnd := start
		if s.Filesz > 0 {
			fileEnd, _ = mem.AlignUp(vaddr+uintptr(s.Filesz), pg)
		}
		end, _ := mem.AlignUp(vaddr+uintptr(s.Memsz), pg)
		tail := s.Memsz > s.Filesz && vaddr+uintptr(s.Filesz) < fileEnd
		if tail && prot&mem.ProtWrite == 0 {
			prot = (prot | mem.ProtRW) &^ mem.ProtExec
		}
		img.initProt[i] = prot
		info := SegmentInfo{Start: start, End: end, Prot: s.Prot, FileOffset: mem.AlignDown(s.Offset, uint64(pg)), FileEnd: fileEnd}
		if r := f.Relro; r.Size > 0 && r.Vaddr >= s.Vaddr && r.Vaddr-s.Vaddr < s.Memsz {
			// As glibc: both ends round down, so a partial last page
			// stays writable.
			info.RelroStart = mem.AlignDown(lib.bias+uintptr(r.Vaddr), pg)
			info.RelroEnd = max(mem.AlignDown(lib.bias+uintptr(r.Vaddr+r.Size), pg), info.RelroStart)
		}
		lib.segs = append(lib.segs, info)
	}
	for i := 0; i < len(f.Loads); {
		s, info := f.Loads[i], lib.segs[i]
		if s.Filesz == 0 {
			i++
			continue
		}
		// The run of segments [i, j) mapped together.
		j := i + 1
		for j < len(f.Loads) {
			prev, next := f.Loads[j-1], f.Loads[j]
			if prev.Memsz != prev.Filesz || next.Filesz == 0 || next.Vaddr-next.Offset != s.Vaddr-s.Offset ||
				lib.segs[j-1].FileEnd != lib.segs[j].Start {
				break
			}
			j++
		}
		end := lib.segs[j-1].FileEnd
		if err := slot.MapFile(img.obj, info.FileOffset, info.Start, end-info.Start, img.initProt[i]); err != nil {
			return errorf(img.who, "mapping PT_LOAD %d: %v", i, err)
		}
		for k := i + 1; k < j; k++ {
			if img.initProt[k] != img.initProt[i] {
				sk := lib.segs[k]
				if err := slot.Protect(sk.Start, sk.FileEnd-sk.Start, img.initProt[k]); err != nil {
					return errorf(img.who, "protecting PT_LOAD %d: %v", k, err)
				}
			}
		}
		i = j
	}
	for i, s := range f.Loads {
		info, prot := lib.segs[i], img.initProt[i]
		vaddr := lib.bias + uintptr(s.Vaddr)
		if s.Memsz > s.Filesz && vaddr+uintptr(s.Filesz) < info.FileEnd {
			// Zero the rest of the last file page: the file's bytes
			// past p_filesz (other sections) must not show through
			// the .bss.
			z := vaddr + uintptr(s.Filesz)
			clear(rawmem.Bytes(z, info.FileEnd-z))
		}
		if info.End > info.FileEnd {
			if err := slot.Commit(info.FileEnd, info.End-info.FileEnd, prot); err != nil {
				return errorf(img.who, "committing the .bss of PT_LOAD %d: %v", i, err)
			}
		}
	}
	return nil
}

// word returns the 8 bytes at vaddr (relative to the bias) of img, which
// the parser checked lie in a writable segment.
func (img *elfImage) word(vaddr uint64) []byte {
	if vaddr < img.wlo || vaddr-img.wlo+8 > uint64(len(img.wseg)) {
		s, _ := img.lib.file.segmentAt(vaddr, 8)
		img.wlo, img.wseg = s.Vaddr, rawmem.Bytes(img.lib.bias+uintptr(s.Vaddr), uintptr(s.Memsz))
	}
	return img.wseg[vaddr-img.wlo:]
}

// relocate applies img's relocations: RELR, then DT_RELA, then
// DT_JMPREL, as glibc does, then those that need an ifunc resolver
// (IRELATIVE, references to indirect functions), once everything else is
// in place, since a resolver may use the library's data.
func (ld *elfLoader) relocate(img *elfImage) error {
	f, bias := img.lib.file, img.lib.bias
	for _, off := range f.Relr {
		w := img.word(off)
		binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+uint64(bias))
	}
	var late []Reloc
	for _, tab := range [2][]Reloc{f.Rela, f.PLTRela} {
		for _, r := range tab {
			var val uint64
			switch r.Type {
			case elf.R_X86_64_RELATIVE:
				val = uint64(bias) + uint64(r.Addend)
			case elf.R_X86_64_IRELATIVE:
				late = append(late, r)
				continue
			case elf.R_X86_64_DTPMOD64, elf.R_X86_64_DTPOFF64:
				v, err := ld.tlsReloc(img, r)
				if err != nil {
					return err
				}
				val = v
			case elf.R_X86_64_TLSDESC:
				if err := ld.tlsDesc(img, r); err != nil {
					return err
				}
				continue
			default:
				// R_X86_64_64, GLOB_DAT and JUMP_SLOT are S+A (the
				// addend of the latter two is 0 in practice and
				// added as glibc and musl do). Symbol 0 is, as in
				// glibc, a local symbol of value 0: S is the bias.
				s := uint64(bias)
				if r.Sym != 0 {
					b := &img.lib.elfImports[img.bind[r.Sym]-1]
					if b.ifunc {
						late = append(late, r)
						continue
					}
					if b.tlsMod != 0 {
						return &FormatError{File: img.who, Reason: fmt.Sprintf("relocation %s at %#x takes the address of a thread-local variable, which has none", relocName(r.Type), r.Off), Class: ErrMalformed}
					}
					s = uint64(b.target(bias))
				}
				val = s + uint64(r.Addend)
			}
			binary.LittleEndian.PutUint64(img.word(r.Off), val)
		}
	}
	for _, r := range late {
		var val uint64
		if r.Type == elf.R_X86_64_IRELATIVE {
			val = uint64(ld.resolver(bias + uintptr(r.Addend)))
		} else {
			// The first of the symbol's late relocations resolves
			// it for all of them.
			b := &img.lib.elfImports[img.bind[r.Sym]-1]
			if b.ifunc {
				b.addr, b.ifunc, b.self = ld.resolver(b.target(bias)), false, false
			}
			val = uint64(b.target(bias)) + uint64(r.Addend)
		}
		binary.LittleEndian.PutUint64(img.word(r.Off), val)
	}
	return nil
}

// tlsReloc returns the value of a DTPMOD64 (the module id of the library
// defining the variable) or DTPOFF64 (its offset in the module's block,
// plus the addend) relocation. Symbol 0 is the library itself (the
// local-dynamic model).
func (ld *elfLoader) tlsReloc(img *elfImage, r Reloc) (uint64, error) {
	mod, off := img.lib.tlsID, uint64(0)
	if r.Sym != 0 {
		b := &img.lib.elfImports[img.bind[r.Sym]-1]
		if b.tlsMod == 0 {
			return 0, &FormatError{File: img.who, Reason: fmt.Sprintf("relocation %s at %#x refers to a symbol that is not thread-local", relocName(r.Type), r.Off), Class: ErrMalformed}
		}
		mod, off = uint64(b.tlsMod), uint64(b.addr)
	}
	if r.Type == elf.R_X86_64_DTPMOD64 {
		return mod, nil
	}
	return off + uint64(r.Addend), nil
}

// tlsDesc fills the TLS descriptor R_X86_64_TLSDESC relocates: the
// group's descriptor function, and a tls_index {module, offset + addend}
// of the group's array for its argument.
func (ld *elfLoader) tlsDesc(img *elfImage, r Reloc) error {
	g := ld.tls
	if g == nil || g.descUsed == g.nDesc {
		return &FormatError{File: img.who, Reason: fmt.Sprintf("relocation %s at %#x: no thread-local storage in the load", relocName(r.Type), r.Off), Class: ErrLink}
	}
	mod, err := ld.tlsReloc(img, Reloc{Off: r.Off, Type: elf.R_X86_64_DTPMOD64, Sym: r.Sym})
	if err != nil {
		return err
	}
	off, err := ld.tlsReloc(img, Reloc{Off: r.Off, Type: elf.R_X86_64_DTPOFF64, Sym: r.Sym, Addend: r.Addend})
	if err != nil {
		return err
	}
	idx := g.descIdx + uintptr(g.descUsed)*16
	g.descUsed++
	b := rawmem.Bytes(idx, 16)
	binary.LittleEndian.PutUint64(b, mod)
	binary.LittleEndian.PutUint64(b[8:], off)
	binary.LittleEndian.PutUint64(img.word(r.Off), uint64(g.descAddr))
	binary.LittleEndian.PutUint64(img.word(r.Off+8), uint64(idx))
	return nil
}

// resolver calls an ifunc resolver once per load.
func (ld *elfLoader) resolver(addr uintptr) uintptr {
	if a, ok := ld.ifuncs[addr]; ok {
		return a
	}
	a := callResolver(addr)
	if ld.ifuncs == nil {
		ld.ifuncs = map[uintptr]uintptr{}
	}
	ld.ifuncs[addr] = a
	return a
}

// protect sets the final protection of every segment mapped with another
// one, then makes PT_GNU_RELRO read-only. glibc protects RELRO before
// running initialisers, and so does privload: an initialiser has no
// business writing there.
func (ld *elfLoader) protect(img *elfImage) error {
	slot := img.lib.slot
	for i, s := range img.lib.segs {
		if img.initProt[i] != s.Prot {
			if err := slot.Protect(s.Start, s.End-s.Start, s.Prot); err != nil {
				return errorf(img.who, "protecting PT_LOAD %d: %v", i, err)
			}
		}
		if s.RelroEnd > s.RelroStart {
			if err := slot.Protect(s.RelroStart, s.RelroEnd-s.RelroStart, s.Prot&^mem.ProtWrite); err != nil {
				return errorf(img.who, "protecting PT_GNU_RELRO in PT_LOAD %d: %v", i, err)
			}
		}
	}
	return nil
}

// nullVector is the argv and envp initialisers are given: empty (argc 0).
// A package variable, so it never moves.
var nullVector [1]uintptr

// funcs returns the function pointers of an init or fini array, as
// relocated in memory, and of the single function fn (0: none), checking
// each one lies in an executable segment of the image before anything is
// called. Entries 0 and -1 are skipped, as glibc does.
func (l *Library) funcs(what string, arr Range, fn uint64) ([]uintptr, error) {
	var out []uintptr
	if fn != 0 {
		out = append(out, l.bias+uintptr(fn))
	}
	if arr.Size > 0 {
		b := rawmem.Bytes(l.bias+uintptr(arr.Vaddr), uintptr(arr.Size))
		for i := 0; i+8 <= len(b); i += 8 {
			p := uintptr(binary.LittleEndian.Uint64(b[i:]))
			if p == 0 || p == ^uintptr(0) {
				continue
			}
			if p < l.bias || !l.file.IsCode(uint64(p-l.bias)) {
				return nil, fmt.Errorf("privload: %s: %s entry %d (%#x) is not in an executable segment of the image", l.path, what, i/8, p)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// runInit calls DT_INIT, then each DT_INIT_ARRAY entry in order, with
// (argc, argv, envp) = (0, {NULL}, {NULL}).
func runInit(l *Library) error {
	fns, err := l.funcs("DT_INIT_ARRAY", l.file.InitArray, l.file.Init)
	if err != nil {
		return err
	}
	vec := uintptr(unsafe.Pointer(&nullVector))
	l.mu.Lock()
	l.inited = true
	l.mu.Unlock()
	for _, fn := range fns {
		native.Call3(fn, 0, vec, vec)
	}
	return nil
}

// runFini calls the DT_FINI_ARRAY entries in reverse order, then DT_FINI.
func (l *Library) runFini() error {
	fns, err := l.funcs("DT_FINI_ARRAY", l.file.FiniArray, 0)
	if err != nil {
		return err
	}
	if l.file.Fini != 0 {
		fns = append([]uintptr{l.bias + uintptr(l.file.Fini)}, fns...)
	}
	for i := len(fns) - 1; i >= 0; i-- {
		native.Call0(fns[i])
	}
	return nil
}
