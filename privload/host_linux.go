//go:build linux

package privload

import (
	"fmt"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/native"
)

// This file binds system libraries to the host's own copies, as
// DynamoRIO binds the libraries it leaves to the system loader: the host
// dynamic linker opens them (dlopen, which for libc returns the copy the
// process already runs) and finds their symbols (dlsym, or dlvsym for a
// versioned reference, so that memcpy@GLIBC_2.2.5 and memcpy@@GLIBC_2.14
// stay distinct). Host libraries are never closed: the process keeps its
// system libraries for its lifetime, so addresses found once stay valid
// and are cached, which makes binding the second load of a library a
// matter of map lookups.

// hostLib is a system library opened by the host's dynamic linker.
type hostLib struct {
	name   string
	handle uintptr

	mu sync.Mutex
	// syms caches lookups, by version ("" for none) then name; a zero
	// address records a miss.
	syms map[string]map[string]hostSym
}

var (
	hostMu   sync.Mutex
	hostLibs = map[string]*hostLib{}

	dlOnce   sync.Once
	dlErr    error
	dlsymFn  uintptr
	dlvsym   uintptr
	dladdrFn uintptr

	// hostNames caches the base names of the host's objects, by the
	// dli_fname pointer dladdr returns (stable while the object is
	// loaded, and host objects stay loaded).
	hostNames = map[uintptr]string{}
)

// hostSym is a host symbol found: its address and the base name of the
// object that defines it.
type hostSym struct {
	addr uintptr
	from string
}

// dlFuncs finds the host's dlsym and dlvsym (in libc since glibc 2.34,
// in libdl before).
func dlFuncs() error {
	dlOnce.Do(func() {
		for _, name := range []string{"libc.so.6", "libdl.so.2"} {
			h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
			if err != nil {
				dlErr = err
				continue
			}
			s, err1 := purego.Dlsym(h, "dlsym")
			v, err2 := purego.Dlsym(h, "dlvsym")
			a, err3 := purego.Dlsym(h, "dladdr")
			if err1 == nil && err2 == nil && err3 == nil && s != 0 && v != 0 && a != 0 {
				dlsymFn, dlvsym, dladdrFn, dlErr = s, v, a, nil
				return
			}
			dlErr = fmt.Errorf("no dlsym/dlvsym/dladdr in %s", name)
		}
	})
	return dlErr
}

// hostOpen opens the system library name through the host's dlopen.
func hostOpen(name string) (*hostLib, error) {
	if err := dlFuncs(); err != nil {
		return nil, fmt.Errorf("finding the host's dlsym: %w", err)
	}
	hostMu.Lock()
	defer hostMu.Unlock()
	if h, ok := hostLibs[name]; ok {
		return h, nil
	}
	handle, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	h := &hostLib{name: name, handle: handle, syms: map[string]map[string]hostSym{}}
	hostLibs[name] = h
	return h, nil
}

// sym finds name (cname is it with a NUL) at version v (nil: dlsym's
// choice) as dlsym/dlvsym on the library's handle do: in the library and
// then in its own dependencies (so that libpthread.so.0's symbols, which
// glibc 2.34 moved into libc, are still found through it). It also
// returns the base name of the object that defines it (dladdr).
func (h *hostLib) sym(name string, cname []byte, v *Version) hostSym {
	ver := ""
	if v != nil {
		ver = v.Name
	}
	h.mu.Lock()
	m := h.syms[ver]
	s, ok := m[name]
	h.mu.Unlock()
	if ok {
		return s
	}
	if v == nil {
		s.addr = native.Call2(dlsymFn, h.handle, uintptr(unsafe.Pointer(&cname[0])))
	} else {
		s.addr = native.Call3(dlvsym, h.handle, uintptr(unsafe.Pointer(&cname[0])), uintptr(unsafe.Pointer(&v.cname[0])))
	}
	if s.addr != 0 {
		s.from = hostObject(s.addr, h.name)
	}
	h.mu.Lock()
	if m == nil {
		m = map[string]hostSym{}
		h.syms[ver] = m
	}
	m[name] = s
	h.mu.Unlock()
	return s
}

// dlInfo is glibc's Dl_info.
type dlInfo struct {
	fname, fbase, sname, saddr uintptr
}

// hostObject returns the base name of the host object containing addr,
// or def if dladdr does not know.
func hostObject(addr uintptr, def string) string {
	var info dlInfo
	if native.Call2(dladdrFn, addr, uintptr(unsafe.Pointer(&info))) == 0 || info.fname == 0 {
		return def
	}
	hostMu.Lock()
	defer hostMu.Unlock()
	if n, ok := hostNames[info.fname]; ok {
		return n
	}
	b := make([]byte, 0, 64)
	for i := uintptr(0); i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(nil), info.fname+i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	n := filepath.Base(string(b))
	hostNames[info.fname] = n
	return n
}
