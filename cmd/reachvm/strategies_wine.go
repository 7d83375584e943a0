package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/reachvm/reachvm/bench"
)

// strategiesWine runs `reachvm strategies --backend wine` from Linux: it
// cross-builds reachvm for Windows from the source tree, runs the build
// under Wine in the prefix scripts/wine sets up (scripts/wine/run.sh: the
// ProcessPrng shim Go needs, a persistent wineserver), with every flag
// given here and --backend wine, and passes its output and exit status
// through. The Windows build measures the strategies on VirtualAlloc and
// MapViewOfFileEx as Wine implements them, and names its rows "wine".
//
// The source tree is needed anyway (to build for Windows): it is the
// module around the working directory, or $REACHVM_SRC.
func strategiesWine(fs *flag.FlagSet, stdout, stderr io.Writer) int {
	root, err := sourceTree()
	if err != nil {
		fmt.Fprintln(stderr, "reachvm strategies --backend wine:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "reachvm-wine-*")
	if err != nil {
		fmt.Fprintln(stderr, "reachvm strategies --backend wine:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "reachvm.exe")
	build := exec.Command("go", "build", "-o", exe, "./cmd/reachvm")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(stderr, "reachvm strategies --backend wine: building reachvm.exe:", err)
		return 1
	}

	// The Windows build draws its libraries from the distributions read
	// here (see bench.SizesEnv).
	sizes := filepath.Join(dir, "sizes.json")
	if err := bench.WriteSizes(sizes); err != nil {
		fmt.Fprintln(stderr, "reachvm strategies --backend wine:", err)
		return 1
	}

	// The flags as given, but for the backend.
	args := []string{"strategies", "--backend", "wine"}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "backend" {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	run := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "wine", "run.sh"), exe}, args...)...)
	run.Env = append(os.Environ(), bench.SizesEnv+"="+sizes)
	run.Stdout, run.Stderr = stdout, stderr
	// If anything Wine starts kept the output pipes open after the
	// program exited, do not wait for it forever.
	run.WaitDelay = 10 * time.Second
	if err := run.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(stderr, "reachvm strategies --backend wine: running under Wine:", err)
		return 1
	}
	return 0
}

// sourceTree finds reachvm's source: $REACHVM_SRC, or the directory of the
// go.mod of module github.com/reachvm/reachvm at or above the working
// directory.
func sourceTree() (string, error) {
	if d := os.Getenv("REACHVM_SRC"); d != "" {
		return d, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isReachvmModule(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("not in reachvm's source tree (needed to build for Windows): cd there or set REACHVM_SRC")
		}
		d = up
	}
}

func isReachvmModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module")) == "github.com/reachvm/reachvm"
		}
	}
	return false
}
