package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DynamoRIO as a peer: the runtime reachvm is modelled on, timed in the
// same run as reachvm when the user has it. No Debian package ships it,
// so it is not an ExternalTool: the user names an installation, a
// release package unpacked or a build directory, with --dynamorio or
// $DYNAMORIO_HOME.

// DynamoRIOEnv names the environment variable that gives a DynamoRIO
// installation when --dynamorio does not.
const DynamoRIOEnv = "DYNAMORIO_HOME"

// DynamoRIOToolPrefix begins the name of a tool that is DynamoRIO with
// one of its sample clients: "dynamorio+inscount".
const DynamoRIOToolPrefix = "dynamorio+"

// DynamoRIOSamples maps reachvm's sample clients to the DynamoRIO sample
// that measures the same thing, the peer `--client NAME` is compared with:
// memtrace's is memtrace_x86_binary, which writes every reference as a
// 32-byte record (its mem_ref_t: kind, address, size, pc) to a file per
// thread.
var DynamoRIOSamples = map[string]string{
	"inscount": "inscount",
	"bbcount":  "bbcount",
	"opcodes":  "opcodes",
	"memtrace": "memtrace_x86_binary",
}

// DynamoRIO is one installation of DynamoRIO: Drrun its launcher and
// Samples the directory of its sample clients.
type DynamoRIO struct {
	Dir, Drrun, Samples string
}

// FindDynamoRIO checks that dir holds a 64-bit DynamoRIO, either a
// release package (bin64/drrun, samples/bin64) or a build directory
// (bin64/drrun, api/bin), and returns it.
func FindDynamoRIO(dir string) (*DynamoRIO, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: DynamoRIO at %s: %w", dir, err)
	}
	dr := &DynamoRIO{Dir: abs, Drrun: filepath.Join(abs, "bin64", "drrun")}
	if fi, err := os.Stat(dr.Drrun); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("bench: %s is no 64-bit DynamoRIO: no executable bin64/drrun in it", dir)
	}
	for _, s := range []string{filepath.Join("samples", "bin64"), filepath.Join("api", "bin")} {
		if fi, err := os.Stat(filepath.Join(abs, s)); err == nil && fi.IsDir() {
			dr.Samples = filepath.Join(abs, s)
			break
		}
	}
	return dr, nil
}

// sample returns the path of the sample client library name, or an error
// saying it is not built.
func (dr *DynamoRIO) sample(name string) (string, error) {
	if dr.Samples == "" {
		return "", fmt.Errorf("bench: %s has no sample clients (samples/bin64 or api/bin)", dr.Dir)
	}
	p := filepath.Join(dr.Samples, "lib"+name+".so")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("bench: DynamoRIO's sample %s is not in %s", name, dr.Samples)
	}
	return p, nil
}

// WithDynamoRIO returns tools with DynamoRIO's added at their end:
// "dynamorio" (drrun with no client) when withPlain, then for each of
// clients (NAME or NAME:ARG, as WithClients takes them) that has a
// counterpart in DynamoRIOSamples "dynamorio+NAME", drrun with that
// sample, once for each NAME. Each
// sample is linked into a directory of its own under scratch, because
// the samples that write files (memtrace_x86_binary's trace) write them
// beside their library: the tool's Scratch, emptied after every run. It
// returns the clients left out, with why.
func WithDynamoRIO(tools []KernelTool, dr *DynamoRIO, withPlain bool, clients []string, scratch string) ([]KernelTool, []error, error) {
	if withPlain {
		tools = append(tools, KernelTool{Name: "dynamorio", Argv: []string{dr.Drrun, "--"}})
	}
	var skipped []error
	var seen []string
	for _, c := range clients {
		c, _, _ = strings.Cut(c, ":")
		if slices.Contains(seen, c) {
			continue
		}
		seen = append(seen, c)
		sample, ok := DynamoRIOSamples[c]
		if !ok {
			skipped = append(skipped, fmt.Errorf("%s: DynamoRIO has no sample client that does what it does", c))
			continue
		}
		lib, err := dr.sample(sample)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%s: %v", c, strings.TrimPrefix(err.Error(), "bench: ")))
			continue
		}
		dir := filepath.Join(scratch, "dynamorio-"+c)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		link := filepath.Join(dir, filepath.Base(lib))
		if err := os.Symlink(lib, link); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		tools = append(tools, KernelTool{
			Name:         DynamoRIOToolPrefix + c,
			Argv:         []string{dr.Drrun, "-c", link, "--"},
			Scratch:      dir,
			ClientPrints: true,
		})
	}
	return tools, skipped, nil
}

// cleanScratch removes what a run of t left in its Scratch directory,
// everything but the symbolic links WithDynamoRIO put there, and waits
// for the file system's writes, so that the next run starts on a quiet
// disk.
func (t *KernelTool) cleanScratch() error {
	if t.Scratch == "" {
		return nil
	}
	ents, err := os.ReadDir(t.Scratch)
	if err != nil {
		return fmt.Errorf("%s's scratch directory: %w", t.Name, err)
	}
	var errs []error
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			errs = append(errs, os.RemoveAll(filepath.Join(t.Scratch, e.Name())))
		}
	}
	return errors.Join(append(errs, syncFS(t.Scratch))...)
}

// outputMatches says whether a run of t printed what native did: the
// same bytes or, for a tool whose client prints into the output
// (ClientPrints), native's lines in order, with the client's between
// them.
func (t *KernelTool) outputMatches(got, native []byte) bool {
	if !t.ClientPrints {
		return bytes.Equal(got, native)
	}
	lines := bytes.SplitAfter(got, []byte("\n"))
	for want := range bytes.SplitAfterSeq(native, []byte("\n")) {
		i := slices.IndexFunc(lines, func(l []byte) bool { return bytes.Equal(l, want) })
		if i < 0 {
			return false
		}
		lines = lines[i+1:]
	}
	return true
}
