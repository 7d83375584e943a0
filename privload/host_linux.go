//go:build linux

package privload

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
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
	// syms caches lookups, by version ("" for none) then name; 0 records
	// a miss.
	syms map[string]map[string]uintptr
}

var (
	hostMu   sync.Mutex
	hostLibs = map[string]*hostLib{}

	dlOnce  sync.Once
	dlErr   error
	dlsymFn uintptr
	dlvsym  uintptr
)

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
			if err1 == nil && err2 == nil && s != 0 && v != 0 {
				dlsymFn, dlvsym, dlErr = s, v, nil
				return
			}
			dlErr = fmt.Errorf("no dlsym/dlvsym in %s", name)
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
	h := &hostLib{name: name, handle: handle, syms: map[string]map[string]uintptr{}}
	hostLibs[name] = h
	return h, nil
}

// sym finds name (cname is it with a NUL) at version v (nil: dlsym's
// choice) in the host library and what it depends on, as dlsym/dlvsym on
// its handle do.
func (h *hostLib) sym(name string, cname []byte, v *Version) uintptr {
	ver := ""
	if v != nil {
		ver = v.Name
	}
	h.mu.Lock()
	m := h.syms[ver]
	a, ok := m[name]
	h.mu.Unlock()
	if ok {
		return a
	}
	if v == nil {
		a = FuncAt(dlsymFn, "dlsym").Call(h.handle, uintptr(unsafe.Pointer(&cname[0])))
	} else {
		a = FuncAt(dlvsym, "dlvsym").Call(h.handle, uintptr(unsafe.Pointer(&cname[0])), uintptr(unsafe.Pointer(&v.cname[0])))
	}
	h.mu.Lock()
	if m == nil {
		m = map[string]uintptr{}
		h.syms[ver] = m
	}
	m[name] = a
	h.mu.Unlock()
	return a
}
