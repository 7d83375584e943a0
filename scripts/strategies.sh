#!/usr/bin/env bash
# Regenerates the figures of docs/strategies.md: the strategy matrix, the
# size and region sweeps, their CSV, JSON and SVG plots under
# docs/strategies/<backend>/, and the tables spliced into docs/strategies.md
# between its "generated" markers.
#
#   scripts/strategies.sh          sim (deterministic) and this Linux kernel
#   scripts/strategies.sh --wine   also A-F and vmm-grid under Wine, matrix
#                                  and sweeps, by scripts/wine/figures.sh,
#                                  into docs/strategies/wine (needs wine64;
#                                  the figures are discussed in
#                                  docs/strategies-wine.md)
#
# The sim figures depend only on the seed and on the size distributions
# read from this machine's /usr/lib (.so files and Wine's PE DLLs; DR's
# numbers where those are absent); the Linux and Wine figures are
# measured and vary from run to run.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=${SEED:-1}
TRIALS=${TRIALS:-20}
SWEEP_TRIALS=${SWEEP_TRIALS:-10}
wine=0
[[ ${1:-} == --wine ]] && wine=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/reachvm" ./cmd/reachvm

# run BACKEND FLAGS...: one backend's matrix and sweeps into
# docs/strategies/BACKEND, its text table beside them.
run() {
	local backend=$1
	shift
	local dir=docs/strategies/$backend
	rm -rf "$dir"
	mkdir -p "$dir"
	"$tmp/reachvm" strategies --backend "$backend" --trials "$TRIALS" --seed "$SEED" --race 1 \
		--out "$dir" --sweep-trials "$SWEEP_TRIALS" "$@" >"$dir/table.txt"
}

# The sim's size sweep runs twice: without races (room alone) and at 1%
# per race window (what a grid's window per released slot costs).
run sim --sweep-race 0,1
run linux --sweep-race 0
if ((wine)); then
	# Wine's own script: one Windows process per strategy (see there why).
	bash scripts/wine/figures.sh docs/strategies/wine "$TRIALS" "$SWEEP_TRIALS"
fi

# splice NAME FILE: replace what lies between the markers
# "<!-- begin generated NAME -->" and "<!-- end generated NAME -->" in
# docs/strategies.md by FILE.
splice() {
	local name=$1 file=$2 doc=docs/strategies.md
	grep -q "<!-- begin generated $name -->" "$doc" || return 0
	awk -v name="$name" -v file="$file" '
		$0 == "<!-- begin generated " name " -->" { print; while ((getline line < file) > 0) print line; skip = 1; next }
		$0 == "<!-- end generated " name " -->" { skip = 0 }
		!skip { print }
	' "$doc" >"$tmp/doc.md"
	cat "$tmp/doc.md" >"$doc"
}

splice sim docs/strategies/sim/tables.md
splice linux docs/strategies/linux/tables.md
# Wine's figures are spliced from what is committed unless --wine remade them.
[[ -f docs/strategies/wine/tables.md ]] && splice wine docs/strategies/wine/tables.md
echo "docs/strategies.md and docs/strategies/ regenerated (seed $SEED, $TRIALS trials, sweeps $SWEEP_TRIALS)"
