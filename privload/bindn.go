package privload

import "github.com/reachvm/reachvm/internal/native"

// Typed bindings of zero to six arguments: written out, one per arity.

// Bind0 returns a Go function that calls f() and returns its result as
// R, converted as its type says (see Scalar): a typed binding, which
// costs a few nanoseconds more than Call0 and no reflection (Bind costs
// ten times more). The function returns an error wrapping ErrClosed once
// f's library is closed. R can be any Scalar type for a function
// returning void: the value is then meaningless.
func Bind0[R Scalar](f Func) func() (R, error) {
	kr := kindOf[R]()
	s := sigOf(kr)
	if s.float {
		return func() (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{}
			r, err := f.frameCall(&s, &w)
			return result[R](r), err
		}
	}
	return func() (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call0(f.addr)
		return result[R](r), nil
	}
}

// Bind1 returns a Go function that calls f(a1) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind1[R, A1 Scalar](f Func) func(A1) (R, error) {
	kr, k1 := kindOf[R](), kindOf[A1]()
	s := sigOf(kr, k1)
	if s.float {
		return func(a1 A1) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			return result[R](r), err
		}
	}
	return func(a1 A1) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call1(f.addr, arg(a1, k1))
		keep(a1, k1)
		return result[R](r), nil
	}
}

// Bind2 returns a Go function that calls f(a1, a2) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind2[R, A1, A2 Scalar](f Func) func(A1, A2) (R, error) {
	kr, k1, k2 := kindOf[R](), kindOf[A1](), kindOf[A2]()
	s := sigOf(kr, k1, k2)
	if s.float {
		return func(a1 A1, a2 A2) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1), arg(a2, k2)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			keep(a2, k2)
			return result[R](r), err
		}
	}
	return func(a1 A1, a2 A2) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call2(f.addr, arg(a1, k1), arg(a2, k2))
		keep(a1, k1)
		keep(a2, k2)
		return result[R](r), nil
	}
}

// Bind3 returns a Go function that calls f(a1, a2, a3) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind3[R, A1, A2, A3 Scalar](f Func) func(A1, A2, A3) (R, error) {
	kr, k1, k2, k3 := kindOf[R](), kindOf[A1](), kindOf[A2](), kindOf[A3]()
	s := sigOf(kr, k1, k2, k3)
	if s.float {
		return func(a1 A1, a2 A2, a3 A3) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1), arg(a2, k2), arg(a3, k3)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			keep(a2, k2)
			keep(a3, k3)
			return result[R](r), err
		}
	}
	return func(a1 A1, a2 A2, a3 A3) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call3(f.addr, arg(a1, k1), arg(a2, k2), arg(a3, k3))
		keep(a1, k1)
		keep(a2, k2)
		keep(a3, k3)
		return result[R](r), nil
	}
}

// Bind4 returns a Go function that calls f(a1, a2, a3, a4) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind4[R, A1, A2, A3, A4 Scalar](f Func) func(A1, A2, A3, A4) (R, error) {
	kr, k1, k2, k3, k4 := kindOf[R](), kindOf[A1](), kindOf[A2](), kindOf[A3](), kindOf[A4]()
	s := sigOf(kr, k1, k2, k3, k4)
	if s.float {
		return func(a1 A1, a2 A2, a3 A3, a4 A4) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			keep(a2, k2)
			keep(a3, k3)
			keep(a4, k4)
			return result[R](r), err
		}
	}
	return func(a1 A1, a2 A2, a3 A3, a4 A4) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call4(f.addr, arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4))
		keep(a1, k1)
		keep(a2, k2)
		keep(a3, k3)
		keep(a4, k4)
		return result[R](r), nil
	}
}

// Bind5 returns a Go function that calls f(a1, a2, a3, a4, a5) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind5[R, A1, A2, A3, A4, A5 Scalar](f Func) func(A1, A2, A3, A4, A5) (R, error) {
	kr, k1, k2, k3, k4, k5 := kindOf[R](), kindOf[A1](), kindOf[A2](), kindOf[A3](), kindOf[A4](), kindOf[A5]()
	s := sigOf(kr, k1, k2, k3, k4, k5)
	if s.float {
		return func(a1 A1, a2 A2, a3 A3, a4 A4, a5 A5) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4), arg(a5, k5)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			keep(a2, k2)
			keep(a3, k3)
			keep(a4, k4)
			keep(a5, k5)
			return result[R](r), err
		}
	}
	return func(a1 A1, a2 A2, a3 A3, a4 A4, a5 A5) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call5(f.addr, arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4), arg(a5, k5))
		keep(a1, k1)
		keep(a2, k2)
		keep(a3, k3)
		keep(a4, k4)
		keep(a5, k5)
		return result[R](r), nil
	}
}

// Bind6 returns a Go function that calls f(a1, a2, a3, a4, a5, a6) with each
// argument converted as its type says (see Scalar) and returns f's result
// as R; see Bind0.
func Bind6[R, A1, A2, A3, A4, A5, A6 Scalar](f Func) func(A1, A2, A3, A4, A5, A6) (R, error) {
	kr, k1, k2, k3, k4, k5, k6 := kindOf[R](), kindOf[A1](), kindOf[A2](), kindOf[A3](), kindOf[A4](), kindOf[A5](), kindOf[A6]()
	s := sigOf(kr, k1, k2, k3, k4, k5, k6)
	if s.float {
		return func(a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6) (R, error) {
			if err := f.check(); err != nil {
				return *new(R), err
			}
			w := [native.IntRegs]uintptr{arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4), arg(a5, k5), arg(a6, k6)}
			r, err := f.frameCall(&s, &w)
			keep(a1, k1)
			keep(a2, k2)
			keep(a3, k3)
			keep(a4, k4)
			keep(a5, k5)
			keep(a6, k6)
			return result[R](r), err
		}
	}
	return func(a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6) (R, error) {
		if err := f.check(); err != nil {
			return *new(R), err
		}
		r := native.Call6(f.addr, arg(a1, k1), arg(a2, k2), arg(a3, k3), arg(a4, k4), arg(a5, k5), arg(a6, k6))
		keep(a1, k1)
		keep(a2, k2)
		keep(a3, k3)
		keep(a4, k4)
		keep(a5, k5)
		keep(a6, k6)
		return result[R](r), nil
	}
}
