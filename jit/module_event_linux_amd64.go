package jit

import (
	"maps"
	"sync"

	"github.com/reachvm/reachvm/aspacem"
)

// Module is a file of application code, as a client is told of it: the
// program's executable, its interpreter, a library ld.so mapped. The
// translator tells a client of a module (Client.ModuleLoad) before it
// translates the module's first block, so before any of the module's
// code runs under it, and of its going (Client.ModuleUnload) when the
// application unmaps its first mapping.
type Module struct {
	// Path is the file's path, as the kernel shows it.
	Path string
	// Base is the address of the file's first mapping, from which the
	// file's offsets count (the load bias for a shared object or a PIE
	// built from address 0).
	Base uintptr
	// End is the end of the file's mappings that follow Base without a
	// gap, when it was told of.
	End uintptr

	// syms are the module's functions, read on first use.
	once sync.Once
	syms *funcSyms
}

// symbols reads the module's symbol tables once.
func (mod *Module) symbols() *funcSyms {
	mod.once.Do(func() {
		mod.syms = fileModule(mod.Path, mod.Base, false).syms
	})
	return mod.syms
}

// Lookup returns the address of the function called name in the module's
// symbol tables (.symtab, else .dynsym), loaded.
func (mod *Module) Lookup(name string) (uintptr, bool) {
	s := mod.symbols()
	if s == nil {
		return 0, false
	}
	p, ok := s.byName[name]
	return p, ok
}

// Symbol returns the name and start of the function holding pc.
func (mod *Module) Symbol(pc uintptr) (name string, start uintptr, ok bool) {
	name, start, _, ok = mod.symbols().lookup(pc)
	return name, start, ok
}

// clientModules are the modules the address space's client was told of,
// shared by its machines.
type clientModules struct {
	// mu guards mods and is held while the client's ModuleLoad and
	// ModuleUnload run: a thread about to translate a module another
	// is telling the client of waits for the event to end.
	mu   sync.Mutex
	mods map[libKey]*Module
}

// clientModule tells the client of the module holding pc if it has not
// been told of it: before pc's block is translated.
func (m *Machine) clientModule(pc uintptr) {
	c := m.opts.Client
	_, _ = m.codes.at(pc) // loads the map if pc is new code
	path, start, lo, hi := m.codes.file(pc)
	m.cmodLo, m.cmodHi = lo, hi
	if path == "" {
		return
	}
	cm := &m.cs.cmods
	cm.mu.Lock()
	defer cm.mu.Unlock()
	key := libKey{path, start}
	if _, ok := cm.mods[key]; ok {
		return
	}
	if cm.mods == nil {
		cm.mods = make(map[libKey]*Module)
	}
	mod := &Module{Path: path, Base: start, End: hi}
	cfg := m.v.Space().Config()
	for _, s := range m.v.Space().Segments(start, cfg.Hi) {
		if s.Start != mod.End && s.Start > start || s.Kind == aspacem.KindFree || s.Name != path {
			if s.Start >= hi {
				break
			}
			continue
		}
		mod.End = max(mod.End, s.End)
	}
	cm.mods[key] = mod
	if c.ModuleLoad != nil {
		c.ModuleLoad(mod)
	}
}

// clientUnmapped tells the client of the modules whose first mapping
// was in r, which the application unmapped or replaced.
func (m *Machine) clientUnmapped(lo, hi uintptr) {
	c := m.opts.Client
	if c == nil || c.ModuleLoad == nil && c.ModuleUnload == nil {
		return
	}
	m.cmodLo, m.cmodHi = 0, 0
	cm := &m.cs.cmods
	cm.mu.Lock()
	defer cm.mu.Unlock()
	for key, mod := range cm.mods {
		if mod.Base >= lo && mod.Base < hi {
			delete(cm.mods, key)
			if c.ModuleUnload != nil {
				c.ModuleUnload(mod)
			}
		}
	}
}

// Module returns the module holding the block's first instruction, nil
// for code in no file (the vDSO, code the program generated). It is
// known only to clients that take module events (ModuleLoad or
// ModuleUnload): for others it is nil.
func (b *Block) Module() *Module {
	m := b.thread.m
	path, start, _, _ := m.codes.file(b.PC())
	if path == "" {
		return nil
	}
	cm := &m.cs.cmods
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return cm.mods[libKey{path, start}]
}

// Function is a function of a module's symbol tables, as Symbol names
// it: Symbol gives Name and Start for every pc in [Start, End).
type Function struct {
	Name       string
	Start, End uintptr
}

// Functions returns the module's functions by address, each with the
// range of addresses Symbol names it for: what a client that cannot
// call Symbol (a native one) looks addresses up in.
func (mod *Module) Functions() []Function {
	s := mod.symbols()
	if s == nil {
		return nil
	}
	fs := make([]Function, len(s.addrs))
	for i, a := range s.addrs {
		_, _, end, _ := s.lookup(a)
		fs[i] = Function{s.names[i], a, end}
	}
	return fs
}

// Names returns every name Lookup finds, with the address it finds
// (more than one name may give an address), in a map of the caller's.
func (mod *Module) Names() map[string]uintptr {
	s := mod.symbols()
	if s == nil {
		return nil
	}
	return maps.Clone(s.byName)
}
