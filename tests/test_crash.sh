#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Crash and restart without loss.
#
#  1. A driver writes 4 KiB blocks at queue depth 32 with a flush every 64
#     writes, logging each write as soon as it is acknowledged, with
#     recovery on.  The device process is SIGKILLed at random moments
#     VSHM_CRASH_KILLS times (default 200) and restarted each time.  The
#     driver must ride through every restart: no request fails, outstanding
#     ones are retried on the new device.
#  2. The driver side is SIGKILLed at random moments the same number of
#     times, a new driver starting each time.
#  3. A fresh driver reads back every block the logs say was acknowledged:
#     none may be lost.
#
# TAP output; every process is stopped on exit; every wait is bounded.
set -u
VSHM=${VSHM:-build/vshm}
TOOLS=${TOOLS:-build/tests}
KILLS=${VSHM_CRASH_KILLS:-200}
T=$(mktemp -d /tmp/vshm-crash.XXXXXX)
n=0 fail=0
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
rnd_sleep() { sleep "0.$(printf '%03d' $((RANDOM % 180 + 20)))"; }	# 20..199 ms

truncate -s 32M "$T/disk.img"
"$VSHM" hub --socket "$T/hub.sock" --size 32M 2>"$T/hub.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$T/hub.sock" ] && break; sleep 0.05; done

SERVE=
start_serve() {
	[ -f "$T/serve.log" ] && cat "$T/serve.log" >>"$T/serve.all.log"
	"$VSHM" serve -v --hub "$T/hub.sock" "blk:$T/disk.img" 2>"$T/serve.log" &
	SERVE=$!
	pids+=($SERVE)
	local i
	for i in $(seq 200); do
		grep -q " serving " "$T/serve.log" && return 0
		kill -0 "$SERVE" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# ---- 1. the device dies, again and again ---------------------------------
start_serve || { echo "Bail out! serve did not start"; cat "$T/serve.log"; exit 1; }
"$TOOLS/tool_ackwriter" survive "$T/hub.sock" "$T/ack.dev.log" 32 >"$T/writer.out" 2>&1 &
writer=$!
pids+=($writer)
# Recovery covers an open device: start killing once writes flow.
for _ in $(seq 200); do [ -s "$T/ack.dev.log" ] && break; sleep 0.02; done
restarts=0 missed=0
for k in $(seq "$KILLS"); do
	rnd_sleep
	if kill -KILL "$SERVE" 2>/dev/null; then
		wait "$SERVE" 2>/dev/null
	else
		missed=$((missed + 1))
	fi
	start_serve && restarts=$((restarts + 1))
	kill -0 "$writer" 2>/dev/null || break
done
check "the device process was killed and restarted $KILLS times ($restarts restarts, $missed already gone)" \
	test "$restarts" -eq "$KILLS" -a "$missed" -eq 0
sleep 0.3
kill -TERM "$writer"
for _ in $(seq 300); do kill -0 "$writer" 2>/dev/null || break; sleep 0.05; done
wait "$writer"; rc=$?
stats=$(grep "^stats:" "$T/writer.out")
echo "# $stats"
check "the driver rode through every device restart (exit $rc)" test "$rc" -eq 0
check "no request failed" grep -q " 0 failed," <<<"$stats"
recov=$(sed -n 's/.* \([0-9]*\) recoveries.*/\1/p' <<<"$stats")
check "it re-attached after the kills ($recov recoveries)" test "${recov:-0}" -gt $((KILLS / 2))

out=$(timeout 60 "$TOOLS/tool_ackwriter" check "$T/hub.sock" "$T/ack.dev.log" 2>&1)
echo "# device kills: $out"
check "every write acknowledged across the device kills is on the disk" grep -q " 0 lost" <<<"$out"

# ---- 2. the driver dies, again and again ---------------------------------
# Each writer starts at a higher run number, so what it wrote is told apart
# from what earlier writers wrote to the same block.
for k in $(seq "$KILLS"); do
	"$TOOLS/tool_ackwriter" write "$T/hub.sock" "$T/ack.drv.log" 32 $((1000000 + k * 1000)) >/dev/null 2>&1 &
	w=$!
	rnd_sleep
	kill -KILL "$w" 2>/dev/null
	wait "$w" 2>/dev/null
done
check "the device process survived $KILLS driver kills" kill -0 "$SERVE"

# ---- 3. nothing acknowledged before a driver kill is lost ---------------------
out=$(timeout 60 "$TOOLS/tool_ackwriter" check "$T/hub.sock" "$T/ack.drv.log" 2>&1)
echo "# driver kills: $out"
check "every write acknowledged before a driver kill is on the disk" grep -q " 0 lost" <<<"$out"
acks=$(wc -l <"$T/ack.dev.log")
check "the device-kill run acknowledged writes ($acks)" test "$acks" -gt 1000

echo "1..$n"
[ "$fail" -eq 0 ]
