#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run TAP test programs; print each program's verdict and end with the line
# "N passed, N failed" (N counts individual TAP checks; a program that
# crashes, times out, or exits non-zero without a failing check counts as one
# failure).  Exit 0 only when nothing failed.
set -u
O=${O:-build}
TIMEOUT=${VSHM_TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
logdir="$O/test-logs"
mkdir -p "$logdir"
for t in "$@"; do
	name=$(basename "$t")
	log="$logdir/$name.log"
	# Sanitizer runs instrument our C code, not a QEMU guest: they may skip
	# the guest tests (VSHM_SKIP_GUEST=1), which then say so.
	case "$name" in test_guest_*)
		if [ -n "${VSHM_SKIP_GUEST:-}" ]; then
			skip=$((skip + 1))
			printf 'SKIP %-28s %s\n' "$name" "VSHM_SKIP_GUEST is set"
			continue
		fi
	esac
	start=$(date +%s.%N)
	timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1
	rc=$?
	secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -eq 77 ]; then
		skip=$((skip + 1))
		printf 'SKIP %-28s %s\n' "$name" "$(grep -m1 SKIP "$log" | sed 's/.*SKIP *//')"
		continue
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		fail=$((fail + 1))
		f=1
	fi
	if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
		printf 'PASS %-28s %4d checks  %6ss\n' "$name" "$p" "$secs"
	else
		printf 'FAIL %-28s %4d ok, %d not ok, exit %d  (%s)\n' "$name" "$p" "$f" "$rc" "$log"
		grep -E '^not ok|^#' "$log" | head -n 40 | sed 's/^/    /'
		[ "$rc" -ge 124 ] && tail -n 20 "$log" | sed 's/^/    /'
	fi
done
echo
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
