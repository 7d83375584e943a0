// Command reachvm drives reachvm's layers from the command line.
//
// Usage:
//
//	reachvm demo [--json] [--size N]        reserve vmcode, load a library into it, call it via rel32
//	reachvm maps [--size N] [--load LIB]    print this process's annotated address-space map
//	reachvm load [flags] LIB [ARGS...]      load a library privately into vmcode, call a symbol
//	reachvm run [flags] PROG [ARGS...]      run an executable (static or dynamic) under the binary translator
//	reachvm bench kernels [flags]           time the C kernels natively, translated, under valgrind and qemu
//	reachvm bench programs [flags]          time real programs (xz, sqlite3, python3...) the same ways, with peak RSS
//	reachvm strategies [flags]              measure the reachability strategies A-F and the Linux ones
//	reachvm vmm [flags]                     reserve vmcode and vmheap, print the placement decisions
//	reachvm help [COMMAND]                  print the usage of reachvm or of one command
//
// `reachvm help COMMAND` and `reachvm COMMAND --help` print a command's
// usage: its synopsis, what it does, and every flag with its default and
// its rule.

// The runtime keeps the cgroup's CPU limit files open to follow the limit
// (GOMAXPROCS); a program run under reachvm shares the descriptor table,
// and those would hold the first numbers its opens get natively.
//
//go:debug containermaxprocs=0
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	exitAfterRun = true
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitAfterRun is set when the process exits as soon as the command
// returns (reachvm itself, not a test calling run): the kernel then takes
// back every mapping at once, and a command need not release what it
// made one piece at a time first.
var exitAfterRun bool

// command is one subcommand: its implementation (which returns the exit
// status) and its usage text.
type command struct {
	name string
	run  func(args []string, stdout, stderr io.Writer) int
	// synopsis follows "usage: reachvm"; summary is its line in the
	// overview; about is the paragraph that says what it does (and what
	// it prints), wrapped when printed.
	synopsis, summary, about string
	// subs are the command's own subcommands ("bench kernels"), each
	// with its name, run, synopsis and about; the command's run hands
	// them their arguments.
	subs []command
}

// commands lists the subcommands in the order the overview prints them.
// It is filled in init: the commands' help refers back to it.
var commands []command

func init() {
	commands = []command{
		{name: "demo", run: cmdDemo, synopsis: demoSynopsis, summary: "reserve vmcode, load libdemo.so privately into it, call it via an emitted rel32 call", about: demoAbout},
		{name: "maps", run: cmdMaps, synopsis: mapsSynopsis, summary: "print this process's address-space map, each line reachvm owns annotated", about: mapsAbout},
		{name: "load", run: cmdLoad, synopsis: loadSynopsis, summary: "load a library privately into vmcode, show its binding, call a symbol", about: loadAbout},
		{name: "run", run: cmdRun, synopsis: runSynopsis, summary: "run an executable (static or dynamic) under the binary translator", about: runAbout},
		{name: "bench", run: cmdBench, synopsis: benchSynopsis, summary: "time the C kernels or real programs natively, under reachvm, valgrind and qemu", about: benchAbout, subs: benchSubs()},
		{name: "strategies", run: cmdStrategies, synopsis: strategiesSynopsis, summary: "measure the reachability strategies (DynamoRIO's A-F and the Linux ones)", about: strategiesAbout},
		{name: "vmm", run: cmdVMM, synopsis: vmmSynopsis, summary: "reserve vmcode and vmheap, print the placement decisions", about: vmmAbout},
		{name: "help", run: cmdHelp, synopsis: "help [COMMAND]", summary: "print the usage of reachvm or of one command", about: helpAbout},
	}
}

const helpAbout = `Prints the overview of reachvm's commands, or with COMMAND that command's
usage (as 'reachvm COMMAND --help' does): its synopsis, what it does and
prints, and every flag with its default and its rule.`

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		overview(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		overview(stdout)
		return 0
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "reachvm: unknown command %q (want %s)\nrun 'reachvm help' for usage\n", args[0], commandNames())
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func commandNames() string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// cmdHelp is `reachvm help [COMMAND [SUB]]`: the overview, or the
// command's own --help.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		overview(stdout)
		return 0
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout, "help", newFlagSet("help"))
		return 0
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "reachvm help: unknown command %q (want %s)\n", args[0], commandNames())
		return 2
	}
	return c.run(append(append([]string{}, args[1:]...), "--help"), stdout, stderr)
}

func overview(w io.Writer) {
	fmt.Fprint(w, `usage: reachvm COMMAND [flags] [args]

reachvm reserves vmcode, one window of at most 2 GiB inside which every
call, jump and RIP-relative operand reaches everything with a plain rel32,
loads libraries privately into it and runs code from it.

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'reachvm help COMMAND' or 'reachvm COMMAND --help' for a command's
synopsis and flags. Flags take one or two dashes (--json, -json). Sizes
are bytes, decimal or 0x hex, with an optional K, M or G suffix (powers of
1024); addresses are hexadecimal, with or without 0x. A bad invocation
exits 2; a failure 1.
`)
}

// shortFlags are one-letter spellings of long flags (-q of --quiet): the
// usage lists each beside its long flag, not as a flag of its own.
var shortFlags = map[string]string{"q": "quiet", "c": "client", "o": "client-out"}

// printUsage prints the usage of the subcommand named cmd (or, as "bench
// kernels", of one of its own): its synopsis, its paragraph, and every
// flag of fs with its value's name, its text (which says its rule) and
// its default.
func printUsage(w io.Writer, cmd string, fs *flag.FlagSet) {
	words := strings.Fields(cmd)
	c, _ := lookup(words[0])
	for _, sub := range c.subs {
		if len(words) > 1 && sub.name == words[1] {
			c = sub
		}
	}
	fmt.Fprintf(w, "usage: reachvm %s\n\n", c.synopsis)
	for _, line := range wrap(c.about, 76) {
		fmt.Fprintln(w, line)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		if _, short := shortFlags[f.Name]; short || hiddenFlags[f.Name] {
			return
		}
		name, text := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		for s, long := range shortFlags {
			if long == f.Name && fs.Lookup(s) != nil {
				head += " (or -" + s + ")"
			}
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			head += " " + name
		}
		fmt.Fprintln(w, head)
		if f.DefValue != "" && f.DefValue != "false" {
			text += " (default " + f.DefValue + ")"
		}
		for _, line := range wrap(text, 68) {
			fmt.Fprintln(w, "      "+line)
		}
	})
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}
