#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark program, print its table, and (with BENCH_JSON=path)
# write all figures as one JSON object, with the machine they ran on.
# Arguments are benchmark programs, or scripts (scripts/ringtest.sh) that
# print rows and append to BENCH_JSON_PART the same way.
set -u
O=${O:-build}
export O
part=$(mktemp)
trap 'rm -f "$part"' EXIT
echo "vshm bench on $(uname -m), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
rc=0
for b in "$@"; do
	echo "== $(basename "$b")"
	BENCH_JSON_PART=$part "$b" || { echo "bench: $(basename "$b") failed" >&2; rc=1; }
done

# Ratios across programs: vshm's rings against Linux's ringtest, computed
# once everything ran, printed like bench_target's rows.  The targets use
# the like-for-like figures (scripts/ringtest.sh times bench_rings --once
# from outside, as it times ringtest, in the same rotation); the ratios of
# bench_rings' in-run median blocks to ringtest's whole runs are printed for
# information only: they compare two different statistics.
val() { awk -F'": ' -v k="\"$1" '$1 == k { v = $2 } END { print v }' "$part"; }
min_of() { for k in "$@"; do val "$k"; done | awk 'NF' | sort -g | head -n1; }
cross() {	# key numerator denominator target|-
	if [ -z "$2" ] || [ -z "$3" ]; then
		printf '  %-34s skipped: a figure is missing (ringtest skipped?)\n' "$1"
		return
	fi
	awk -v k="$1" -v a="$2" -v b="$3" -v t="$4" -v part="$part" 'BEGIN {
		r = a / b
		if (t == "-")
			printf "  %-34s %14.3f %-8s %s\n", k, r, "ratio", "information: in-run median blocks / whole runs"
		else if (t == "floor")
			printf "  %-34s %14.3f %-8s %s\n", k, r, "ratio", "information: whole runs, against a floor"
		else
			printf "  %-34s %14.3f %-8s target <= %.2f: %s\n", k, r, "ratio", t, r <= t + 0 ? "met" : "NOT MET"
		printf "\"%s\": %.6g\n", k, r >>part
	}'
}
if [ -n "$(val ringtest_split_rtt_ns)$(val wholerun_split_rtt_ns)" ]; then
	echo "== vshm rings vs Linux ringtest (polling, one buffer in flight, whole runs timed alike)"
	cross split_rtt_over_ringtest_split "$(val wholerun_split_rtt_ns)" "$(val ringtest_split_rtt_ns)" 1.0
	cross best_rtt_over_ringtest_ring \
		"$(min_of wholerun_split_rtt_ns wholerun_packed_rtt_ns wholerun_fifo_rtt_ns)" \
		"$(val ringtest_ring_rtt_ns)" 1.0
	cross split_inrun_over_ringtest_split "$(val split_rtt_ns_poll)" "$(val ringtest_split_rtt_ns)" -
	cross best_inrun_over_ringtest_ring \
		"$(min_of split_rtt_ns_poll packed_rtt_ns_poll fifo_rtt_ns_poll)" \
		"$(val ringtest_ring_rtt_ns)" -
	# Where each stands against the floor of its kind: ringtest's ring
	# completes in place (one line), vshm's FIFO answers on a ring of its
	# own (two lines); docs/perf.md, "Linux's ringtest".
	cross ringtest_ring_over_cacheline1 "$(val ringtest_ring_rtt_ns)" "$(val wholerun_cacheline1_rtt_ns)" floor
	cross fifo_rtt_over_cacheline_wholerun "$(val wholerun_fifo_rtt_ns)" "$(val wholerun_cacheline_rtt_ns)" floor
	cross cacheline_over_cacheline1_wholerun "$(val wholerun_cacheline_rtt_ns)" "$(val wholerun_cacheline1_rtt_ns)" floor
	# Above 1, no layout that moves 64 bytes each way can meet
	# best_rtt_over_ringtest_ring on this run: its bare model does not.
	cross msg64_floor_over_ringtest_ring "$(val wholerun_msg64_rtt_ns)" "$(val ringtest_ring_rtt_ns)" floor
fi

if [ -n "${BENCH_JSON:-}" ]; then
	# A figure measured again by a later program (cacheline_rtt_ns in
	# bench_core and bench_rings) keeps its first place and its last value:
	# JSON keys stay unique.
	{
		echo "{"
		printf '  "machine": "%s",\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //; s/"//g'), $(nproc) cpus"
		printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		awk -F'"' '{ if (!($2 in line)) order[++n] = $2; line[$2] = $0 }
			END { for (i = 1; i <= n; i++) print line[order[i]] }' "$part" |
			sed 's/^/  /; $!s/$/,/'
		echo "}"
	} >"$BENCH_JSON"
	echo "bench: figures written to $BENCH_JSON"
fi
exit $rc
