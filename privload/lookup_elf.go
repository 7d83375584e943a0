//go:build !windows

package privload

// Lookup and LookupVersion of ELF libraries, the only kind Load makes off
// Windows. The Windows loader, which makes only PE libraries, has its own
// (load_windows.go).

// Lookup returns the address of the library's exported function or
// object name, found as dlsym finds it (an unversioned definition, else
// the default version) through DT_GNU_HASH (DT_HASH if the file has no
// GNU table). For an indirect function (STT_GNU_IFUNC) it is the address
// the resolver returns, as with dlsym; none if the library was loaded with
// SkipIFunc. Thread-local symbols are not reported: their address is not
// the symbol's value. After Close it finds nothing.
func (l *Library) Lookup(name string) (uintptr, bool) {
	if l.closed.Load() {
		return 0, false
	}
	i, ok := l.file.find(name, gnuHashOf(name), nil, lookupNewest)
	if !ok {
		return 0, false
	}
	return l.defAddr(i)
}

// LookupVersion is Lookup for the definition of name at version
// (name@version or name@@version); an unversioned definition also
// satisfies it, as in glibc's dlvsym. After Close it finds nothing.
func (l *Library) LookupVersion(name, version string) (uintptr, bool) {
	if version == "" {
		return l.Lookup(name)
	}
	if l.closed.Load() {
		return 0, false
	}
	req := &Version{Name: version, hash: sysvHashOf(version)}
	i, ok := l.file.find(name, gnuHashOf(name), req, lookupNewest)
	if !ok {
		return 0, false
	}
	return l.defAddr(i)
}
