package clients

import (
	"io"

	"github.com/reachvm/reachvm/jit"
)

// newInscount counts the instructions executed: one counter update at
// the start of each basic block, adding its length (DynamoRIO's
// inscount sample). Each thread updates a cell of its own.
func newInscount(args []string) (*Tool, error) {
	if err := noArgs("inscount", args); err != nil {
		return nil, err
	}
	n := jit.NewCounter(jit.PerThread)
	return &Tool{
		Name: "inscount",
		Client: &jit.Client{
			Block: func(b *jit.Block) { b.AddCounter(0, n, int64(b.Len())) },
		},
		Report: func(w io.Writer) error {
			return writeJSON(w, struct {
				Client       string `json:"client"`
				Instructions uint64 `json:"instructions"`
			}{"inscount", n.Value()})
		},
	}, nil
}
