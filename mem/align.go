package mem

// PageSize is the x86-64 page, the unit of commit and protection on every
// OS reachvm runs on.
const PageSize = 4 << 10

// GranularityLinux and GranularityWindows are the OS allocation
// granularities: where reservations and file views may start. Linux maps
// at any page; Windows reserves in 64 KiB granules.
const (
	GranularityLinux   = PageSize
	GranularityWindows = 64 << 10
)

// Unsigned is the set of types addresses, sizes and file offsets come in.
type Unsigned interface {
	~uint | ~uint32 | ~uint64 | ~uintptr
}

// AlignDown rounds x down to a multiple of align.
//
// Preconditions: align is a power of two.
func AlignDown[T Unsigned](x, align T) T { return x &^ (align - 1) }

// AlignUp rounds x up to a multiple of align. ok is false if the result
// overflows T.
//
// Preconditions: align is a power of two.
func AlignUp[T Unsigned](x, align T) (r T, ok bool) {
	r = (x + align - 1) &^ (align - 1)
	return r, r >= x
}

// Aligned reports whether x is a multiple of align.
//
// Preconditions: align is a power of two.
func Aligned[T Unsigned](x, align T) bool { return x&(align-1) == 0 }

// IsPowerOfTwo reports whether x is a power of two (0 is not).
func IsPowerOfTwo[T Unsigned](x T) bool { return x != 0 && x&(x-1) == 0 }
