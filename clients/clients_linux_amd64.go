package clients

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmm"
)

// Tool is a sample client set up for one run.
type Tool struct {
	// Name is the tool's name, as -c takes it.
	Name string
	// Client is what the translator runs.
	Client *jit.Client
	// Report writes the tool's results, one JSON object, once the run
	// ended.
	Report func(w io.Writer) error
	// state is the tool's own, for its tests.
	state any
	// close releases what the tool holds (a native client's image), or
	// is nil.
	close func() error
}

// Close releases what the tool holds: a native client's image, which
// nothing may run after (the run's code, its Report). The sample
// clients hold nothing.
func (t *Tool) Close() error {
	if t.close == nil {
		return nil
	}
	c := t.close
	t.close = nil
	return c()
}

// factories are the sample clients by name.
var factories = map[string]func(args []string) (*Tool, error){
	"inscount":  newInscount,
	"bbcount":   newBBCount,
	"calltrace": newCalltrace,
	"memtrace":  newMemtrace,
	"opcodes":   newOpcodes,
	"wrap":      newWrap,
}

// Names returns the sample clients' names, sorted.
func Names() []string {
	var names []string
	for n := range factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New returns the client name, given its arguments: a sample client by
// its name, or a native client by its file's path (a name with a slash,
// or ending in .so), which NewIn loads.
func New(name string, args []string) (*Tool, error) {
	return NewIn(nil, name, args)
}

// NewIn is New for a run in v: a native client is loaded into v's
// vmcode (see LoadNative), which a nil v does not have.
func NewIn(v *vmm.VMM, name string, args []string) (*Tool, error) {
	if isNativePath(name) {
		return LoadNative(v, name, args)
	}
	f, ok := factories[name]
	if !ok {
		return nil, fmt.Errorf("clients: no sample client %q (there are: %s; or a native client's path, ./NAME.so)", name, strings.Join(Names(), ", "))
	}
	return f(args)
}

// noArgs fails when a client that takes no arguments is given some.
func noArgs(name string, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("clients: %s takes no arguments, given %q", name, args)
	}
	return nil
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
