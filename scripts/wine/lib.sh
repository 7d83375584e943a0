# scripts/wine/lib.sh: the Wine set-up shared by test.sh (the Windows test
# suite) and run.sh (one Windows executable). Sourced, not run. See
# docs/ARCHITECTURE.md, "Windows under Wine" for why each step is there.
#
# The sourcing script sets $repo (the source tree) and calls wine_setup,
# which (1) installs wine64 and gcc-mingw-w64-x86-64 when absent (needs
# root and apt-get), (2) creates or reuses the prefix, with a persistent
# wineserver until the script exits, (3) builds the ProcessPrng shim
# (internal/winshim) and copies it into the prefix's system32, (4) writes
# a go_windows_amd64_exec wrapper into $tmp/bin and puts it on PATH, and
# (5) checks with a tiny Go program that Go runs under Wine. Afterwards
# $WINE, $WINESERVER, $WINEPREFIX and $tmp are set, and "wine_run exe
# args..." runs a Windows executable in the prefix. Environment:
#
#   REACHVM_WINEPREFIX   Wine prefix to create or reuse
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/reachvm/wineprefix)
#   WINE_LOG_FD          file descriptor log lines go to (default 1)

start_us=${EPOCHREALTIME/./}
log() {
	local us=$((${EPOCHREALTIME/./} - start_us))
	printf '[wine %4d.%01ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*" >&"${WINE_LOG_FD:-1}"
}
die() { log "FAIL: $*"; exit 1; }

find_wine() {
	WINE=$(command -v wine64 || true)
	[[ -n "$WINE" ]] || { [[ -x /usr/lib/wine/wine64 ]] && WINE=/usr/lib/wine/wine64; } || true
	# Debian's /usr/lib/wine/wineserver wrapper prepends -p0, which would
	# defeat "wineserver -p": call the real binary.
	WINESERVER=$(command -v wineserver64 || true)
	[[ -n "$WINESERVER" ]] || { [[ -x /usr/lib/wine/wineserver64 ]] && WINESERVER=/usr/lib/wine/wineserver64; } || true
	[[ -n "$WINESERVER" ]] || WINESERVER=$(command -v wineserver || true)
	MINGW=$(command -v x86_64-w64-mingw32-gcc || true)
}

