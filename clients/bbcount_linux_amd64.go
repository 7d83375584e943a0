package clients

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// blockKey names a basic block: its address and length in instructions
// (a block translated again may end elsewhere, at a fragment's limit).
type blockKey struct {
	pc     uintptr
	instrs int
}

// bbcount counts the executions of each basic block: a counter of its
// own for each, updated at the block's start.
type bbcount struct {
	// mu guards blocks, which threads' translations fill concurrently.
	mu     sync.Mutex
	blocks map[blockKey]*jit.Counter
}

// topBlocks is how many blocks the report lists.
const topBlocks = 10

func newBBCount(args []string) (*Tool, error) {
	if err := noArgs("bbcount", args); err != nil {
		return nil, err
	}
	bc := &bbcount{blocks: make(map[blockKey]*jit.Counter)}
	return &Tool{Name: "bbcount", Client: &jit.Client{Block: bc.block}, Report: bc.report}, nil
}

func (bc *bbcount) block(b *jit.Block) {
	k := blockKey{b.PC(), b.Len()}
	bc.mu.Lock()
	c := bc.blocks[k]
	if c == nil {
		c = jit.NewCounter(jit.PerThread)
		bc.blocks[k] = c
	}
	bc.mu.Unlock()
	b.AddCounter(0, c, 1)
}

// blockCount is a block in the report.
type blockCount struct {
	PC     string `json:"pc"`
	Instrs int    `json:"instructions"`
	Count  uint64 `json:"count"`
}

func (bc *bbcount) report(w io.Writer) error {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	var executed, distinct, instrs uint64
	all := make([]blockCount, 0, len(bc.blocks))
	for k, c := range bc.blocks {
		v := c.Value()
		if v == 0 {
			continue
		}
		executed += v
		distinct++
		instrs += v * uint64(k.instrs)
		all = append(all, blockCount{PC: fmt.Sprintf("%#x", k.pc), Instrs: k.instrs, Count: v})
	}
	slices.SortFunc(all, func(x, y blockCount) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return cmp.Compare(x.PC, y.PC)
	})
	return writeJSON(w, struct {
		Client   string       `json:"client"`
		Executed uint64       `json:"blocks_executed"`
		Distinct uint64       `json:"blocks_distinct"`
		Instrs   uint64       `json:"instructions"`
		Top      []blockCount `json:"top"`
	}{"bbcount", executed, distinct, instrs, all[:min(topBlocks, len(all))]})
}

// instructions returns the instructions the counted blocks executed.
func (bc *bbcount) instructions() uint64 {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	var n uint64
	for k, c := range bc.blocks {
		n += c.Value() * uint64(k.instrs)
	}
	return n
}
