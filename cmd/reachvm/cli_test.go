package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// cli runs reachvm in-process.
func cli(args ...string) (stdout, stderr string, status int) {
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return out.String(), errb.String(), status
}

var reFlag = regexp.MustCompile(`--[a-z][a-z-]*`)

// usageFlags returns the flags a usage text lists in its flags section
// and those its synopsis line names.
func usageFlags(t *testing.T, usage string) (listed, synopsis []string) {
	t.Helper()
	first, _, _ := strings.Cut(usage, "\n")
	synopsis = uniq(reFlag.FindAllString(first, -1))
	if _, flags, ok := strings.Cut(usage, "\nflags:\n"); ok {
		for _, line := range strings.Split(flags, "\n") {
			if strings.HasPrefix(line, "  --") {
				listed = append(listed, strings.Fields(line)[0])
			}
		}
	}
	return uniq(listed), synopsis
}

func uniq(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// TestHelp: every way of asking for help prints to stdout and exits 0;
// each subcommand's usage has a synopsis, a paragraph, and every flag
// (with the synopsis naming exactly the flags the usage explains).
func TestHelp(t *testing.T) {
	overview, errs, code := cli("help")
	if code != 0 || errs != "" || !strings.HasPrefix(overview, "usage: reachvm COMMAND") {
		t.Fatalf("help: exit %d, stderr %q, stdout %q", code, errs, overview)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}} {
		if out, errs, code := cli(args...); code != 0 || errs != "" || out != overview {
			t.Errorf("%q: exit %d, stderr %q, stdout differs from 'reachvm help'", args, code, errs)
		}
	}
	for _, c := range commands {
		if !strings.Contains(overview, "\n  "+c.name+" ") {
			t.Errorf("the overview lacks %s", c.name)
		}
		checkUsage(t, c.name, c.name)
		for _, sub := range c.subs {
			checkUsage(t, c.name+" "+sub.name, c.name)
		}
	}
	// help of help, and help of nothing known.
	if _, errs, code := cli("help", "nosuch"); code != 2 || !strings.Contains(errs, `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d, stderr %q", code, errs)
	}
}

// checkUsage checks the usage of the command name ("bench kernels" is a
// subcommand of bench, top): every way of asking for it prints the same
// on stdout, a synopsis, a paragraph and every flag.
func checkUsage(t *testing.T, name, top string) {
	t.Helper()
	want, errs, code := cli(append([]string{"help"}, strings.Fields(name)...)...)
	if code != 0 || errs != "" || !strings.HasPrefix(want, "usage: reachvm "+name) {
		t.Errorf("help %s: exit %d, stderr %q, stdout %q", name, code, errs, want)
		return
	}
	// The paragraph: a blank line after the synopsis, then prose.
	if _, about, _ := strings.Cut(want, "\n\n"); len(about) < 100 {
		t.Errorf("help %s: no paragraph:\n%s", name, want)
	}
	ways := [][]string{
		append(strings.Fields(name), "--help"),
		append(strings.Fields(name), "-h"),
	}
	if name == top {
		ways = append(ways, []string{top, "--help"})
	}
	for _, args := range ways {
		if name == "help" && len(args) > 1 {
			args = []string{"help", "help"}
		}
		if out, errs, code := cli(args...); code != 0 || errs != "" || out != want {
			t.Errorf("%q: exit %d, stderr %q; stdout differs from 'reachvm help %s':\n%s", args, code, errs, name, out)
		}
	}
	listed, synopsis := usageFlags(t, want)
	if !slices.Equal(listed, synopsis) {
		t.Errorf("%s: the synopsis names %q, the flags section explains %q", name, synopsis, listed)
	}
	// Every flag is explained: a line of text under it.
	for _, f := range listed {
		if !regexp.MustCompile(`\n  ` + f + `[^\n]*\n      \S`).MatchString(want) {
			t.Errorf("%s: %s has no explanation", name, f)
		}
	}
}

// TestReadmeAgrees: README's Commands section names, for each command,
// exactly the flags its usage explains.
func TestReadmeAgrees(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Commands\n")
	if !ok {
		t.Fatal("README.md has no Commands section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	// Each bullet opens with the command's synopsis in backquotes, which
	// may run over lines; a command with subcommands ("bench kernels")
	// has a bullet for each.
	bullets := regexp.MustCompile("(?s)\n- `reachvm ([a-z]+)([^`]*)`").FindAllStringSubmatch(strings.ReplaceAll(section, "\n  ", " "), -1)
	seen := map[string]bool{}
	for _, m := range bullets {
		name := m[1]
		args := []string{"help", name}
		if c, _ := lookup(name); len(c.subs) > 0 {
			sub, _, _ := strings.Cut(strings.TrimSpace(m[2]), " ")
			args = append(args, sub)
			seen[name+" "+sub] = true
		}
		seen[name] = true
		usage, _, code := cli(args...)
		if code != 0 {
			t.Errorf("README documents %q, which reachvm does not know", name)
			continue
		}
		listed, _ := usageFlags(t, usage)
		if readme := uniq(reFlag.FindAllString(m[2], -1)); !slices.Equal(readme, listed) {
			t.Errorf("%s: README names %q, the usage %q", name, readme, listed)
		}
		// The backends and tools the README lists are the usage's.
		for _, word := range []string{"sim", "linux", "windows", "wine", "valgrind", "qemu"} {
			if strings.Contains(m[2], word) && !strings.Contains(usage, word) {
				t.Errorf("%s: README names %s, the usage does not", name, word)
			}
		}
	}
	for _, c := range commands {
		if c.name != "help" && !seen[c.name] {
			t.Errorf("README's Commands section lacks %s", c.name)
		}
		for _, sub := range c.subs {
			if !seen[c.name+" "+sub.name] {
				t.Errorf("README's Commands section lacks %s %s", c.name, sub.name)
			}
		}
	}
}

// TestRefusedBeforeWork: every bad value is refused while the flags are
// read: exit 2, nothing on stdout, one line naming the flag and the rule,
// then the pointer to the help, and fast (the work these commands would
// do takes seconds: reserving and loading, building the kernels, the
// strategy matrix).
func TestRefusedBeforeWork(t *testing.T) {
	dir := tempDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"nosuch"}, `reachvm: unknown command "nosuch"`},
		{[]string{"vmm", "--size", "0"}, "reachvm vmm: --size 0: must not be 0"},
		{[]string{"vmm", "--size", "4G"}, "reachvm vmm: --size 4G: past 2G, the most vmcode can be"},
		{[]string{"vmm", "--size", "99999999999999"}, "reachvm vmm: --size 99999999999999: past 2G"},
		{[]string{"vmm", "--size", "4097"}, "reachvm vmm: --size 4097: not a multiple of"},
		{[]string{"vmm", "--base", "zzz"}, "reachvm vmm: --base zzz: bad address"},
		{[]string{"vmm", "--max-offset", "16M"}, "reachvm vmm: --max-offset needs --base"},
		{[]string{"vmm", "--max-offset", "0", "--base", "0x100000000000"}, "reachvm vmm: --max-offset 0: must not be 0"},
		{[]string{"vmm", "--base", "0x7fff00000000", "--size", "2G", "--max-offset", "0x1000000000"}, "reachvm vmm: --base 0x7fff00000000 + --max-offset 64G + --size 2G ends past 0x800000000000"},
		{[]string{"vmm", "--near", "self", "--base", "0x100000000000"}, "reachvm vmm: --near and --base exclude each other"},
		{[]string{"vmm", "--near", "0x2000-0x1000"}, "reachvm vmm: --near 0x2000-0x1000: want START < END"},
		{[]string{"vmm", "--near", "12"}, "reachvm vmm: --near 12: want START-END in hex, or self"},
		{[]string{"vmm", "--wx=maybe"}, "reachvm vmm: --wx=maybe: "},
		{[]string{"vmm", "extra"}, `reachvm vmm: unexpected arguments ["extra"]`},
		{[]string{"demo", "--size", "0"}, "reachvm demo: --size 0: must not be 0"},
		{[]string{"maps", "--size", "4G"}, "reachvm maps: --size 4G: past 2G"},
		{[]string{"maps", "--bogus"}, "reachvm maps: unknown flag --bogus"},
		{[]string{"load", "--size", "0", "lib.so"}, "reachvm load: --size 0: must not be 0"},
		{[]string{"load"}, "reachvm load: missing LIB"},
		{[]string{"run"}, "reachvm run: missing PROG"},
		{[]string{"run", "--max-blocks", "-1", "prog"}, "reachvm run: --max-blocks -1: must be at least 0"},
		{[]string{"bench"}, "reachvm bench: missing benchmark: want kernels or programs"},
		{[]string{"bench", "nosuch"}, `reachvm bench: unknown "nosuch" benchmark: want kernels or programs`},
		{[]string{"bench", "programs", "--only", "xz-9,nosuch"}, `reachvm bench programs: --only xz-9,nosuch: unknown name "nosuch": want a comma-separated list of xz-9, sha256sum, sqlite3, python3`},
		{[]string{"bench", "programs", "--tools", "pin"}, `reachvm bench programs: --tools pin: unknown name "pin": want a comma-separated list of native, reachvm, valgrind, qemu`},
		{[]string{"bench", "programs", "--runs", "0"}, "reachvm bench programs: --runs 0: must be at least 1"},
		{[]string{"bench", "programs", "--startup", "-1"}, "reachvm bench programs: --startup -1: must be at least 0"},
		{[]string{"bench", "programs", "--scale", "0"}, "reachvm bench programs: --scale 0: must be a factor > 0 and at most 1000"},
		{[]string{"bench", "programs", "--scale", "1e9"}, "reachvm bench programs: --scale 1e+09: must be a factor > 0 and at most 1000"},
		{[]string{"bench", "programs", "--scale", "NaN"}, "reachvm bench programs: --scale NaN: must be a factor > 0 and at most 1000"},
		{[]string{"bench", "programs", "--plot", filepath.Join(file, "p.svg")}, "reachvm bench programs: --plot " + filepath.Join(file, "p.svg") + ": cannot create its directory"},
		{[]string{"bench", "programs", "--reachvm", filepath.Join(dir, "missing")}, "reachvm bench programs: --reachvm " + filepath.Join(dir, "missing") + ": not an executable file"},
		{[]string{"bench", "programs", "extra"}, `reachvm bench programs: unexpected arguments ["extra"]`},
		{[]string{"bench", "kernels", "--only", "nosuch"}, `reachvm bench kernels: --only nosuch: unknown name "nosuch": want a comma-separated list of k_fib, k_loops`},
		{[]string{"bench", "kernels", "--tools", "native,pin"}, `reachvm bench kernels: --tools native,pin: unknown name "pin": want a comma-separated list of native, reachvm, valgrind, qemu`},
		{[]string{"bench", "kernels", "--runs", "0"}, "reachvm bench kernels: --runs 0: must be at least 1"},
		{[]string{"bench", "kernels", "--seconds", "0"}, "reachvm bench kernels: --seconds 0: must be a number of seconds > 0"},
		{[]string{"bench", "kernels", "--plot", filepath.Join(file, "k.svg")}, "reachvm bench kernels: --plot " + filepath.Join(file, "k.svg") + ": cannot create its directory"},
		{[]string{"bench", "kernels", "--reachvm", filepath.Join(dir, "missing")}, "reachvm bench kernels: --reachvm " + filepath.Join(dir, "missing") + ": not an executable file"},
		{[]string{"strategies", "--out", filepath.Join(file, "out")}, "reachvm strategies: --out " + filepath.Join(file, "out") + ": cannot create it"},
		{[]string{"strategies", "--backend", "nope"}, "reachvm strategies: --backend nope: want one of sim, linux, windows, wine"},
		{[]string{"strategies", "--strategy", "D,Z"}, `reachvm strategies: --strategy D,Z: unknown name "Z"`},
		{[]string{"strategies", "--workload", "nope"}, `reachvm strategies: --workload nope: unknown name "nope"`},
		{[]string{"strategies", "--trials", "0"}, "reachvm strategies: --trials 0: must be at least 1"},
		{[]string{"strategies", "--race", "101"}, "reachvm strategies: --race 101: must be in [0, 100]"},
		{[]string{"strategies", "--sweep-race", "0,101"}, `reachvm strategies: --sweep-race 0,101: "101" is not a percentage in [0, 100]`},
		{[]string{"strategies", "--sweep-workload", "nope"}, "reachvm strategies: --sweep-workload nope: want one of dr, so, pe, none"},
	} {
		start := time.Now()
		out, errs, code := cli(tc.args...)
		d := time.Since(start)
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		pointer := "run 'reachvm help"
		if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], tc.msg) || !strings.HasPrefix(lines[1], pointer) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, and %q then %q", tc.args, code, out, errs, tc.msg, pointer)
		}
		if d > 3*time.Second {
			t.Errorf("%q: refused after %v: work was done first", tc.args, d)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("refused runs left files in %s: %v", dir, ents)
	}
}
