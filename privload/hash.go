package privload

import (
	"debug/elf"
)

// This file holds the dynamic symbol table and its two hash tables.
// DT_GNU_HASH is the one every modern toolchain emits and the fast one: a
// Bloom filter rejects most absent names with one memory read, and a hit
// costs one bucket read plus a short walk of a chain of 32-bit hashes,
// comparing strings only when the hash matches. DT_HASH (SysV) is the
// fallback for files that have nothing else.

// gnuHash is a validated DT_GNU_HASH table.
type gnuHash struct {
	symoffset uint32
	shift     uint32
	// bloom holds the filter's 64-bit words (a power of two of them),
	// buckets nbuckets 32-bit words and chain one 32-bit word per symbol
	// from symoffset on, all as raw little-endian file bytes.
	bloom    []byte
	nbloom   uint32
	buckets  []byte
	nbuckets uint32
	chain    []byte
	// empty: no bucket is used, so the table hashes no symbol and its
	// symoffset need not be the symbol count.
	empty bool
}

// sysvHash is a validated DT_HASH table.
type sysvHash struct {
	nbucket, nchain uint32
	buckets, chain  []byte
}

// gnuHashOf is the GNU hash function (Bernstein's h*33 + c).
func gnuHashOf[T string | []byte](name T) uint32 {
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	return h
}

// sysvHashOf is the SysV ELF hash function.
func sysvHashOf[T string | []byte](name T) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<4 + uint32(name[i])
		g := h & 0xf0000000
		h ^= g >> 24
		h &^= g
	}
	return h
}

// symbols parses the symbol table, the hash tables and the version
// tables. maxRef is the highest symbol index a relocation names: a file
// whose only hash table is a DT_GNU_HASH that hashes nothing (every
// dynamic symbol an import) does not say how many symbols it has, and
// some linkers then leave symoffset below the imports; the relocations
// bound the table instead.
func (p *parser) symbols(t *dynTags, maxRef uint64) error {
	f := p.f
	symtab, hasSymtab := t.seen.get(elf.DT_SYMTAB)
	if ent, ok := t.seen.get(elf.DT_SYMENT); ok && ent != symSize {
		return p.malformed("DT_SYMENT %d, want %d", ent, symSize)
	}
	gnuCount, sysvCount := uint64(0), uint64(0)
	if addr, ok := t.seen.get(elf.DT_GNU_HASH); ok {
		g, n, err := p.gnuHash(addr)
		if err != nil {
			return err
		}
		f.gnu, gnuCount = g, n
	}
	if addr, ok := t.seen.get(elf.DT_HASH); ok {
		s, err := p.sysvHash(addr)
		if err != nil {
			return err
		}
		f.sysv, sysvCount = s, uint64(s.nchain)
	}
	if !hasSymtab {
		if f.gnu != nil || f.sysv != nil {
			return p.malformed("hash table without DT_SYMTAB")
		}
		return nil
	}
	if f.gnu == nil && f.sysv == nil {
		return p.malformed("DT_SYMTAB without DT_GNU_HASH or DT_HASH: the symbol count is unknown")
	}
	if len(f.strtab) == 0 {
		return p.malformed("DT_SYMTAB without DT_STRTAB")
	}
	n := max(gnuCount, sysvCount)
	if f.sysv == nil && f.gnu != nil && f.gnu.empty && maxRef >= n {
		n = maxRef + 1
	}
	size, ok := mul(n, symSize)
	if !ok {
		return p.malformed("%d symbols overflow", n)
	}
	b, _, ok := f.fileBytes(symtab, size)
	if !ok {
		return p.malformed("DT_SYMTAB [%#x, +%#x) (%d symbols) does not lie in the file-backed part of a PT_LOAD", symtab, size, n)
	}
	f.symtab = b
	f.NumSymbols = int(n)
	if addr, ok := t.seen.get(elf.DT_VERSYM); ok {
		vb, _, ok := f.fileBytes(addr, n*2)
		if !ok {
			return p.malformed("DT_VERSYM [%#x, +%#x) does not lie in the file-backed part of a PT_LOAD", addr, n*2)
		}
		f.versym = vb
	}
	// Every name must be a terminated string of DT_STRTAB, so that
	// Symbol and Lookup cannot fail later. Names may share bytes (ld
	// merges common suffixes), but a real table is not read many times
	// over: bounding the total keeps every pass over the names, here and
	// in the hash checks, linear in the file's size.
	budget := 16*uint64(len(f.strtab)) + 64<<10
	var total uint64
	for i := 0; i < f.NumSymbols; i++ {
		off := uint64(le.Uint32(b[i*symSize:]))
		name, ok := f.strBytes(off)
		if !ok {
			return p.malformed("symbol %d: name offset %#x is outside DT_STRTAB (%#x bytes)", i, off, len(f.strtab))
		}
		if total += uint64(len(name)); total > budget {
			return p.malformed("symbol names overlap excessively: %d symbols read more than %d bytes of a %d-byte DT_STRTAB", i+1, budget, len(f.strtab))
		}
	}
	if err := p.versions(t); err != nil {
		return err
	}
	if f.gnu != nil && f.sysv != nil && gnuCount != sysvCount && !(f.gnu.empty && gnuCount < sysvCount) {
		return p.malformed("DT_GNU_HASH covers %d symbols, DT_HASH %d", gnuCount, sysvCount)
	}
	if f.gnu != nil {
		if err := p.verifyGNU(); err != nil {
			return err
		}
	}
	if f.sysv != nil {
		return p.verifySysV()
	}
	return nil
}

