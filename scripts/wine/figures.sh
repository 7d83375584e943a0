#!/usr/bin/env bash
# scripts/wine/figures.sh: the strategy matrix and the sweeps under Wine,
# for the docs.
#
# Usage: scripts/wine/figures.sh OUTDIR [TRIALS [SWEEP_TRIALS]]
#        (default 20 trials, sweeps 10 trials a point; seed 1, race 1%,
#        size sweep at race 0% and 1%, as on sim)
#
# Runs reachvm strategies --backend wine --out once per Windows strategy,
# each in a Windows process of its own, and merges the runs
# (scripts/wine/merge) into OUTDIR as one run would have written them:
# strategies.json (the --json shape), strategies.csv, sizes.csv,
# regions.csv, tables.md and the plots, and table.txt (the text tables).
# One process per strategy, because under Wine 8.0 a strategy's run
# changes where Wine puts later large allocations (after B, 2 GiB
# reservations go to the top of the address space, beside host mappings
# VirtualQuery calls free), which would decide the next strategy's
# figures; Windows allocates bottom-up and has no such mappings.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [TRIALS [SWEEP_TRIALS]]" >&2; exit 2; }
out=$1
trials=${2:-20}
sweep_trials=${3:-10}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go build -o "$tmp/reachvm" ./cmd/reachvm)
strategies=(A B C D E F vmm-grid)
dirs=()
for s in "${strategies[@]}"; do
	echo "figures: $s" >&2
	start=$SECONDS
	(cd "$repo" && "$tmp/reachvm" strategies --backend wine --trials "$trials" --seed 1 --race 1 \
		--strategy "$s" --out "$tmp/$s" --sweep-trials "$sweep_trials" --sweep-race 0,1 2>>"$tmp/log") >"$tmp/$s.txt" ||
		{ tail -20 "$tmp/log" >&2; exit 1; }
	echo "figures: $s took $((SECONDS - start)) s" >&2
	dirs+=("$tmp/$s")
done
rm -rf "$out"
mkdir -p "$out"
(cd "$repo" && go run ./scripts/wine/merge -seed 1 \
	-note "One Windows process per strategy (scripts/wine/figures.sh), merged by scripts/wine/merge." \
	"$out" "${dirs[@]}")
# The text tables: the parameters once, then each strategy's rows.
head -1 "$tmp/A.txt" >"$out/table.txt"
for s in "${strategies[@]}"; do tail -n +2 "$tmp/$s.txt"; done >>"$out/table.txt"
echo "figures: wrote $out" >&2
