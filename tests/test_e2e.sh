#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# End to end between processes: a hub, a device process (vshm serve) and
# driver processes (vshm io, tool_ackwriter) through the hub's window.
# TAP output.  Every process this starts is stopped on exit; every wait is
# bounded.  Needs VSHM (the vshm binary) and TOOLS (the test tool dir).
set -u
VSHM=${VSHM:-build/vshm}
TOOLS=${TOOLS:-build/tests}
SCALE=${VSHM_E2E_SCALE:-100}	# percent of the 1 GiB stress runs (sanitizer builds use less)
T=$(mktemp -d /tmp/vshm-e2e.XXXXXX)
n=0 fail=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
diag() { echo "# $*"; }
fails() { ! "$@"; }

# Wait (bounded) until a file exists.
wait_for() { local i; for i in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }

start_hub() { # SOCK [args]
	local sock=$1; shift
	"$VSHM" hub --socket "$sock" "$@" 2>>"$T/hub.log" &
	pids+=($!)
	wait_for "$sock"
}

SERVES=0
start_serve() { # SOCK DEVICES...
	local sock=$1; shift
	SERVES=$((SERVES + 1))
	local log=$T/serve.$SERVES.log
	"$VSHM" serve --hub "$sock" "$@" 2>"$log" &
	SERVE_PID=$!
	pids+=($SERVE_PID)
	# ready once it says it is serving; gone if it exited
	local i
	for i in $(seq 1 100); do
		grep -q " serving " "$log" && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || { cat "$log" >&2; return 1; }
		sleep 0.05
	done
	return 1
}

IMG=$T/disk.img
truncate -s 64M "$IMG"
HUB=$T/hub.sock
start_hub "$HUB" --size 64M --vectors 4 || { echo "Bail out! hub did not start"; cat "$T/hub.log"; exit 1; }
start_serve "$HUB" "blk:$IMG,serial=e2e-disk" rng "console:unix=$T/con.sock" ||
	{ echo "Bail out! serve did not start"; exit 1; }
MAIN_SERVE=$SERVE_PID

info=$("$VSHM" io --hub "$HUB" info 2>&1)
check "info lists blk, rng and console" grep -q "device 2: console" <<<"$info"
check "blk reports its capacity and serial" grep -q "131072 sectors (64 MiB), serial 'e2e-disk'" <<<"$info"

# ---- random I/O against an in-memory model --------------------------------
bytes=$((1024 * SCALE / 100))M
for qd in 1 32; do
	out=$("$VSHM" io --hub "$HUB" stress "$bytes" "$qd" $((qd * 7 + 1)) 2>&1)
	diag "$out"
	check "stress $bytes at queue depth $qd: no errors, no mismatches" grep -q " 0 errors, 0 mismatches" <<<"$out"
done

# ---- the same devices over the packed and the FIFO layout -------------------
for ring in packed fifo; do
	out=$("$VSHM" io --hub "$HUB" --ring "$ring" stress $((256 * SCALE / 100 + 1))M 32 9 2>&1)
	diag "$ring: $out"
	check "$ring ring: random I/O at queue depth 32, no errors, no mismatches" grep -q " 0 errors, 0 mismatches" <<<"$out"
	check "$ring ring: rng bytes" "$VSHM" io --hub "$HUB" --ring "$ring" rng 1024 "$T/rnd.$ring"
done
check "an unknown layout is refused with a clear error" fails "$VSHM" io --hub "$HUB" --ring spiral info

# ---- files, flush, what the host sees --------------------------------------
head -c 3000000 /dev/urandom >"$T/data"
check "write a 3 MB file at offset 1 MiB" "$VSHM" io --hub "$HUB" write "$T/data" 1M
check "verify it through the device" "$VSHM" io --hub "$HUB" verify "$T/data" 1M
check "flush" "$VSHM" io --hub "$HUB" flush
check "the image file on the host holds the same bytes" cmp -s "$T/data" <(dd if="$IMG" bs=1M skip=1 count=3 iflag=fullblock 2>/dev/null | head -c 3000000)
check "read it back into a file" "$VSHM" io --hub "$HUB" read 3000320 "$T/back" 1M
check "and the bytes match" cmp -s "$T/data" <(head -c 3000000 "$T/back")

# ---- discard --------------------------------------------------------------
check "discard 1 MiB at offset 1 MiB" "$VSHM" io --hub "$HUB" discard 1M 1M
"$VSHM" io --hub "$HUB" read 1M "$T/zero" 1M
check "the discarded range reads back as zeroes" cmp -s "$T/zero" <(head -c 1048576 /dev/zero)

# ---- rng ------------------------------------------------------------------
check "rng gives 4096 bytes" "$VSHM" io --hub "$HUB" rng 4096 "$T/rnd"
check "of which not all are zero" test "$(tr -d '\0' <"$T/rnd" | wc -c)" -gt 3000

# ---- console both ways -----------------------------------------------------
# The host side answers the driver's line with its own, so both directions
# are checked without racing the driver's session set-up.
python3 - "$T/con.sock" "$T/con.out" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.05)
open(sys.argv[2] + ".ready", "w").close()
s.settimeout(5)
got = b""
end = time.time() + 8
while b"hello-from-driver" not in got and time.time() < end:
    try:
        d = s.recv(4096)
    except socket.timeout:
        break
    if not d:
        break
    got += d