// nameBytes returns symbol i's name; i must be below NumSymbols.
func (f *File) nameBytes(i uint64) []byte {
	b, _ := f.strBytes(uint64(le.Uint32(f.symtab[i*symSize:])))
	return b
}

// verifyGNU checks that DT_GNU_HASH finds every symbol it hashes: each
// chain is a contiguous run of symbols of one bucket, started by that
// bucket's entry, each carrying its own hash and set in the Bloom filter;
// and that no exported symbol is left unhashed. One pass, linear in the
// symbols' names: after it, Lookup finds every exported symbol.
func (p *parser) verifyGNU() error {
	f, g := p.f, p.f.gnu
	// Symbols past the chains (the imports of a table that hashes
	// nothing, counted from the relocations) are not hashed either.
	n := min(uint64(f.NumSymbols), uint64(g.symoffset)+uint64(len(g.chain)/4))
	for i := uint64(1); i < uint64(f.NumSymbols); i++ {
		if i == uint64(g.symoffset) {
			i = max(n, i)
			if i >= uint64(f.NumSymbols) {
				break
			}
		}
		if s, _ := f.Symbol(int(i)); exported(s) {
			return p.malformed("DT_GNU_HASH: exported symbol %d %q is not hashed (symoffset %d, %d chain entries), so no lookup finds it", i, s.Name, g.symoffset, len(g.chain)/4)
		}
	}
	// started[b] records that bucket b's chain was seen to start where
	// the bucket says.
	started := make([]uint64, (g.nbuckets+63)/64)
	isStarted := func(b uint32) bool { return started[b/64]&(1<<(b%64)) != 0 }
	var prevBucket uint32
	for i := uint64(g.symoffset); i < n; i++ {
		rel := (i - uint64(g.symoffset)) * 4
		h := gnuHashOf(f.nameBytes(i))
		b := h % g.nbuckets
		if h|1 != le.Uint32(g.chain[rel:])|1 {
			return p.malformed("DT_GNU_HASH: chain word of symbol %d %q does not hold its hash", i, f.nameBytes(i))
		}
		first := i == uint64(g.symoffset) || le.Uint32(g.chain[rel-4:])&1 != 0
		switch {
		case first && uint64(le.Uint32(g.buckets[b*4:])) != i:
			return p.malformed("DT_GNU_HASH: symbol %d %q starts a chain, but its bucket %d points at %d", i, f.nameBytes(i), b, le.Uint32(g.buckets[b*4:]))
		case first && isStarted(b):
			return p.malformed("DT_GNU_HASH: bucket %d has two chains", b)
		case !first && b != prevBucket:
			return p.malformed("DT_GNU_HASH: symbol %d %q is in the chain of bucket %d, but hashes to bucket %d", i, f.nameBytes(i), prevBucket, b)
		}
		if first {
			started[b/64] |= 1 << (b % 64)
		}
		prevBucket = b
		w := uint64(h/64) & uint64(g.nbloom-1)
		mask := uint64(1)<<(h%64) | uint64(1)<<((h>>g.shift)%64)
		if le.Uint64(g.bloom[w*8:])&mask != mask {
			return p.malformed("DT_GNU_HASH: the Bloom filter rejects symbol %d %q", i, f.nameBytes(i))
		}
	}
	for b := uint32(0); b < g.nbuckets; b++ {
		if le.Uint32(g.buckets[b*4:]) != 0 && !isStarted(b) {
			return p.malformed("DT_GNU_HASH: bucket %d points into the middle of a chain", b)
		}
	}
	return nil
}

