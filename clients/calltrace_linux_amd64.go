package clients

import (
	"cmp"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// calltrace records, per thread and in order, each entry to a function
// the modules' symbol tables name and each return out of one (a function
// of a library stripped of its .symtab is known by its exported name
// only): a record
// (jit.TraceBuffer) at the first instruction of a block that starts a
// function, and at each ret. The records carry a site number; the
// function's name is the site table's, looked up once at translation.
type calltrace struct {
	mu sync.Mutex
	// sites are the translation-time facts of each record's tag: the
	// function and whether it is an entry or a return.
	sites []callSite
	// siteOf numbers the sites by (pc, kind).
	siteOf map[callSiteKey]uint32
	// calls and returns count the records by function name.
	calls, returns map[string]uint64
	// head is the first traceHead events of the first thread, indented
	// by call depth.
	head  []string
	tid   int
	depth int
	// threads is how many threads recorded.
	threads map[int]bool
}

type callSiteKey struct {
	pc  uintptr
	ret bool
}

type callSite struct {
	name string
	ret  bool
}

// traceHead is how many events the report shows in order.
const traceHead = 200

// newCalltrace is the calltrace sample: calls and returns with the
// functions' names.
func newCalltrace(args []string) (*Tool, error) {
	if err := noArgs("calltrace", args); err != nil {
		return nil, err
	}
	ct := &calltrace{siteOf: map[callSiteKey]uint32{}, calls: map[string]uint64{}, returns: map[string]uint64{}, threads: map[int]bool{}}
	buf := jit.NewTraceBuffer(ct.flush)
	c := &jit.Client{
		// Taking module events makes Block.Module known.
		ModuleLoad: func(*jit.Module) {},
		Block: func(b *jit.Block) {
			mod := b.Module()
			if mod == nil {
				return
			}
			if name, start, ok := mod.Symbol(b.PC()); ok && start == b.PC() {
				b.RecordAddr(0, buf, jit.RSP, 0, ct.site(b.PC(), false, name, mod))
			}
			last := b.Len() - 1
			if in := b.Instr(last); isRet(in.Bytes()) {
				// A return out of a named function: the code of
				// a stripped library's own functions has none.
				if name, _, ok := mod.Symbol(in.PC()); ok {
					b.RecordAddr(last, buf, jit.RSP, 0, ct.site(in.PC(), true, name, mod))
				}
			}
		},
	}
	return &Tool{Name: "calltrace", Client: c, Report: ct.report, state: ct}, nil
}

// isRet reports whether code is a near return (c3, c2 iw, with a rep
// or bnd prefix).
func isRet(code []byte) bool {
	for len(code) > 1 && (code[0] == 0xf3 || code[0] == 0xf2) {
		code = code[1:]
	}
	return len(code) > 0 && (code[0] == 0xc3 || code[0] == 0xc2)
}

// site returns the tag of the record at pc.
func (ct *calltrace) site(pc uintptr, ret bool, name string, mod *jit.Module) uint32 {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	k := callSiteKey{pc, ret}
	if id, ok := ct.siteOf[k]; ok {
		return id
	}
	name += "@" + filepath.Base(mod.Path)
	id := uint32(len(ct.sites))
	ct.sites = append(ct.sites, callSite{name, ret})
	ct.siteOf[k] = id
	return id
}

// flush takes a thread's records.
func (ct *calltrace) flush(t *jit.Thread, recs []jit.TraceRecord) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.threads[t.TID] = true
	if ct.tid == 0 {
		ct.tid = t.TID
	}
	for _, r := range recs {
		s := ct.sites[r.Tag]
		if s.ret {
			ct.returns[s.name]++
		} else {
			ct.calls[s.name]++
		}
		if t.TID != ct.tid || len(ct.head) >= traceHead {
			continue
		}
		if s.ret {
			ct.depth = max(ct.depth-1, 0)
			ct.head = append(ct.head, strings.Repeat(" ", ct.depth)+"< "+s.name)
		} else {
			ct.head = append(ct.head, strings.Repeat(" ", ct.depth)+"> "+s.name)
			ct.depth++
		}
	}
}

// callTop is how many functions the report lists.
const callTop = 20

func (ct *calltrace) report(w io.Writer) error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	type fn struct {
		Name    string `json:"name"`
		Calls   uint64 `json:"calls"`
		Returns uint64 `json:"returns"`
	}
	var fns []fn
	var calls, returns uint64
	names := map[string]bool{}
	for n := range ct.calls {
		names[n] = true
	}
	for n := range ct.returns {
		names[n] = true
	}
	for n := range names {
		fns = append(fns, fn{n, ct.calls[n], ct.returns[n]})
		calls += ct.calls[n]
		returns += ct.returns[n]
	}
	slices.SortFunc(fns, func(a, b fn) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), strings.Compare(a.Name, b.Name))
	})
	return writeJSON(w, struct {
		Client    string   `json:"client"`
		Calls     uint64   `json:"calls"`
		Returns   uint64   `json:"returns"`
		Functions int      `json:"functions"`
		Threads   int      `json:"threads"`
		Top       []fn     `json:"top"`
		Trace     []string `json:"trace"`
	}{"calltrace", calls, returns, len(fns), len(ct.threads), fns[:min(len(fns), callTop)], ct.head})
}