s.sendall(b"hello-from-host\n")
time.sleep(1)
open(sys.argv[2], "wb").write(got)
EOF
conpid=$!
pids+=($conpid)
wait_for "$T/con.out.ready"
sleep 0.2	# the serve process accepts the client
out=$(timeout 10 "$VSHM" io --hub "$HUB" --timeout 1500 console hello-from-driver 2>&1)
wait "$conpid" 2>/dev/null
check "console: a line from the host reaches the driver" grep -q hello-from-host <<<"$out"
check "console: a line from the driver reaches the host" grep -q hello-from-driver "$T/con.out"

# ---- console on a pty -------------------------------------------------------
HUBP=$T/hubp.sock
start_hub "$HUBP" --size 16M
start_serve "$HUBP" console:pty
pts=$(sed -n 's/.*console on //p' "$T/serve.$SERVES.log")
python3 - "$pts" "$T/pty.out" <<'EOF' &
import os, sys, time, select
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
open(sys.argv[2] + ".ready", "w").close()
got = b""
end = time.time() + 8
while b"hello-pty-driver" not in got and time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        got += os.read(fd, 4096)
os.write(fd, b"hello-pty-host\n")
time.sleep(1)
open(sys.argv[2], "wb").write(got)
EOF
ptypid=$!
pids+=($ptypid)
wait_for "$T/pty.out.ready"
out=$(timeout 10 "$VSHM" io --hub "$HUBP" --timeout 1500 console hello-pty-driver 2>&1)
wait "$ptypid" 2>/dev/null
check "pty console: the driver's line reaches the terminal side" grep -q hello-pty-driver "$T/pty.out"
check "pty console: the terminal's line reaches the driver, and no echo of its own" \
	test "$(grep -c hello <<<"$out")" -eq 1 -a "$(grep -c hello-pty-host <<<"$out")" -eq 1

# ---- read-only -------------------------------------------------------------
HUB2=$T/hub2.sock
start_hub "$HUB2" --size 16M
cp "$IMG" "$T/ro.img"
sum0=$(md5sum <"$T/ro.img")
check "a second serve may not open an image another one writes" fails "$VSHM" serve --hub "$HUB2" "blk:$IMG,ro" 2>/dev/null
start_serve "$HUB2" "blk:$T/ro.img,ro" || notok "read-only serve started"
head -c 4096 /dev/urandom >"$T/small"
! "$VSHM" io --hub "$HUB2" write "$T/small" 0 2>"$T/ro.err"
check "a write to a read-only disk fails" test $? -eq 0
check "with a clear error" grep -qi "read-only" "$T/ro.err"
check "and the image is unchanged" test "$(md5sum <"$T/ro.img")" = "$sum0"
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null

# ---- driver killed mid-I/O --------------------------------------------------
rm -f "$T/ack.log"
"$TOOLS/tool_ackwriter" write "$HUB" "$T/ack.log" 32 2>/dev/null &
w=$!
pids+=($w)
sleep 1
kill -KILL "$w"; wait "$w" 2>/dev/null
acked=$(wc -l <"$T/ack.log")
check "the writer had acknowledged writes before the kill ($acked)" test "$acked" -gt 10
out=$(timeout 20 "$TOOLS/tool_ackwriter" check "$HUB" "$T/ack.log" 2>&1)
check "a new driver attaches and finds every acknowledged write ($out)" grep -q " 0 lost" <<<"$out"

# ---- device killed mid-I/O -------------------------------------------------
rm -f "$T/ack2.log"
"$TOOLS/tool_ackwriter" write "$HUB" "$T/ack2.log" 32 2>"$T/ack2.err" &
w=$!
pids+=($w)
sleep 1
kill -KILL "$MAIN_SERVE"; wait "$MAIN_SERVE" 2>/dev/null
t0=$(date +%s%N)
for i in $(seq 1 100); do kill -0 "$w" 2>/dev/null || break; sleep 0.05; done
wait "$w"; rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "the driver fails instead of hanging when the device dies (exit $rc, ${ms} ms)" test "$rc" -ne 0 -a "$ms" -lt 5000
check "with an I/O error, not silently ($(cat "$T/ack2.err"))" grep -q "stopped by Input/output error" "$T/ack2.err"
start_serve "$HUB" "blk:$IMG" rng
check "after vshm serve restarts, a new driver attaches" "$VSHM" io --hub "$HUB" info
out=$(timeout 20 "$TOOLS/tool_ackwriter" check "$HUB" "$T/ack2.log" 2>&1)
check "and every write acknowledged before the kill is on the disk ($out)" grep -q " 0 lost" <<<"$out"

