#!/usr/bin/env bash
# scripts/wine/test.sh: run reachvm's Windows tests under Wine (Wine 8.0 on
# Debian bookworm is what CI has; see docs/ARCHITECTURE.md, "Windows under Wine").
#
# Usage: scripts/wine/test.sh [package ...]
#
# With no packages it tests every package that has Windows-specific files
# (files that GOOS=windows selects and GOOS=linux does not) plus
# ./internal/osmem/...; the list it found is printed. Environment:
#
#   REACHVM_WINEPREFIX   Wine prefix to create or reuse
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/reachvm/wineprefix)
#   GOTESTFLAGS          extra flags for go test (e.g. "-v -run TestFoo")
#   REACHVM_WINE_TIMEOUT bound on the whole run in seconds (default 1800)
#
# Steps: the set-up of lib.sh (install wine64 and mingw when absent, create
# or reuse the prefix with a persistent wineserver, install the ProcessPrng
# shim, put a go_windows_amd64_exec wrapper on PATH so that go test runs
# each test binary under wine64, check that Go runs), then go vet and go
# test with GOOS=windows, then reachvm.exe's demo --json and maps, their
# fields checked. Exits non-zero if any step or test fails.
set -euo pipefail

# Bound the whole run: re-exec under timeout once. Every step below has its
# own, shorter bound as well, so a hang is reported where it happens.
if [[ -z "${REACHVM_WINE_INNER:-}" ]]; then
	export REACHVM_WINE_INNER=1
	exec timeout --kill-after=30 "${REACHVM_WINE_TIMEOUT:-1800}" bash "$0" "$@"
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=scripts/wine/lib.sh
source "$repo/scripts/wine/lib.sh"
wine_setup

