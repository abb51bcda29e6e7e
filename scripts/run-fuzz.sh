#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run each libFuzzer target for SECONDS, starting from its corpus in
# fuzz/corpus/<name> (new inputs go to a scratch dir, not the repo).
# Usage: run-fuzz.sh SECONDS target...
set -u
secs=$1; shift
rc=0
for bin in "$@"; do
	name=$(basename "$bin"); name=${name#fuzz_}
	corpus="fuzz/corpus/$name"
	scratch=$(mktemp -d)
	mkdir -p "$corpus"
	echo "fuzz: $name for ${secs}s (corpus $corpus, $(ls "$corpus" | wc -l) inputs)"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$scratch/" "$scratch" "$corpus" \
		>"$scratch/log" 2>&1; then
		echo "fuzz: $name FAILED"; tail -n 40 "$scratch/log"
		ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* 2>/dev/null
		rc=1
	else
		grep -E 'stat::number_of_executed_units|cov:' "$scratch/log" | tail -n 2
	fi
	rm -rf "$scratch"
done
exit $rc