wine_setup() {
	command -v go >/dev/null || die "go not on PATH"
	# Some CI runners start jobs without HOME.
	: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
	: "${HOME:=/tmp}"
	export HOME

	# ------------------------------------------------------------ 1. tools
	find_wine
	if [[ -z "$WINE" || -z "$WINESERVER" || -z "$MINGW" ]]; then
		log "installing wine64 and gcc-mingw-w64-x86-64"
		[[ $(id -u) -eq 0 ]] || die "wine64/mingw missing and not root: apt-get install wine64 gcc-mingw-w64-x86-64"
		command -v apt-get >/dev/null || die "wine64/mingw missing and no apt-get"
		# DPkg::Lock::Timeout waits out any other apt-get holding the lock.
		timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 \
			install -y -q --no-install-recommends wine64 gcc-mingw-w64-x86-64 >/dev/null
		find_wine
		[[ -n "$WINE" && -n "$WINESERVER" && -n "$MINGW" ]] || die "wine64/wineserver/mingw still missing after apt-get"
	fi
	log "wine: $WINE ($("$WINE" --version 2>/dev/null || echo '?')), server: $WINESERVER, cc: $MINGW"

	# ----------------------------------------------------------- 2. prefix
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/reachvm
	export WINEPREFIX=${REACHVM_WINEPREFIX:-$cache/wineprefix}
	export WINEARCH=win64
	export WINEDEBUG=-all
	# No Mono or Gecko install prompts: reachvm needs neither. No
	# powrprof.dll either: Go's runtime loads it at start-up (for
	# suspend/resume notifications, and does without it as on Windows 7),
	# and Wine's powrprof pulls in advapi32 and sechost at Wine's fixed
	# bases, 0x1_d8c9_0000 and 0x1_eaf6_0000. On Windows system DLLs load
	# high; here they would sit inside [0x1_8000_0000, +2 GiB), the range
	# of DLLs' preferred bases that bench's strategy A wants, and A would
	# relocate every library in every Go process under Wine.
	export WINEDLLOVERRIDES="mscoree,mshtml,powrprof="
	export DISPLAY=
	mkdir -p "$WINEPREFIX"

	# One run per prefix at a time: the run owns the prefix's wineserver
	# and stops it at the end. Every command that may start a Wine process
	# gets 9>&- so that Wine's long-lived services do not inherit (and
	# hold) the lock.
	exec 9>"$WINEPREFIX.lock"
	flock -w 900 9 || die "prefix $WINEPREFIX busy for 900 s"

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/reachvm-wine.XXXXXX")
	trap wine_cleanup EXIT

	# A persistent server for the whole run: Wine's services (started by
	# the first process) stay attached to it instead of being restarted
	# by, and holding the output pipes of, every Windows process.
	timeout 30 "$WINESERVER" -p 9>&- || die "cannot start wineserver"

	# The first Wine process of a server session starts Wine's services
	# (winedevice.exe, ...), which inherit its stdout and stderr and keep
	# them open for as long as the server lives: a pipe there (go test's,
	# or a $(...) here) would never reach EOF. So the first process is
	# always wineboot, with its output sent to /dev/null.
	if [[ ! -f "$WINEPREFIX/.reachvm-ready" ]]; then
		log "creating prefix $WINEPREFIX (wineboot --init)"
		timeout 300 "$WINE" wineboot --init </dev/null >/dev/null 2>&1 9>&- || die "wineboot --init failed or timed out"
		[[ -d "$WINEPREFIX/drive_c/windows/system32" ]] || die "wineboot left no system32 in $WINEPREFIX"
		touch "$WINEPREFIX/.reachvm-ready"
	else
		log "reusing prefix $WINEPREFIX (starting its services)"
		timeout 120 "$WINE" wineboot </dev/null >/dev/null 2>&1 9>&- || die "wineboot failed or timed out"
	fi
	log "prefix ready"

	# ------------------------------------------------------------- 3. shim
	# Built once per version of its source and build flags, and cached:
	# the build is reproducible (no timestamp, fixed preferred base). The
	# cache key covers the flags and libraries, so a change of either
	# rebuilds it, and
	# the copy in system32 is replaced whenever it differs.
	#
	# The base: mingw's default for a 64-bit DLL, 0x1_8000_0000, is also
	# the preferred base of DLLs linked by MSVC, which bench's strategy A
	# puts its 2 GiB region at; Go loads this DLL at start-up, so there it
	# would take A's range in every process. 0x7ff7_0000_0000 is where
	# Windows itself puts system DLLs, far from any range a strategy or
	# workload asks for by address. It imports kernel32 only, for the same
	# reason (processprng.c). bench's TestWindowsShimOutOfAsWay checks
	# both under Wine.
	local shim_src=$repo/internal/winshim/processprng.c
	local shim_flags=(-O2 -shared -s -nostdlib -Wl,-e,DllMain -Wl,--no-insert-timestamp -Wl,--disable-auto-image-base -Wl,--image-base=0x7ff700000000)
	local shim_libs=(-lkernel32)
	local shim_key
	shim_key=$( { cat "$shim_src"; echo "${shim_flags[*]} ${shim_libs[*]}"; "$MINGW" -dumpfullversion; } | sha256sum | cut -c1-16)
	local shim=$cache/shim/bcryptprimitives-$shim_key.dll
	if [[ ! -s "$shim" ]]; then
		mkdir -p "$cache/shim"
		timeout 120 "$MINGW" "${shim_flags[@]}" -o "$tmp/bcryptprimitives.dll" "$shim_src" "${shim_libs[@]}" ||
			die "building the ProcessPrng shim failed"
		mv "$tmp/bcryptprimitives.dll" "$shim"
		log "built ProcessPrng shim $shim"
	fi
	local sys32=$WINEPREFIX/drive_c/windows/system32
	if ! cmp -s "$shim" "$sys32/bcryptprimitives.dll"; then
		cp "$shim" "$sys32/bcryptprimitives.dll"
		log "installed ProcessPrng shim in $sys32"
	fi

	# ---------------------------------------------------------- 4. wrapper
	mkdir -p "$tmp/bin"
	cat >"$tmp/bin/go_windows_amd64_exec" <<EOF
#!/bin/sh
# go test and go run run GOOS=windows binaries through this: under wine64
# in the reachvm prefix, with the binary's exit status passed through by
# exec.
export WINEPREFIX='$WINEPREFIX' WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml,powrprof=' DISPLAY=
exec '$WINE' "\$@"
EOF
	chmod +x "$tmp/bin/go_windows_amd64_exec"
	export PATH=$tmp/bin:$PATH

	# ------------------------------------------------------------ 5. smoke
	# Wine works: a smoke test tells a broken prefix from a failing program.
	cat >"$tmp/smoke.go" <<'EOF'
package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
)

func main() {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		fmt.Println("rand:", err)
		os.Exit(3)
	}
	fmt.Println("ok", runtime.GOOS, runtime.Version())
	os.Exit(7)
}
EOF
	(cd "$tmp" && GOOS=windows GOARCH=amd64 CGO_ENABLED=0 timeout 120 go build -o smoke.exe smoke.go) || die "building smoke test"
	local smoke_rc smoke_out
	set +e
	# To a file, not $(...): nothing Wine starts can then hold up the script.
	timeout 120 "$tmp/bin/go_windows_amd64_exec" "$tmp/smoke.exe" </dev/null >"$tmp/smoke.out" 2>&1 9>&-
	smoke_rc=$?
	set -e
	smoke_out=$(head -c 2000 "$tmp/smoke.out")
	[[ $smoke_rc -eq 7 && "$smoke_out" == ok\ windows* ]] ||
		die "Go under Wine does not run (exit $smoke_rc, want 7): $smoke_out"
	log "Go under Wine: $smoke_out (exit status passed through)"
}

wine_cleanup() {
	local rc=$?
	# Stop only this prefix's server (WINEPREFIX selects it).
	timeout 30 "$WINESERVER" -k >/dev/null 2>&1 9>&- || true
	rm -rf "$tmp"
	log "done, exit status $rc"
}

# wine_run runs a Windows executable in the prefix, in the foreground,
# with this script's standard streams, and returns its exit status.
wine_run() {
	"$tmp/bin/go_windows_amd64_exec" "$@" 9>&-
}
