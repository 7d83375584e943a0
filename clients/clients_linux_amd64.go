package clients

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/reachvm/reachvm/jit"
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

// New returns the sample client name, given its arguments.
func New(name string, args []string) (*Tool, error) {
	f, ok := factories[name]
	if !ok {
		return nil, fmt.Errorf("clients: no sample client %q (there are: %s)", name, strings.Join(Names(), ", "))
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
