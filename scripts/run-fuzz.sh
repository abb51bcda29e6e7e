#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run each libFuzzer target for SECONDS, starting from its corpus in
# fuzz/corpus/<name> (new inputs go to a scratch dir, not the repo), and
# print one line per target: executions, CPU seconds, coverage (libFuzzer's
# cov: edges and ft: features at the end), corpus size.
# Usage: run-fuzz.sh SECONDS target...
# FUZZ_SUMMARY=FILE appends the same figures there, tab-separated:
#   date target seconds cpu_seconds executions cov ft
# FUZZ_KEEP=DIR keeps what each run found in DIR/<name> (to grow a corpus
# by hand with -merge=1; nothing is added to fuzz/corpus by itself).
set -u
secs=$1; shift
rc=0
TIMEFORMAT='%U %S'
for bin in "$@"; do
	name=$(basename "$bin"); name=${name#fuzz_}
	corpus="fuzz/corpus/$name"
	scratch=$(mktemp -d)
	mkdir -p "$corpus"
	echo "fuzz: $name for ${secs}s (corpus $corpus, $(ls "$corpus" | wc -l) inputs)"
	cpu=$( { time "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$scratch/" "$scratch" "$corpus" \
		>"$scratch/log" 2>&1; echo "rc $?" >"$scratch/rc"; } 2>&1 )
	if [ "$(cat "$scratch/rc")" != "rc 0" ]; then
		echo "fuzz: $name FAILED"; tail -n 40 "$scratch/log"
		ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* 2>/dev/null
		rc=1
	else
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log" | tail -n 1)
		last=$(grep -E '(INITED|NEW|REDUCE|pulse|DONE).* cov: ' "$scratch/log" | tail -n 1)
		cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
		ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
		cpus=$(awk '{ printf "%.0f", $1 + $2 }' <<<"$cpu")
		echo "fuzz: $name: ${execs:-?} executions, ${cpus}s CPU, cov ${cov:-?} ft ${ft:-?}"
		if [ -n "${FUZZ_SUMMARY:-}" ]; then
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$name" "$secs" "$cpus" \
				"${execs:-0}" "${cov:-0}" "${ft:-0}" >>"$FUZZ_SUMMARY"
		fi
		if [ -n "${FUZZ_KEEP:-}" ]; then
			mkdir -p "$FUZZ_KEEP/$name"
			find "$scratch" -maxdepth 1 -type f ! -name log ! -name rc -exec cp {} "$FUZZ_KEEP/$name/" \;
		fi
	fi
	rm -rf "$scratch"
done
exit $rc
