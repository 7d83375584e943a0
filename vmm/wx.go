package vmm

import "errors"

// newDual makes lin W^X: see Config.WX.
func newDual(lin *linear) (backing, error) {
	return nil, errors.New("not implemented yet")
}