// verifySysV checks that DT_HASH's chains hold no cycle and no symbol
// twice, that each symbol sits in the chain of its hash's bucket, and that
// every exported symbol is in a chain. Linear, like verifyGNU.
func (p *parser) verifySysV() error {
	f, t := p.f, p.f.sysv
	seen := make([]bool, t.nchain)
	for b := uint32(0); b < t.nbucket; b++ {
		for i := le.Uint32(t.buckets[b*4:]); i != 0; i = le.Uint32(t.chain[i*4:]) {
			if seen[i] {
				return p.malformed("DT_HASH: symbol %d is reached twice (a cycle or shared chain)", i)
			}
			seen[i] = true
			if int(i) >= f.NumSymbols {
				return p.malformed("DT_HASH: chain reaches symbol %d of %d", i, f.NumSymbols)
			}
			if h := sysvHashOf(f.nameBytes(uint64(i))); h%t.nbucket != b {
				return p.malformed("DT_HASH: symbol %d %q is in the chain of bucket %d, but hashes to bucket %d", i, f.nameBytes(uint64(i)), b, h%t.nbucket)
			}
		}
	}
	for i := 1; i < f.NumSymbols && i < len(seen); i++ {
		if s, _ := f.Symbol(i); exported(s) && !seen[i] {
			return p.malformed("DT_HASH: exported symbol %d %q is in no chain", i, s.Name)
		}
	}
	return nil
}

func (p *parser) gnuHash(addr uint64) (*gnuHash, uint64, error) {
	f := p.f
	hdr, _, ok := f.fileBytes(addr, 16)
	if !ok {
		return nil, 0, p.malformed("DT_GNU_HASH header at %#x does not lie in the file-backed part of a PT_LOAD", addr)
	}
	g := &gnuHash{
		nbuckets:  le.Uint32(hdr[0:]),
		symoffset: le.Uint32(hdr[4:]),
		nbloom:    le.Uint32(hdr[8:]),
		shift:     le.Uint32(hdr[12:]),
	}
	switch {
	case g.nbuckets == 0:
		return nil, 0, p.malformed("DT_GNU_HASH has no buckets")
	case g.nbloom == 0 || g.nbloom&(g.nbloom-1) != 0:
		return nil, 0, p.malformed("DT_GNU_HASH Bloom filter size %d is not a power of two", g.nbloom)
	case g.shift >= 32:
		return nil, 0, p.malformed("DT_GNU_HASH Bloom shift %d is not below 32", g.shift)
	}
	// The sizes are 32-bit counts times small constants: no overflow in
	// 64 bits.
	bloomSize := uint64(g.nbloom) * 8
	bucketSize := uint64(g.nbuckets) * 4
	body, _, ok := f.fileBytes(addr+16, bloomSize+bucketSize)
	if !ok {
		return nil, 0, p.malformed("DT_GNU_HASH Bloom filter and buckets [%#x, +%#x) do not lie in the file-backed part of a PT_LOAD", addr+16, bloomSize+bucketSize)
	}
	g.bloom, g.buckets = body[:bloomSize], body[bloomSize:]
	var maxBucket uint32
	for i := uint32(0); i < g.nbuckets; i++ {
		b := le.Uint32(g.buckets[i*4:])
		if b != 0 && b < g.symoffset {
			return nil, 0, p.malformed("DT_GNU_HASH bucket %d points at symbol %d, below symoffset %d", i, b, g.symoffset)
		}
		maxBucket = max(maxBucket, b)
	}
	count := uint64(g.symoffset)
	g.empty = maxBucket == 0
	chainAddr := addr + 16 + bloomSize + bucketSize
	if maxBucket != 0 {
		// The chains run from symoffset to the end of the symbol table;
		// the last symbol's chain word has bit 0 set. Walk the last
		// bucket's chain to find it, reading only what the file has.
		s, ok := f.segmentAt(chainAddr, 0)
		if !ok || chainAddr-s.Vaddr > s.Filesz {
			return nil, 0, p.malformed("DT_GNU_HASH chains at %#x do not lie in the file-backed part of a PT_LOAD", chainAddr)
		}
		avail := s.Filesz - (chainAddr - s.Vaddr)
		i := uint64(maxBucket)
		for {
			rel := (i - uint64(g.symoffset)) * 4
			if rel+4 > avail {
				return nil, 0, p.malformed("DT_GNU_HASH chain from bucket symbol %d runs past the end of its segment", maxBucket)
			}
			w, _, _ := f.fileBytes(chainAddr+rel, 4)
			if le.Uint32(w)&1 != 0 {
				break
			}
			i++
		}
		count = i + 1
	}
	chainSize := (count - uint64(g.symoffset)) * 4
	chain, _, ok := f.fileBytes(chainAddr, chainSize)
	if !ok {
		return nil, 0, p.malformed("DT_GNU_HASH chains [%#x, +%#x) do not lie in the file-backed part of a PT_LOAD", chainAddr, chainSize)
	}
	g.chain = chain
	return g, count, nil
}

