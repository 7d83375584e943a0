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
# test with GOOS=windows. Exits non-zero if any step or test fails.
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
log "PASS"
