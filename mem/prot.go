package mem

// Prot is a page protection: a set of read, write and execute permissions.
type Prot uint8

// Protection bits. ProtNone (the zero value) grants no access.
const (
	ProtNone  Prot = 0
	ProtRead  Prot = 1 << 0
	ProtWrite Prot = 1 << 1
	ProtExec  Prot = 1 << 2

	ProtRW  = ProtRead | ProtWrite
	ProtRX  = ProtRead | ProtExec
	ProtRWX = ProtRead | ProtWrite | ProtExec
)

// String returns the protection as the first three columns of a
// /proc/self/maps permission field, e.g. "r-x".
func (p Prot) String() string {
	b := [3]byte{'-', '-', '-'}
	if p&ProtRead != 0 {
		b[0] = 'r'
	}
	if p&ProtWrite != 0 {
		b[1] = 'w'
	}
	if p&ProtExec != 0 {
		b[2] = 'x'
	}
	return string(b[:])
}

// Valid reports whether p holds only known bits.
func (p Prot) Valid() bool { return p&^ProtRWX == 0 }

// Linux's PROT_* values, which a system call's arguments carry. They are
// not Prot's bits (PROT_EXEC is 4 there too, but that is a coincidence no
// code should lean on): convert with ProtFromLinux and Prot.Linux.
const (
	linuxProtRead  = 0x1
	linuxProtWrite = 0x2
	linuxProtExec  = 0x4
)

// ProtFromLinux converts a PROT_* mask to a Prot. ok is false if the mask
// holds bits other than PROT_READ, PROT_WRITE and PROT_EXEC
// (PROT_GROWSDOWN, PROT_SEM, unknown bits), which the caller must decide
// about itself.
func ProtFromLinux(bits uint64) (p Prot, ok bool) {
	if bits&linuxProtRead != 0 {
		p |= ProtRead
	}
	if bits&linuxProtWrite != 0 {
		p |= ProtWrite
	}
	if bits&linuxProtExec != 0 {
		p |= ProtExec
	}
	return p, bits&^(linuxProtRead|linuxProtWrite|linuxProtExec) == 0
}

// Linux returns p as a PROT_* mask.
func (p Prot) Linux() uint64 {
	var bits uint64
	if p&ProtRead != 0 {
		bits |= linuxProtRead
	}
	if p&ProtWrite != 0 {
		bits |= linuxProtWrite
	}
	if p&ProtExec != 0 {
		bits |= linuxProtExec
	}
	return bits
}
