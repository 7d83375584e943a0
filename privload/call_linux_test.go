//go:build linux

package privload

// ok returns v, and panics (failing the test) if err is not nil: for
// calls of Funcs whose library the test keeps open.
func ok[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
