#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Linux's own virtio_blk, virtio_console and virtio_rng, unmodified, in a
# QEMU guest (TCG), over virtio_shm.ko and the window of an ivshmem-doorbell
# device whose other side is `vshm serve blk console rng`, a process that
# can reach nothing but that window.  The guest runs tests/guest/virtio.sh;
# its results are numbered into this TAP stream and its requests answered
# here; what it wrote is checked in the image once it is gone.
# Every process this starts is stopped on exit; every wait is bounded.
# Needs VSHM (the vshm binary); builds the module into $O/kmod and the
# initramfs into $O/guest.  Skips (77) without QEMU, the guest kernel or its
# headers (scripts/deps.sh installs them).  VSHM_GUEST_SMP=N boots N vCPUs.
set -u
# Run from make check: the parent's jobserver is not ours to use.
unset MAKEFLAGS MFLAGS MAKELEVEL
VSHM=${VSHM:-build/vshm}
O=${O:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
GUEST_TIMEOUT=${VSHM_GUEST_TIMEOUT:-240}
VECTORS=4
IMG_MB=64 HOST_OFF_MB=40 GUEST_OFF_MB=48 FS_KB=32768

skip() { echo "1..0 # SKIP $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 not installed (scripts/deps.sh installs it)"
KDIR=$(make -s --no-print-directory -C "$TOP/kmod" print-kdir 2>/dev/null)
[ -n "$KDIR" ] && [ -f "$KDIR/Makefile" ] ||
	skip "no kernel headers for the guest kernel (linux-headers-amd64)"
KVER=$(basename "$(dirname "$KDIR")")
[ -r "/boot/vmlinuz-$KVER" ] || skip "no guest kernel /boot/vmlinuz-$KVER (linux-image-amd64)"
for tool in busybox cpio depmod modinfo python3; do
	command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
if ! [ -x "$VSHM" ]; then
	echo "Bail out! $VSHM missing: run make first"
	exit 1
fi
VSHM=$(cd "$(dirname "$VSHM")" && pwd)/$(basename "$VSHM")

T=$(mktemp -d /tmp/vshm-guestvirtio.XXXXXX)
n=0 fail=0
pids=()
SERVE_PID=""
cleanup() {
	# run-guest.sh first (its own trap stops QEMU), then the rest.
	# (counted loops: bash can cut a $(...) short while it exits on a signal)
	for p in "${pids[@]}" $SERVE_PID; do
		kill -TERM "$p" 2>/dev/null
		for ((i = 0; i < 60; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
diag() { echo "# $*"; }
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }
md5() { md5sum | cut -d' ' -f1; }
t_start=$(now)

# ---- build: module, initramfs with the guest kernel's virtio drivers ----------
mkdir -p "$O"
OABS=$(cd "$O" && pwd)
KO=$OABS/kmod/virtio_shm.ko
make -s --no-print-directory -C "$TOP/kmod" BUILD="$OABS/kmod" >"$T/kmod.log" 2>&1
rc=$?
warn=$(grep -iE 'warning|error' "$T/kmod.log")
check "virtio_shm.ko builds against $KVER without warnings" test "$rc" -eq 0 -a -z "$warn" -a -f "$KO"
[ -z "$warn" ] || sed 's/^/# /' <<<"$warn" | head -n 20
[ "$rc" -eq 0 ] || { tail -n 20 "$T/kmod.log" | sed 's/^/# /'; echo "Bail out! no module"; exit 1; }
INITRD=$OABS/guest/initramfs-virtio.cpio.gz
if ! "$HERE/guest/mkinitramfs.sh" -o "$INITRD" -m "virtio_blk virtio_console virtio_rng ext4" \
	"$KO" 2>"$T/mkinitramfs.log"; then
	sed 's/^/# /' "$T/mkinitramfs.log"
	echo "Bail out! no initramfs"
	exit 1
fi
ok "initramfs for $KVER with virtio_blk, virtio_console, virtio_rng, ext4 ($(du -k "$INITRD" | cut -f1) KiB)"

# ---- the image, the hub, the backend -------------------------------------------
IMG=$T/disk.img
truncate -s "${IMG_MB}M" "$IMG"
head -c 1048576 /dev/urandom >"$T/hostpat"
dd if="$T/hostpat" of="$IMG" bs=1M seek="$HOST_OFF_MB" conv=notrunc status=none
HOST_MD5=$(md5 <"$T/hostpat")

HUB=$T/hub.sock
"$VSHM" hub --socket "$HUB" --size "${IMG_MB}M" --vectors "$VECTORS" -v 2>"$T/hub.log" &
pids+=("$!")
for ((i = 0; i < 100; i++)); do [ -S "$HUB" ] && break; sleep 0.05; done
[ -S "$HUB" ] || { cat "$T/hub.log"; echo "Bail out! the hub did not start"; exit 1; }

SERVES=0
start_serve() {
	local log
	SERVES=$((SERVES + 1))
	log=$T/serve.$SERVES.log
	rm -f "$T/con.sock"
	"$VSHM" serve --hub "$HUB" -v "blk:$IMG" "console:unix=$T/con.sock" rng 2>"$log" &
	SERVE_PID=$!
	for ((i = 0; i < 200; i++)); do
		grep -q " serving " "$log" && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.05
	done
	sed 's/^/# serve: /' "$log"
	return 1
}
# Isolation: the device process maps the window and io_uring's rings shared,
# nothing else (in particular nothing of the guest).
isolated() {
	local maps=/proc/$SERVE_PID/maps shared
	shared=$(awk '$2 ~ /s$/ { $1 = $2 = $3 = $4 = $5 = ""; print }' "$maps" | sed 's/^ *//' | sort -u)
	diag "serve $SERVE_PID shared mappings: $(echo $shared)"
	grep -q '^/memfd:vshm' <<<"$shared" &&
		! grep -vE '^/memfd:vshm-hub( \(deleted\))?$|^anon_inode:\[io_uring\]$' <<<"$shared" | grep -q .
}
start_serve || { echo "Bail out! vshm serve did not start"; exit 1; }
check "vshm serve maps the window and io_uring rings shared, nothing else" isolated

# The console's host side: connects at once, sends a line when the guest
# asks for it, and collects what comes back.
TOKEN=hello-$RANDOM$RANDOM
python3 - "$T/con.sock" "$T/con.go" "$T/con.out" "$TOKEN" <<'EOF' &
import os, socket, sys, time
path, go, out, token = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
end = time.time() + 30
while True:
    try:
        s.connect(path)
        break
    except OSError:
        if time.time() > end:
            open(out, "w").write("(could not connect)\n")
            sys.exit(1)
        time.sleep(0.05)
end = time.time() + 300
while not os.path.exists(go):
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.05)
s.sendall((token + "\n").encode())
s.settimeout(0.5)
got, want, end = b"", ("echo:" + token + "\n").encode(), time.time() + 25
while want not in got and time.time() < end:
    try:
        d = s.recv(4096)
    except socket.timeout:
        continue
    if not d:
        break
    got += d
open(out, "w").write(got.decode(errors="replace"))
EOF
pids+=("$!")

cat >"$T/env" <<EOF
HOST_OFF_MB=$HOST_OFF_MB
HOST_MD5=$HOST_MD5
GUEST_OFF_MB=$GUEST_OFF_MB
FS_KB=$FS_KB
IMG_SECTORS=$((IMG_MB * 2048))
MOD_ARGS="${VSHM_GUEST_PACKED:+packed=1}"
PACKED="${VSHM_GUEST_PACKED:-}"
EOF

# ---- the guest -------------------------------------------------------------------------
raws=() files=() killed="" restarted=""
request() {
	case $1 in
	console-send) : >"$T/con.go" ;;
	kill-serve)
		kill -KILL "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
		killed=$SERVE_PID
		SERVE_PID=""
		;;
	start-serve)
		if start_serve; then
			restarted=$SERVE_PID
			check "the restarted vshm serve is isolated the same way" isolated
		else
			notok "vshm serve restarts"
		fi
		;;
	raw) raws+=("$2 $3") ;;
	file) files+=("$2 $3") ;;
	*) notok "unknown request from the guest: $*" ;;
	esac
}