func (p *parser) sysvHash(addr uint64) (*sysvHash, error) {
	f := p.f
	hdr, _, ok := f.fileBytes(addr, 8)
	if !ok {
		return nil, p.malformed("DT_HASH header at %#x does not lie in the file-backed part of a PT_LOAD", addr)
	}
	h := &sysvHash{nbucket: le.Uint32(hdr[0:]), nchain: le.Uint32(hdr[4:])}
	if h.nbucket == 0 {
		return nil, p.malformed("DT_HASH has no buckets")
	}
	size := (uint64(h.nbucket) + uint64(h.nchain)) * 4
	body, _, ok := f.fileBytes(addr+8, size)
	if !ok {
		return nil, p.malformed("DT_HASH buckets and chains [%#x, +%#x) do not lie in the file-backed part of a PT_LOAD", addr+8, size)
	}
	h.buckets, h.chain = body[:uint64(h.nbucket)*4], body[uint64(h.nbucket)*4:]
	for i := 0; i+4 <= len(body); i += 4 {
		if v := le.Uint32(body[i:]); v >= h.nchain {
			return nil, p.malformed("DT_HASH entry %d is %d, not below nchain %d", i/4, v, h.nchain)
		}
	}
	return h, nil
}

// Symbol returns dynamic symbol i, and false if there is no such symbol.
func (f *File) Symbol(i int) (Symbol, bool) {
	if i < 0 || i >= f.NumSymbols || (i+1)*symSize > len(f.symtab) {
		return Symbol{}, false
	}
	b := f.symtab[i*symSize : (i+1)*symSize]
	name, _ := f.str(uint64(le.Uint32(b)))
	info, other := b[4], b[5]
	s := Symbol{
		Name:    name,
		Bind:    elf.ST_BIND(info),
		Type:    elf.ST_TYPE(info),
		Vis:     elf.ST_VISIBILITY(other),
		Section: elf.SectionIndex(le.Uint16(b[6:])),
		Value:   le.Uint64(b[8:]),
		Size:    le.Uint64(b[16:]),
	}
	v, hidden := f.symVersion(uint64(i))
	s.HiddenVersion = hidden
	if v != nil {
		s.Version = v.Name
	}
	return s, true
}

// Symbols returns every dynamic symbol but the null symbol 0, in table
// order.
func (f *File) Symbols() []Symbol {
	out := make([]Symbol, 0, max(f.NumSymbols-1, 0))
	for i := 1; i < f.NumSymbols; i++ {
		s, _ := f.Symbol(i)
		out = append(out, s)
	}
	return out
}

// nameIs reports whether symbol i is called name, without allocating.
func (f *File) nameIs(i uint64, name string) bool {
	if i >= uint64(f.NumSymbols) {
		return false
	}
	off := uint64(le.Uint32(f.symtab[i*symSize:]))
	end := off + uint64(len(name))
	if end >= uint64(len(f.strtab)) {
		return false
	}
	return string(f.strtab[off:end]) == name && f.strtab[end] == 0
}