# ------------------------------------------------------------- packages
if [[ $# -gt 0 ]]; then
	pkgs=("$@")
else
	# A package has Windows code if GOOS=windows selects files that
	# GOOS=linux does not.
	fmt='{{.ImportPath}} {{join .GoFiles ","}}|{{join .TestGoFiles ","}}|{{join .XTestGoFiles ","}}'
	declare -A linux_files
	while read -r p f; do linux_files[$p]=$f; done < <(GOOS=linux timeout 120 go list -e -f "$fmt" ./...)
	mapfile -t pkgs < <(
		{
			GOOS=windows timeout 120 go list -e -f "$fmt" ./... | while read -r p f; do
				if [[ "$f" != "||" && "${linux_files[$p]-}" != "$f" ]]; then
					echo "$p"
				fi
			done
			# And packages with no Windows files whose tests run the
			# Windows backend all the same: the conformance suite, and
			# vmcode's units on the grid and its W^X section views.
			GOOS=windows timeout 120 go list -e -f '{{if or .GoFiles .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./internal/osmem/... ./vmcode
		} | sed '/^$/d' | sort -u
	)
fi
[[ ${#pkgs[@]} -gt 0 ]] || die "no packages to test"
log "packages: ${pkgs[*]}"

log "GOOS=windows go vet"
GOOS=windows GOARCH=amd64 CGO_ENABLED=0 timeout 300 go vet "${pkgs[@]}" 9>&- || die "go vet failed"

log "GOOS=windows go test (each test binary under wine64)"
# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags.
if ! GOOS=windows GOARCH=amd64 CGO_ENABLED=0 timeout --kill-after=30 1200 \
	go test -count=1 -timeout 10m ${GOTESTFLAGS:-} "${pkgs[@]}" 9>&-; then
	die "go test under Wine failed"
fi

# ------------------------------------------------- reachvm.exe end to end
# The built CLI, as a user runs it: `reachvm.exe demo --json` and
# `reachvm.exe maps`, their fields checked as cmd/reachvm's Linux tests
# check theirs (the in-process tests above run the same commands inside a
# test binary).
log "reachvm.exe demo --json and maps"
GOOS=windows GOARCH=amd64 CGO_ENABLED=0 timeout 300 go build -o "$tmp/reachvm.exe" ./cmd/reachvm 9>&- ||
	die "building reachvm.exe"
set +e
timeout 120 "$tmp/bin/go_windows_amd64_exec" "$tmp/reachvm.exe" demo --json </dev/null >"$tmp/demo.json" 2>"$tmp/demo.err" 9>&-
rc=$?
set -e
[[ $rc -eq 0 ]] || die "reachvm.exe demo --json exited $rc: $(head -c 2000 "$tmp/demo.err") $(head -c 2000 "$tmp/demo.json")"
# json_field NAME prints the value of the top-level field NAME of
# $tmp/demo.json (encoding/json with a two-space indent: one field a
# line), quotes included for a string.
json_field() {
	sed -n "s/^  \"$1\": \(.*\)\$/\1/p" "$tmp/demo.json" | sed 's/,$//'
}
demo_fail() { die "reachvm.exe demo --json: $*"$'\n'"$(cat "$tmp/demo.json")"; }
call=$(json_field call_bytes)
[[ $call =~ ^\"e8[0-9a-f]{8}\"$ ]] || demo_fail "call_bytes $call, want e8 and a rel32"
result=$(json_field result) expected=$(json_field expected)
[[ -n $result && $result == "$expected" ]] || demo_fail "result $result, expected $expected"
[[ $(json_field sync_mismatches) == 0 ]] || demo_fail "aspacem disagrees with VirtualQuery"
[[ $(json_field lib) == '"demo.dll"' && $(json_field lib_in_vmcode) == true ]] || demo_fail "demo.dll not loaded inside vmcode"
[[ $(json_field placement) == '"grid"' && $(json_field grid_slots) == 3277 && $(json_field grid_slot_size) == 655360 ]] ||
	demo_fail "vmcode is not the grid of 3277 slots of 640 KiB"
[[ $(json_field wx) == true ]] || demo_fail "vmcode is not W^X"
base=$(json_field vmcode_base) size=$(json_field vmcode_size)
for k in lib_base func_addr stub_addr call_addr; do
	a=$(json_field $k)
	((a >= base && a < base + size)) || demo_fail "$k $a lies outside vmcode [$base, +$size)"
done
grep -q '\[privlib demo.dll\]"' "$tmp/demo.json" || demo_fail "maps lack [privlib demo.dll]"
grep -q '\[grid slots [0-9]*-3276/3277\]"' "$tmp/demo.json" || demo_fail "maps lack the idle grid slots' line"
log "demo: demo_compute(6, 7) = $result in demo.dll at $(printf %#x "$(json_field lib_base)"), called from $(printf %#x "$(json_field stub_addr)") by $call"

dll=$repo/internal/demolib/demo.dll
set +e
timeout 120 "$tmp/bin/go_windows_amd64_exec" "$tmp/reachvm.exe" maps --load "Z:${dll//\//\\}" </dev/null >"$tmp/maps.txt" 2>"$tmp/maps.err" 9>&-
rc=$?
set -e
[[ $rc -eq 0 ]] || die "reachvm.exe maps exited $rc: $(head -c 2000 "$tmp/maps.err")"
for want in '[grid slots ' '[privlib demo.dll]' '[vmcode rw alias]' '[vmheap]' 'reachvm.exe' 'ntdll.dll'; do
	grep -qF -- "$want" "$tmp/maps.txt" || die "reachvm.exe maps lacks $want:"$'\n'"$(cat "$tmp/maps.txt")"
done
# Every line is a maps line: start-end perms offset dev inode [name].
if bad=$(grep -vE '^[0-9a-f]{8,}-[0-9a-f]{8,} [r-][w-][x-][ps] [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2} [0-9]+ ' "$tmp/maps.txt"); then
	die "reachvm.exe maps printed lines not in maps format:"$'\n'"$bad"
fi
log "maps: $(wc -l <"$tmp/maps.txt") lines, demo.dll as [privlib demo.dll]"
log "PASS"