mkfifo "$T/console"
t_boot=$(now)
smp=()
[ -z "${VSHM_GUEST_SMP:-}" ] || smp=(-q -smp -q "$VSHM_GUEST_SMP")
"$HERE/guest/run-guest.sh" -i "$INITRD" -H "$HUB" -n "$VECTORS" -t "$GUEST_TIMEOUT" ${smp[@]+"${smp[@]}"} \
	-e "$T/env" "$HERE/guest/virtio.sh" >"$T/console" 2>"$T/run-guest.log" &
GPID=$!
pids=("$GPID" "${pids[@]}")
exec 4<"$T/console"

guest_exit="" booted="" guest_checks=0
min_checks=45	# the packed run skips the vanishing-backend and reset parts
[ -n "${VSHM_GUEST_PACKED:-}" ] && min_checks=40
deadline=$((SECONDS + GUEST_TIMEOUT + 20))
while :; do
	left=$((deadline - SECONDS))
	[ "$left" -gt 0 ] || break
	IFS= read -r -t "$left" -u 4 line || break
	printf '%s\n' "$line" >>"$T/console.log"
	case $line in *"##vshm "*) line="##vshm ${line#*"##vshm "}" ;; esac
	case $line in
	"##vshm boot "*)
		booted=$(since "$t_boot")
		set -- ${line#"##vshm boot "}
		diag "guest $2 up: ${booted}s after QEMU started, ${1}s of guest uptime"
		;;
	"##vshm ok "*) guest_checks=$((guest_checks + 1)); ok "guest: ${line#"##vshm ok "}" ;;
	"##vshm not ok "*) guest_checks=$((guest_checks + 1)); notok "guest: ${line#"##vshm not ok "}" ;;
	"##vshm # "*) diag "guest: ${line#"##vshm # "}" ;;
	"##vshm req "*) request ${line#"##vshm req "} ;;
	"##vshm bail "*) notok "the guest gave up: ${line#"##vshm bail "}" ;;
	"##vshm exit "*) set -- ${line#"##vshm exit "}; guest_exit=$1; diag "guest powered off at ${2:-?}s of uptime" ;;
	esac
done
exec 4<&-
wait "$GPID"
rc=$?
if [ -n "$booted" ]; then ok "the guest booted (after ${booted}s)"; else notok "the guest booted (never)"; fi
check "the guest ran its script to the end ($guest_checks checks) and powered off (exit ${guest_exit:-none}, run-guest ${rc})" \
	test -n "$guest_exit" -a "$rc" = "$guest_exit" -a "$guest_checks" -ge "$min_checks"
if [ -z "$guest_exit" ] || [ "$rc" -ne 0 ]; then
	sed 's/^/# run-guest: /' "$T/run-guest.log"
	grep -v '^##vshm' "$T/console.log" | tail -n 30 | sed 's/^/# console: /'
fi

# ---- what the host sees ------------------------------------------------------------------
for ((i = 0; i < 50; i++)); do [ -s "$T/con.out" ] && break; sleep 0.1; done
check "console: the host's line came back from the guest through the console socket" \
	grep -qx "echo:$TOKEN" "$T/con.out"
[ -s "$T/con.out" ] && diag "console socket got: $(head -c 200 "$T/con.out" | tr '\n' '|')"
check "the guest wrote one raw block for the host to check" test "${#raws[@]}" -eq 1
for r in "${raws[@]}"; do
	set -- $r
	got=$(dd if="$IMG" bs=1M skip="$1" count=1 status=none | md5)
	check "the image holds the guest's raw 1 MiB at $1 MiB ($got)" test "$got" = "$2"
done
check "the guest reported three files" test "${#files[@]}" -eq 3
if command -v debugfs >/dev/null; then
	for f in "${files[@]}"; do
		set -- $f
		rm -f "$T/dump"
		debugfs -R "dump $1 $T/dump" "$IMG" >/dev/null 2>&1
		got=$(md5 <"$T/dump" 2>/dev/null)
		check "the image's ext2 file system holds $1 as the guest wrote it" test "$got" = "$2"
	done
else
	ok "the files in the image, checked on the host # SKIP debugfs (e2fsprogs) not installed"
fi
if [ -z "${VSHM_GUEST_PACKED:-}" ]; then
	check "the backend was killed once and restarted once" test -n "$killed" -a -n "$restarted"
	check "the restarted backend served a session" grep -q "driver peer .* attached" "$T/serve.2.log"
fi
check "hub log: no dropped or refused peer" sh -c "! grep -qiE 'drop|refus' '$T/hub.log'"
diag "whole test: $(since "$t_start")s"

echo "1..$n"
[ "$fail" -eq 0 ]