// exported reports whether s is a definition other objects may bind to
// without naming a version: linkable (as File.linkable) and not a hidden
// version. Version-name symbols (absolute, value 0) are not.
func exported(s Symbol) bool {
	if !s.Defined() || s.HiddenVersion || (s.Value == 0 && s.Type != elf.STT_TLS) {
		return false
	}
	switch s.Bind {
	case elf.STB_GLOBAL, elf.STB_WEAK, stbGNUUnique:
	default:
		return false
	}
	switch s.Vis {
	case elf.STV_DEFAULT, elf.STV_PROTECTED:
	default:
		return false
	}
	switch s.Type {
	case elf.STT_NOTYPE, elf.STT_OBJECT, elf.STT_FUNC, elf.STT_COMMON, elf.STT_TLS, elf.STT_GNU_IFUNC:
		return true
	}
	return false
}

// Lookup finds the exported definition of name as dlsym does: an
// unversioned definition, else the default version (foo@@V). It works
// through DT_GNU_HASH when the file has one (a Bloom-filter probe, a
// bucket and one short chain: O(1) per lookup), else through DT_HASH. It
// returns the symbol's index and entry.
func (f *File) Lookup(name string) (int, Symbol, bool) {
	i, ok := f.find(name, gnuHashOf(name), nil, lookupNewest)
	if !ok {
		return 0, Symbol{}, false
	}
	s, _ := f.Symbol(int(i))
	return int(i), s, true
}

// LookupVersion finds the definition of name at version (foo@version or
// foo@@version); an unversioned definition also satisfies it, as in
// glibc. An empty version is Lookup.
func (f *File) LookupVersion(name, version string) (int, Symbol, bool) {
	var req *Version
	if version != "" {
		req = &Version{Name: version, hash: sysvHashOf(version)}
	}
	i, ok := f.find(name, gnuHashOf(name), req, lookupNewest)
	if !ok {
		return 0, Symbol{}, false
	}
	s, _ := f.Symbol(int(i))
	return int(i), s, true
}

// lookupMode says which unversioned definition a lookup without a version
// accepts when the file versions its symbols.
type lookupMode uint8

const (
	// lookupReloc is for a relocation without a version (an object
	// linked against an unversioned library): glibc gives it the
	// unversioned or the oldest version (index 2), else the one
	// default version.
	lookupReloc lookupMode = iota
	// lookupNewest is dlsym's rule: an unversioned definition, else the
	// one default version.
	lookupNewest
)

// find returns the index of the definition of name (whose GNU hash is gh)
// that a reference asking for version req (nil: none) binds to, by
// glibc's rules (check_match in elf/dl-lookup.c): the symbol must be
// defined, of a linkable type, binding and visibility, with a non-zero
// value unless it is thread-local; a versioned reference takes the
// definition of that version or an unversioned, non-hidden one; an
// unversioned reference is as mode says.
func (f *File) find(name string, gh uint32, req *Version, mode lookupMode) (uint64, bool) {
	return f.findIn(name, gh, req, mode, f.gnu != nil)
}

// findIn is find through DT_GNU_HASH (gnu) or DT_HASH.
func (f *File) findIn(name string, gh uint32, req *Version, mode lookupMode, gnu bool) (uint64, bool) {
	if (gnu && f.gnu == nil) || (!gnu && f.sysv == nil) {
		// No symbol table: nothing is defined.
		return 0, false
	}
	m := matcher{f: f, name: name, req: req, mode: mode}
	var i uint64
	var ok bool
	if gnu {
		i, ok = f.walkGNU(gh, &m)
	} else {
		i, ok = f.walkSysV(sysvHashOf(name), &m)
	}
	if ok {
		return i, true
	}
	if m.ncand == 1 {
		return m.cand, true
	}
	return 0, false
}

// matcher applies glibc's check_match to the symbols a hash chain offers
// for one lookup, and remembers the one versioned candidate an
// unversioned lookup may fall back to.
type matcher struct {
	f     *File
	name  string
	req   *Version
	mode  lookupMode
	cand  uint64
	ncand int
}

// accept reports whether symbol i is the definition sought.
func (m *matcher) accept(i uint64) bool {
	f := m.f
	if !f.nameIs(i, m.name) || !f.linkable(i) {
		return false
	}
	if f.versym == nil {
		return true
	}
	vs := le.Uint16(f.versym[2*i:])
	ndx, hidden := vs&maxVersionIndex, vs&0x8000 != 0
	if m.req != nil {
		if ndx >= 2 {
			v := &f.Versions[ndx]
			return v.hash == m.req.hash && v.Name == m.req.Name
		}
		return !hidden
	}
	lim := uint16(3)
	if m.mode == lookupNewest {
		lim = 2
	}
	if ndx >= lim {
		if !hidden {
			if m.ncand == 0 {
				m.cand = i
			}
			m.ncand++
		}
		return false
	}
	return true
}

