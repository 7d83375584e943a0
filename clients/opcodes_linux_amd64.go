package clients

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// unknownMnemonic is the report's name for instructions the decoder
// cannot name.
const unknownMnemonic = "(unknown)"

// opcodes counts the instructions executed by mnemonic (DynamoRIO's
// opcodes sample): a counter per basic block, added to at its start, as
// bbcount's are, and each block's mnemonics with their counts, learnt at
// translation; the report sums count times occurrences by mnemonic. A
// block runs whole once entered (its only control transfer is its last
// instruction), so the counts are exact, as inscount's, which they sum
// to. (A counter per mnemonic, added to by every block that has it,
// would make each block's update wait for the last one's to the same
// cell: twice the run's time and more on short blocks.)
type opcodes struct {
	// mu guards blocks, which threads' translations fill
	// concurrently.
	mu     sync.Mutex
	blocks map[opcodesKey]*opcodesBlock
}

// opcodesKey is a block: its address and its mnemonics with their
// counts (code changed at the address is another block).
type opcodesKey struct {
	pc    uintptr
	names string
}

// opcodesBlock is a block's counter and mnemonics.
type opcodesBlock struct {
	ctr *jit.Counter
	blockCounts
}

func newOpcodes(args []string) (*Tool, error) {
	if err := noArgs("opcodes", args); err != nil {
		return nil, err
	}
	oc := &opcodes{blocks: make(map[opcodesKey]*opcodesBlock)}
	return &Tool{Name: "opcodes", Client: &jit.Client{Block: oc.block}, Report: oc.report}, nil
}

// blockCounts is a block's mnemonics with their counts, in first-seen
// order.
type blockCounts struct {
	names []string
	n     []int64
}

func (oc *opcodes) block(b *jit.Block) {
	var bc blockCounts
	var key strings.Builder
	for k := 0; k < b.Len(); k++ {
		name := b.Instr(k).Mnemonic()
		if name == "" {
			name = unknownMnemonic
		}
		key.WriteString(name)
		key.WriteByte(0)
		if i := slices.Index(bc.names, name); i >= 0 {
			bc.n[i]++
			continue
		}
		bc.names = append(bc.names, name)
		bc.n = append(bc.n, 1)
	}
	k := opcodesKey{b.PC(), key.String()}
	oc.mu.Lock()
	e := oc.blocks[k]
	if e == nil {
		e = &opcodesBlock{jit.NewCounter(jit.PerThread), bc}
		oc.blocks[k] = e
	}
	oc.mu.Unlock()
	b.AddCounter(0, e.ctr, 1)
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
	counts := map[string]uint64{}
	for _, e := range oc.blocks {
		v := e.ctr.Value()
		if v == 0 {
			continue
		}
		for i, name := range e.names {
			counts[name] += v * uint64(e.n[i])
			total += v * uint64(e.n[i])
		}
	}
	all := make(byCount, 0, len(counts))
	for name, v := range counts {
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
