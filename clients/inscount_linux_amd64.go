package clients

import (
	"io"

	"github.com/reachvm/reachvm/jit"
)

// newInscount counts the instructions executed. It counts each basic
// block's executions (bbcount's counters, one per block, updated at the
// block's start) and sums count times length at the end: one counter for
// the whole program, added to by every block, would make every block's
// update wait for the one before it (a load, add and store of the same
// cell, some five cycles a block: up to five times the run's time on
// code of short blocks), where a block's own counter is only updated
// as often as that block runs.
func newInscount(args []string) (*Tool, error) {
	if err := noArgs("inscount", args); err != nil {
		return nil, err
	}
	bc := &bbcount{blocks: make(map[blockKey]*jit.Counter)}
	return &Tool{
		Name:   "inscount",
		Client: &jit.Client{Block: bc.block},
		Report: func(w io.Writer) error {
			return writeJSON(w, struct {
				Client       string `json:"client"`
				Instructions uint64 `json:"instructions"`
			}{"inscount", bc.instructions()})
		},
	}, nil
}