// linkable reports whether symbol i is a definition another object may
// bind to, before versions are considered (glibc's check_match).
func (f *File) linkable(i uint64) bool {
	b := f.symtab[i*symSize : i*symSize+symSize]
	info, other := b[4], b[5]
	shndx := elf.SectionIndex(le.Uint16(b[6:]))
	typ := elf.ST_TYPE(info)
	if shndx == elf.SHN_UNDEF || (le.Uint64(b[8:]) == 0 && typ != elf.STT_TLS) {
		return false
	}
	switch typ {
	case elf.STT_NOTYPE, elf.STT_OBJECT, elf.STT_FUNC, elf.STT_COMMON, elf.STT_TLS, elf.STT_GNU_IFUNC:
	default:
		return false
	}
	switch elf.ST_BIND(info) {
	case elf.STB_GLOBAL, elf.STB_WEAK, stbGNUUnique:
	default:
		return false
	}
	switch elf.ST_VISIBILITY(other) {
	case elf.STV_DEFAULT, elf.STV_PROTECTED:
		return true
	}
	return false
}

// walkGNU offers m each symbol of the DT_GNU_HASH chain of hash h whose
// chain word matches it, until m accepts one.
func (f *File) walkGNU(h uint32, m *matcher) (uint64, bool) {
	g := f.gnu
	w := uint64(h/64) & uint64(g.nbloom-1)
	if (w+1)*8 > uint64(len(g.bloom)) {
		return 0, false
	}
	word := le.Uint64(g.bloom[w*8:])
	mask := uint64(1)<<(h%64) | uint64(1)<<((h>>g.shift)%64)
	if word&mask != mask {
		return 0, false
	}
	b := uint64(h%g.nbuckets) * 4
	if b+4 > uint64(len(g.buckets)) {
		return 0, false
	}
	i := uint64(le.Uint32(g.buckets[b:]))
	if i == 0 || i < uint64(g.symoffset) {
		return 0, false
	}
	for {
		rel := (i - uint64(g.symoffset)) * 4
		if rel+4 > uint64(len(g.chain)) || i >= uint64(f.NumSymbols) {
			return 0, false
		}
		h2 := le.Uint32(g.chain[rel:])
		if h|1 == h2|1 && m.accept(i) {
			return i, true
		}
		if h2&1 != 0 {
			return 0, false
		}
		i++
	}
}

// walkSysV is walkGNU for DT_HASH, whose chains hold every symbol of a
// bucket (m compares names).
func (f *File) walkSysV(h uint32, m *matcher) (uint64, bool) {
	t := f.sysv
	b := uint64(h%t.nbucket) * 4
	if b+4 > uint64(len(t.buckets)) {
		return 0, false
	}
	i := uint64(le.Uint32(t.buckets[b:]))
	// A malformed table may hold a cycle: no chain is longer than nchain.
	for steps := uint32(0); i != 0 && steps <= t.nchain; steps++ {
		if i < uint64(f.NumSymbols) && m.accept(i) {
			return i, true
		}
		if (i+1)*4 > uint64(len(t.chain)) {
			break
		}
		i = uint64(le.Uint32(t.chain[i*4:]))
	}
	return 0, false
}

// lookupGNU and lookupSysV are Lookup through one table, for tests that
// compare the two.
func (f *File) lookupGNU(name string) (int, Symbol, bool) {
	return f.lookupIn(name, f.gnu != nil, true)
}

func (f *File) lookupSysV(name string) (int, Symbol, bool) {
	return f.lookupIn(name, f.sysv != nil, false)
}

func (f *File) lookupIn(name string, have, gnu bool) (int, Symbol, bool) {
	if !have {
		return 0, Symbol{}, false
	}
	i, ok := f.findIn(name, gnuHashOf(name), nil, lookupNewest, gnu)
	if !ok {
		return 0, Symbol{}, false
	}
	s, _ := f.Symbol(int(i))
	return int(i), s, true
}
