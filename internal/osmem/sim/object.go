package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/reachvm/reachvm/internal/osmem"
)

// object is a simulated file or shared memory object. It holds no data.
type object struct {
	// owner is the simulator that made the object; other simulators
	// reject it.
	owner *OS
	// name, size and shared are immutable.
	name   string
	size   uint64
	shared bool
	// serial distinguishes objects of equal name.
	serial int
	// dev and inode identify a file under Linux rules, as /proc/self/maps
	// shows them; zero otherwise.
	dev, inode uint64
	// file marks a shared view of a file (OpenSharedFile), which the
	// kernel's map shows by its path; a shared object that is not a
	// file is a memfd or a section.
	file bool
	// closed is set by CloseObject. Guarded by owner.mu.
	closed bool
	// reserve marks a reserve-only shared object (CreateSharedReserve);
	// committed then has one bit per page of it, set once a Commit through
	// a view committed the page. Guarded by owner.mu.
	reserve   bool
	committed []uint64
}

// isCommitted reports whether page i of a reserve object is committed.
func (o *object) isCommitted(i uint64) bool { return o.committed[i/64]&(1<<(i%64)) != 0 }

// Name returns the file path or the shared object's name.
func (o *object) Name() string { return o.name }

// Size returns the object's size in bytes.
func (o *object) Size() uint64 { return o.size }

// Shared reports whether views of the object are shared.
func (o *object) Shared() bool { return o.shared }

// FileID returns the file's device and inode (osmem.FileIdentity), so that
// views recorded from the simulator carry the identity Regions reports.
func (o *object) FileID() (dev, inode uint64) { return o.dev, o.inode }

// mapName is the name a view of o shows in Regions: the path for a file;
// for a shared object its name under Windows rules and, under Linux rules,
// what /proc/self/maps shows for a memfd, so that code comparing names
// against the kernel's is exercised on the simulator too.
func (o *object) mapName(r osmem.Rules) string {
	if o.shared && !o.file && r == osmem.RulesLinux {
		return "/memfd:" + o.name + " (deleted)"
	}
	return o.name
}

// OpenFile opens path for private mapping. The simulator reads nothing but
// the file's size (the real file must exist and be a regular file). Under
// Windows rules an empty file fails with ERROR_FILE_INVALID, as
// CreateFileMapping does.
func (s *OS) OpenFile(path string) (osmem.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "open"
	if err := s.enterLocked(op, 0, 0); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		code := uintptr(0)
		if errors.Is(err, fs.ErrNotExist) {
			code = enoent // ERROR_FILE_NOT_FOUND has the same number.
		}
		return nil, fail(op, 0, 0, osmem.ErrInvalid, code, "%v", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fail(op, 0, 0, osmem.ErrInvalid, 0, "%s: not a regular file", path)
	}
	if st.Size() == 0 && s.windows() {
		return nil, fail(op, 0, 0, osmem.ErrInvalid, winFileInvalid, "%s: empty file cannot be mapped", path)
	}
	s.objects++
	o := &object{owner: s, name: path, size: uint64(st.Size()), serial: s.objects}
	if !s.windows() {
		o.dev, o.inode = fileID(st)
	}
	return o, nil
}

// OpenSharedFile returns a shared object of the regular file open as fd
// (osmem.SharedFileOpener), named name: the simulator reads the file's
// size and identity with fstat. Under Windows rules it fails with
// ErrNotSupported.
func (s *OS) OpenSharedFile(fd int, name string) (osmem.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "open-shared"
	if err := s.enterLocked(op, 0, 0); err != nil {
		return nil, err
	}
	if s.windows() {
		return nil, fail(op, 0, 0, osmem.ErrNotSupported, 0, "no shared file views under Windows rules")
	}
	size, regular, dev, inode, err := fstatFD(fd)
	if err != nil {
		return nil, fail(op, 0, 0, osmem.ErrInvalid, ebadf, "descriptor %d: %v", fd, err)
	}
	if !regular {
		return nil, fail(op, 0, 0, osmem.ErrInvalid, 0, "%s: not a regular file", name)
	}
	s.objects++
	return &object{owner: s, name: name, size: size, shared: true, file: true, serial: s.objects, dev: dev, inode: inode}, nil
}

// CreateShared creates a shared memory object of size bytes. Under both
// rules size must be a non-zero multiple of the page no larger than the
// address space, and name must not contain NUL nor the separator the
// native backend refuses: '/' in memfd names, '\' in section names.
func (s *OS) CreateShared(name string, size uint64) (osmem.Object, error) {
	return s.createShared("create-shared", name, size, false)
}

// CreateSharedReserve creates a shared object whose pages are reserved
// until a Commit through a view commits them (osmem.SharedReserver): a
// SEC_RESERVE section. Under Linux rules it fails with ErrNotSupported, as
// the native Linux backend does (a memfd needs no such thing).
func (s *OS) CreateSharedReserve(name string, size uint64) (osmem.Object, error) {
	if !s.windows() {
		return nil, fail("create-shared-reserve", 0, uintptr(size), osmem.ErrNotSupported, 0, "no reserve-only shared objects under Linux rules")
	}
	return s.createShared("create-shared-reserve", name, size, true)
}

func (s *OS) createShared(op, name string, size uint64, reserve bool) (osmem.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enterLocked(op, 0, uintptr(size)); err != nil {
		return nil, err
	}
	if size == 0 || size%uint64(s.page) != 0 || size > uint64(s.hi) {
		return nil, fail(op, 0, uintptr(size), osmem.ErrInvalid, 0, "size zero, unaligned or too large")
	}
	sep := "/"
	if s.windows() {
		sep = `\`
	}
	if strings.ContainsRune(name, 0) || strings.Contains(name, sep) {
		return nil, fail(op, 0, uintptr(size), osmem.ErrInvalid, 0, "bad shared object name %q", name)
	}
	s.objects++
	o := &object{owner: s, name: name, size: size, shared: true, serial: s.objects, reserve: reserve}
	if reserve {
		pages := size / uint64(s.page)
		o.committed = make([]uint64, (pages+63)/64)
	}
	return o, nil
}

// CloseObject closes obj. Views stay. Closing twice, or closing another
// backend's object, is ErrInvalid (EBADF, ERROR_INVALID_HANDLE).
func (s *OS) CloseObject(obj osmem.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.objectLocked("close", obj)
	if err != nil {
		return err
	}
	o.closed = true
	return nil
}

// objectLocked returns obj as one of s's open objects.
//
// Preconditions: s.mu is held.
func (s *OS) objectLocked(op string, obj osmem.Object) (*object, error) {
	o, ok := obj.(*object)
	if !ok || o == nil || o.owner != s {
		return nil, fail(op, 0, 0, osmem.ErrInvalid, 0, "object %T does not belong to this simulator", obj)
	}
	if o.closed {
		code := uintptr(ebadf)
		if s.windows() {
			code = winInvalidHandle
		}
		return nil, fail(op, 0, 0, osmem.ErrInvalid, code, "object %s is closed", o.name)
	}
	return o, nil
}

// String describes the object for test failures.
func (o *object) String() string {
	kind := "file"
	if o.shared {
		kind = "shared"
	}
	return fmt.Sprintf("%s#%d(%q, %#x)", kind, o.serial, o.name, o.size)
}
