package clients

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// unknownMnemonic is the report's name for instructions the decoder
// cannot name.
const unknownMnemonic = "(unknown)"

// opcodes counts the instructions executed by mnemonic (DynamoRIO's
// opcodes sample): a counter per mnemonic, and at each basic block's
// start one update per mnemonic the block has, adding how many of its
// instructions have it. A block runs whole once entered (its only
// control transfer is its last instruction), so the counts are exact, as
// inscount's, which they sum to.
type opcodes struct {
	// mu guards counters, which threads' translations fill
	// concurrently.
	mu       sync.Mutex
	counters map[string]*jit.Counter
}

func newOpcodes(args []string) (*Tool, error) {
	if err := noArgs("opcodes", args); err != nil {
		return nil, err
	}
	oc := &opcodes{counters: make(map[string]*jit.Counter)}
	return &Tool{Name: "opcodes", Client: &jit.Client{Block: oc.block}, Report: oc.report}, nil
}

// blockCounts is a block's mnemonics with their counts, in first-seen
// order (so that the inserted updates do not depend on map order).
type blockCounts struct {
	names []string
	n     []int64
}

func (oc *opcodes) block(b *jit.Block) {
	var bc blockCounts
	for k := 0; k < b.Len(); k++ {
		name := b.Instr(k).Mnemonic()
		if name == "" {
			name = unknownMnemonic
		}
		if i := slices.Index(bc.names, name); i >= 0 {
			bc.n[i]++
			continue
		}
		bc.names = append(bc.names, name)
		bc.n = append(bc.n, 1)
	}
	oc.mu.Lock()
	ctrs := make([]*jit.Counter, len(bc.names))
	for i, name := range bc.names {
		c := oc.counters[name]
		if c == nil {
			c = jit.NewCounter(jit.PerThread)
			oc.counters[name] = c
		}
		ctrs[i] = c
	}
	oc.mu.Unlock()
	for i, c := range ctrs {
		b.AddCounter(0, c, bc.n[i])
	}
}

// opcodeCount is a mnemonic's count.
type opcodeCount struct {
	name  string
	count uint64
}

// byCount is the report's opcodes object: mnemonics in decreasing order
// of count (then by name), which encoding/json's maps would sort by name.
type byCount []opcodeCount

func (s byCount) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(c.name)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, _ := json.Marshal(c.count)
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (oc *opcodes) report(w io.Writer) error {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	var total uint64
	all := make(byCount, 0, len(oc.counters))
	for name, c := range oc.counters {
		v := c.Value()
		if v == 0 {
			continue
		}
		total += v
		all = append(all, opcodeCount{name, v})
	}
	slices.SortFunc(all, func(x, y opcodeCount) int {
		if c := cmp.Compare(y.count, x.count); c != 0 {
			return c
		}
		return cmp.Compare(x.name, y.name)
	})
	return writeJSON(w, struct {
		Client       string  `json:"client"`
		Instructions uint64  `json:"instructions"`
		Opcodes      byCount `json:"opcodes"`
	}{"opcodes", total, all})
}
