#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Boot the test guest under QEMU (TCG) and run one test script in it.
#
#   tests/guest/run-guest.sh [options] SCRIPT
#     -i INITRD   base initramfs (default ${O:-build}/guest/initramfs.cpio.gz,
#                 from mkinitramfs.sh; its .info names the kernel version)
#     -k KERNEL   kernel image (default /boot/vmlinuz-KVER)
#     -e ENVFILE  shell assignments the guest exports before SCRIPT
#     -H SOCKET   add an ivshmem-doorbell device on this hub socket
#     -n VECTORS  its vectors (default 4; must match the hub's --vectors)
#     -t SECONDS  bound on the whole run (default 120)
#     -a ARGS     more kernel command line
#     -q ARG      one more QEMU argument (repeat for more)
#     -l LOGFILE  also write the console there
#     -v          verbose boot (kernel messages on the console)
#
# SCRIPT runs as /test/run.sh under the guest's /init (busybox sh, with
# /lib/vshm-guest.sh for TAP helpers).  The console, without carriage
# returns, streams to stdout.  Exit status: the script's own when the guest
# reported it ("##vshm exit N"), 124 on timeout, 1 if the guest stopped
# without reporting (panic, QEMU error: see stderr).  QEMU is stopped on any
# exit of this script.
set -u
INITRD=${O:-build}/guest/initramfs.cpio.gz
KERNEL="" ENVFILE="" HUB="" VECTORS=4 TIMEOUT=120 APPEND="" LOG="" VERBOSE=0
EXTRA=()

die() { echo "run-guest: $*" >&2; exit 1; }
usage() { sed -n '6,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while getopts "i:k:e:H:n:t:a:l:q:vh" opt; do
	case $opt in
	i) INITRD=$OPTARG ;;
	k) KERNEL=$OPTARG ;;
	e) ENVFILE=$OPTARG ;;
	H) HUB=$OPTARG ;;
	n) VECTORS=$OPTARG ;;
	t) TIMEOUT=$OPTARG ;;
	a) APPEND=$OPTARG ;;
	l) LOG=$OPTARG ;;
	q) EXTRA+=("$OPTARG") ;;
	v) VERBOSE=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
SCRIPT=$1

QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found; run scripts/deps.sh"
[ -f "$SCRIPT" ] || die "test script $SCRIPT not found"
[ -f "$INITRD" ] && [ -f "$INITRD.info" ] || die "no initramfs $INITRD; build it with tests/guest/mkinitramfs.sh"
if [ -z "$KERNEL" ]; then
	KVER=$(sed -n 's/^KVER=//p' "$INITRD.info")
	KERNEL=/boot/vmlinuz-$KVER
fi
[ -r "$KERNEL" ] || die "kernel $KERNEL not readable; install linux-image-amd64"
[ -z "$ENVFILE" ] || [ -f "$ENVFILE" ] || die "env file $ENVFILE not found"
[ -z "$HUB" ] || [ -S "$HUB" ] || die "no hub socket at $HUB"
case $TIMEOUT in '' | *[!0-9]*) die "bad -t '$TIMEOUT': whole seconds" ;; esac

T=$(mktemp -d /tmp/vshm-guest.XXXXXX)
qpid=""
cleanup() {
	if [ -n "$qpid" ]; then
		kill -TERM "$qpid" 2>/dev/null
		# timeout(1) passes the signal on to QEMU and reaps it
		# (counted loops: bash can cut a $(...) short while it exits on a signal)
		for ((i = 0; i < 50; i++)); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
	fi
	exec 3<&-
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The per-run archive, appended to the cached one (the kernel unpacks
# concatenated archives in order).
mkdir -p "$T/run/test"
cp "$SCRIPT" "$T/run/test/run.sh"
if [ -n "$ENVFILE" ]; then cp "$ENVFILE" "$T/run/test/env"; else : >"$T/run/test/env"; fi
(cd "$T/run" && find test | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1n >"$T/run.cpio.gz" ||
	die "cannot build the per-run archive"
cat "$INITRD" "$T/run.cpio.gz" >"$T/initrd"

cmdline="console=ttyS0 panic=-1 iomem=relaxed"
[ "$VERBOSE" -eq 1 ] || cmdline="$cmdline quiet loglevel=1"
args=(-accel tcg -m 512 -smp 1 -nographic -no-reboot -nic none
	-kernel "$KERNEL" -initrd "$T/initrd" -append "$cmdline $APPEND")
if [ -n "$HUB" ]; then
	args+=(-chardev "socket,path=$HUB,id=ivsh0"
		-device "ivshmem-doorbell,chardev=ivsh0,vectors=$VECTORS")
fi
args+=(${EXTRA[@]+"${EXTRA[@]}"})

mkfifo "$T/console"
timeout -k 5 "$TIMEOUT" "$QEMU" "${args[@]}" </dev/null >"$T/console" 2>"$T/qemu.err" &
qpid=$!
exec 3<"$T/console"

status=""
deadline=$((SECONDS + TIMEOUT + 10))
while :; do
	left=$((deadline - SECONDS))
	[ "$left" -gt 0 ] || break
	IFS= read -r -t "$left" -u 3 line || [ -n "${line:-}" ] || break
	line=${line%$'\r'}
	printf '%s\n' "$line"
	[ -z "$LOG" ] || printf '%s\n' "$line" >>"$LOG"
	case $line in
	*"##vshm exit "*) status=${line#*"##vshm exit "}; status=${status%% *} ;;
	esac
	line=""
done
exec 3<&-
wait "$qpid"
rc=$?
qpid=""

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "run-guest: the guest did not finish within ${TIMEOUT}s" >&2
	exit 124
fi
if [ -z "$status" ]; then
	echo "run-guest: the guest stopped without reporting (QEMU exit $rc)${LOG:+; console in $LOG}" >&2
	sed 's/^/run-guest: qemu: /' "$T/qemu.err" >&2
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	echo "run-guest: QEMU exited with $rc" >&2
	sed 's/^/run-guest: qemu: /' "$T/qemu.err" >&2
	exit 1
fi
exit "$status"
