package privload

import (
	"reflect"
	"runtime"
	"unsafe"

	"github.com/reachvm/reachvm/internal/native"
)

// Scalar is a type a typed binding (Bind0 to Bind6) passes or returns in
// one register: an integer or bool (in a general register, sign- or
// zero-extended to 64 bits as its type says), a float32 or float64 (in
// an XMM register), or an unsafe.Pointer, which follows the package's
// pointer rule: what it points to stays alive and in place for the call.
type Scalar interface {
	~bool | ~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64 | unsafe.Pointer
}

// scalarKind is how a Scalar type travels: its register class, and for
// an integer narrower than 64 bits, how it widens. A binding computes its
// kinds once, so a call converts without reflection.
type scalarKind uint8

const (
	kind64 scalarKind = iota // 64-bit integers and unsafe.Pointer
	kindS8
	kindU8 // also bool
	kindS16
	kindU16
	kindS32
	kindU32
	kindF32
	kindF64
	kindPtr // unsafe.Pointer: 64 bits, kept alive across the call
)

func kindOf[T Scalar]() scalarKind {
	t := reflect.TypeFor[T]()
	switch t.Kind() {
	case reflect.Int8:
		return kindS8
	case reflect.Uint8, reflect.Bool:
		return kindU8
	case reflect.Int16:
		return kindS16
	case reflect.Uint16:
		return kindU16
	case reflect.Int32:
		return kindS32
	case reflect.Uint32:
		return kindU32
	case reflect.Float32:
		return kindF32
	case reflect.Float64:
		return kindF64
	case reflect.UnsafePointer:
		return kindPtr
	}
	return kind64
}

func (k scalarKind) float() bool { return k == kindF32 || k == kindF64 }

// word returns the register value of the Scalar at p, of kind k.
func word(p unsafe.Pointer, k scalarKind) uintptr {
	switch k {
	case kindS8:
		return uintptr(*(*int8)(p))
	case kindU8:
		return uintptr(*(*uint8)(p))
	case kindS16:
		return uintptr(*(*int16)(p))
	case kindU16:
		return uintptr(*(*uint16)(p))
	case kindS32:
		return uintptr(*(*int32)(p))
	case kindU32, kindF32:
		return uintptr(*(*uint32)(p))
	}
	return *(*uintptr)(p)
}

// arg returns the register value of v.
func arg[T Scalar](v T, k scalarKind) uintptr {
	if unsafe.Sizeof(v) == 8 {
		return *(*uintptr)(unsafe.Pointer(&v))
	}
	return word(unsafe.Pointer(&v), k)
}

// result converts register value w to R, truncating it to R's size.
func result[R Scalar](w uintptr) R {
	var r R
	switch unsafe.Sizeof(r) {
	case 1:
		*(*uint8)(unsafe.Pointer(&r)) = uint8(w)
	case 2:
		*(*uint16)(unsafe.Pointer(&r)) = uint16(w)
	case 4:
		*(*uint32)(unsafe.Pointer(&r)) = uint32(w)
	default:
		*(*uintptr)(unsafe.Pointer(&r)) = w
	}
	return r
}

// keep makes v escape to the heap if it is a pointer, so that what it
// points to does not move, and keeps it alive to this point.
func keep[T Scalar](v T, k scalarKind) {
	if k == kindPtr {
		if escapeSink.on {
			escapeSink.v = v
		}
		runtime.KeepAlive(v)
	}
}

// sig is a binding's kinds: the result's and the arguments'.
type sig struct {
	r     scalarKind
	args  [native.IntRegs]scalarKind
	n     int
	float bool
}

func sigOf(r scalarKind, args ...scalarKind) sig {
	s := sig{r: r, n: len(args), float: r.float()}
	for i, k := range args {
		s.args[i] = k
		s.float = s.float || k.float()
	}
	return s
}

// frameCall makes a call with floating-point arguments or result:
// words are the arguments' register values, placed by their kinds.
func (f Func) frameCall(s *sig, words *[native.IntRegs]uintptr) (uintptr, error) {
	if !native.FloatArgs {
		return 0, f.floatErr()
	}
	fr := native.Frame{Fn: f.addr}
	ni, nf := 0, 0
	for i, w := range words[:s.n] {
		if s.args[i].float() {
			fr.Floats[nf] = uint64(w)
			nf++
		} else {
			fr.Ints[ni] = uint64(w)
			ni++
		}
	}
	fr.NFloat = uint64(nf)
	fr.Call()
	if s.r.float() {
		return uintptr(fr.XMM0), nil
	}
	return uintptr(fr.RAX), nil
}

func (f Func) floatErr() error {
	return &floatError{name: f.name}
}

type floatError struct{ name string }

func (e *floatError) Error() string {
	return "privload: calling " + e.name + ": floating-point arguments and results are not supported on " + runtime.GOOS + "/" + runtime.GOARCH
}
