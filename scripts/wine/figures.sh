#!/usr/bin/env bash
# scripts/wine/figures.sh: the strategy matrix under Wine, for the docs.
#
# Usage: scripts/wine/figures.sh OUTDIR [TRIALS]   (default 20 trials, seed 1)
#
# Runs reachvm strategies --backend wine once per Windows strategy, each
# in a Windows process of its own, and writes OUTDIR/wine.json (the --json
# shape: one entry per strategy) and OUTDIR/wine.txt (the tables). One
# process per strategy, because under Wine 8.0 a strategy's run changes
# where Wine puts later large allocations (after B, 2 GiB reservations go
# to the top of the address space, beside host mappings VirtualQuery calls
# free), which would decide the next strategy's figures; Windows allocates
# bottom-up and has no such mappings.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [TRIALS]" >&2; exit 2; }
out=$1
trials=${2:-20}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go build -o "$tmp/reachvm" ./cmd/reachvm)
: >"$out/wine.txt"
for s in A B C D E F vmm-grid; do
	echo "figures: $s" >&2
	(cd "$repo" && "$tmp/reachvm" strategies --backend wine --trials "$trials" --seed 1 --strategy "$s" --json 2>>"$tmp/log") >"$tmp/$s.json"
	(cd "$repo" && "$tmp/reachvm" strategies --backend wine --trials "$trials" --seed 1 --strategy "$s" 2>>"$tmp/log") >>"$out/wine.txt"
done
jq -s 'add' "$tmp"/*.json >"$out/wine.json"
echo "figures: wrote $out/wine.json and $out/wine.txt" >&2