# ---- a hostile device (vshm serve --hostile) vs the user-space driver -------
# Each class of misbehaviour ends the driver's work with an error within a
# bound, or (storm) costs it nothing but time; the device process lives on.
hostile() { # CLASS AFTER WANT(ok|fail) REGEX
	local cls=$1 after=$2 want=$3 re=$4 hub=$T/hostile-$1.sock out rc t0 ms
	start_hub "$hub" --size 16M --vectors 4
	truncate -s 16M "$T/hostile.img"
	if ! start_serve "$hub" --hostile "$cls" --hostile-after "$after" "blk:$T/hostile.img" rng; then
		notok "vshm serve --hostile $cls starts"
		return
	fi
	t0=$(date +%s%N)
	out=$(timeout 30 "$VSHM" io --hub "$hub" --timeout 2000 stress 2M 8 5 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$want" = ok ]; then
		check "hostile $cls: the driver's I/O still checks out ($ms ms: $(tail -n 1 <<<"$out"))" \
			test "$rc" -eq 0 -a "$ms" -lt 20000
	else
		check "hostile $cls: the driver fails with an error within 20 s (exit $rc, $ms ms: $(tail -n 1 <<<"$out"))" \
			test "$rc" -ne 0 -a "$rc" -ne 124 -a "$ms" -lt 20000
	fi
	grep -qE "$re" <<<"$out" || notok "hostile $cls: the driver says why ($out)"
	check "hostile $cls: the device process lives on" kill -0 "$SERVE_PID"
	kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
}
hostile used-id 16 fail "failed|error"
hostile used-len 16 fail "failed|error"
hostile config 16 fail "Invalid argument|failed"
hostile mute 1 fail "timed out"
hostile storm 16 ok "0 errors, 0 mismatches"
# stall: a device that takes requests and never completes them: every
# driver gives up after its request timeout (--req-timeout).
truncate -s 16M "$T/hostile.img"
start_hub "$T/hostile-stall.sock" --size 16M --vectors 4
if start_serve "$T/hostile-stall.sock" --hostile stall --hostile-after 1 "blk:$T/hostile.img" rng; then
	t0=$(date +%s%N)
	out=$(timeout 30 "$VSHM" io --hub "$T/hostile-stall.sock" --req-timeout 1500 rng 300000 "$T/stall.bin" 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "hostile stall: an rng read the device never completes fails within its timeout (exit $rc, $ms ms: $out)" \
		test "$rc" -ne 0 -a "$rc" -ne 124 -a "$ms" -lt 10000
	grep -q "timed out" <<<"$out" || notok "hostile stall: the driver says it timed out ($out)"
	t0=$(date +%s%N)
	out=$(timeout 30 "$VSHM" io --hub "$T/hostile-stall.sock" --req-timeout 1500 stress 2M 8 3 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "hostile stall: blk I/O the device never completes fails within its timeout (exit $rc, $ms ms: $out)" \
		test "$rc" -ne 0 -a "$rc" -ne 124 -a "$ms" -lt 10000
	grep -q "timed out\|past --req-timeout" <<<"$out" || notok "hostile stall: the blk driver says it timed out ($out)"
	check "hostile stall: the device process lives on" kill -0 "$SERVE_PID"
	kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
else
	notok "vshm serve --hostile stall starts"
fi

# ---- bad input -------------------------------------------------------------
bad() { # description expected-exit regex command...
	local what=$1 want=$2 re=$3; shift 3
	local err rc
	err=$(timeout 10 "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -qiE "$re" <<<"$err"; then
		ok "$what"
	else
		notok "$what (exit $rc: $err)"
	fi
}
HUB3=$T/hub3.sock
start_hub "$HUB3" --size 16M --max-peers 2
bad "missing image" 1 "no such file.*$T/nope.img" "$VSHM" serve --hub "$HUB3" "blk:$T/nope.img"
mkdir "$T/adir"
bad "image is a directory" 1 "$T/adir" "$VSHM" serve --hub "$HUB3" "blk:$T/adir"
bad "bad size syntax" 2 "size.*12Q" "$VSHM" hub --socket "$T/x.sock" --size 12Q
bad "socket in use by a running hub" 1 "in use" "$VSHM" hub --socket "$HUB" --size 16M
bad "no hub at the path" 1 "$T/none.sock" "$VSHM" io --hub "$T/none.sock" info
bad "unknown device" 2 "unknown device" "$VSHM" serve --hub "$HUB3" floppy
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
	bad "permission denied on the hub socket" 1 "permission denied" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$VSHM" io --hub "$HUB" info
else
	ok "permission denied on the hub socket # SKIP needs root and setpriv"
fi
start_serve "$HUB3" rng
# A second peer takes the last slot: a raw client that just holds on.
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); open(sys.argv[2],"w").close(); time.sleep(5)' "$HUB3" "$T/held" &
pids+=($!)
wait_for "$T/held"
sleep 0.2
bad "hub full" 1 "full|closed the connection" "$VSHM" io --hub "$HUB3" info
HUB4=$T/hub4.sock
start_hub "$HUB4" --size 16M
"$TOOLS/tool_ackwriter" poke-abi "$HUB4" 2
bad "wrong ABI version in the window" 1 "ABI" "$VSHM" io --hub "$HUB4" info
bad "a device refuses it too" 1 "ABI" "$VSHM" serve --hub "$HUB4" rng

echo "1..$n"
[ "$fail" -eq 0 ]
