#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark program, print its table, and (with BENCH_JSON=path)
# write all figures as one JSON object, with the machine they ran on.
set -u
O=${O:-build}
part=$(mktemp)
trap 'rm -f "$part"' EXIT
echo "vshm bench on $(uname -m), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
rc=0
for b in "$@"; do
	echo "== $(basename "$b")"
	BENCH_JSON_PART=$part "$b" || { echo "bench: $(basename "$b") failed" >&2; rc=1; }
done
if [ -n "${BENCH_JSON:-}" ]; then
	{
		echo "{"
		printf '  "machine": "%s",\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //; s/"//g'), $(nproc) cpus"
		printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		sed 's/^/  /; $!s/$/,/' "$part"
		echo "}"
	} >"$BENCH_JSON"
	echo "bench: figures written to $BENCH_JSON"
fi
exit $rc
