# SPDX-License-Identifier: MIT
#
# Sourced by the host side of the guest tests (tests/test_guest_*.sh): the
# TAP helpers, the checks that skip (77) when QEMU, the guest kernel or its
# headers are missing, the scratch directory and the cleanup that stops
# every process the test started, the module and initramfs builds, the hub,
# and the loop that reads the guest's console and numbers its "##vshm"
# results into this TAP stream (tests/guest/guest-lib.sh has the guest's
# half; docs/guest.md describes the protocol).
#
# Before sourcing: HERE (the tests/ directory).  After: TOP, O, OABS, VSHM,
# KDIR, KVER, T (scratch), pids (stopped on exit, in order), SERVE_PID.
set -u
# Run from make check: the parent's jobserver is not ours to use.
unset MAKEFLAGS MFLAGS MAKELEVEL
TOP=$(cd "$HERE/.." && pwd)
O=${O:-build}
VSHM=${VSHM:-build/vshm}

skip() { echo "1..0 # SKIP $*"; exit 77; }

# guest_prereqs TOOL...: skip without QEMU, the guest kernel, its headers
# or one of the host tools named.
guest_prereqs() {
	local tool
	command -v qemu-system-x86_64 >/dev/null ||
		skip "qemu-system-x86_64 not installed (scripts/deps.sh installs it)"
	KDIR=$(make -s --no-print-directory -C "$TOP/kmod" print-kdir 2>/dev/null)
	[ -n "$KDIR" ] && [ -f "$KDIR/Makefile" ] ||
		skip "no kernel headers for the guest kernel (linux-headers-amd64)"
	KVER=$(basename "$(dirname "$KDIR")")
	[ -r "/boot/vmlinuz-$KVER" ] || skip "no guest kernel /boot/vmlinuz-$KVER (linux-image-amd64)"
	for tool in busybox cpio depmod modinfo "$@"; do
		command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
	done
	if ! [ -x "$VSHM" ]; then
		echo "Bail out! $VSHM missing: run make first"
		exit 1
	fi
	VSHM=$(cd "$(dirname "$VSHM")" && pwd)/$(basename "$VSHM")
	mkdir -p "$O"
	OABS=$(cd "$O" && pwd)
}

n=0 fail=0
pids=()
SERVE_PID=""
T=""
# guest_scratch NAME: the scratch directory, removed on exit with every
# process in pids (first to last) and SERVE_PID stopped.
guest_scratch() {
	T=$(mktemp -d "/tmp/vshm-$1.XXXXXX")
	trap guest_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
}
guest_cleanup() {
	local p i
	# run-guest.sh first (its own trap stops QEMU), then the rest.
	# (counted loops: bash can cut a $(...) short while it exits on a signal)
	for p in "${pids[@]}" $SERVE_PID; do
		kill -TERM "$p" 2>/dev/null
		for ((i = 0; i < 60; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -z "$T" ] || rm -rf "$T"
}

ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
diag() { echo "# $*"; }
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }
md5() { md5sum | cut -d' ' -f1; }
t_start=$(now)

# build_module: virtio_shm.ko into $O/kmod (KO), with no warnings.
build_module() {
	local rc warn
	KO=$OABS/kmod/virtio_shm.ko
	make -s --no-print-directory -C "$TOP/kmod" BUILD="$OABS/kmod" >"$T/kmod.log" 2>&1
	rc=$?
	warn=$(grep -iE 'warning|error' "$T/kmod.log")
	check "virtio_shm.ko builds against $KVER without warnings" test "$rc" -eq 0 -a -z "$warn" -a -f "$KO"
	[ -z "$warn" ] || sed 's/^/# /' <<<"$warn" | head -n 20
	[ "$rc" -eq 0 ] || { tail -n 20 "$T/kmod.log" | sed 's/^/# /'; echo "Bail out! no module"; exit 1; }
}

# build_initramfs FILE ["MODULES"]: the guest's initramfs (INITRD) with our
# module and the guest kernel's MODULES.
build_initramfs() {
	local mods=()
	INITRD=$OABS/guest/$1
	[ -z "${2:-}" ] || mods=(-m "$2")
	if ! "$HERE/guest/mkinitramfs.sh" -o "$INITRD" ${mods[@]+"${mods[@]}"} "$KO" 2>"$T/mkinitramfs.log"; then
		sed 's/^/# /' "$T/mkinitramfs.log"
		echo "Bail out! no initramfs"
		exit 1
	fi
	ok "initramfs for $KVER${2:+ with ${2// /, }} ($(du -k "$INITRD" | cut -f1) KiB)"
}

# make_image MB OFF_MB: IMG, a sparse image of MB MiB with 1 MiB of random
# bytes at OFF_MB MiB, whose md5 is HOST_MD5.
make_image() {
	IMG=$T/disk.img
	truncate -s "$1M" "$IMG"
	head -c 1048576 /dev/urandom >"$T/hostpat"
	dd if="$T/hostpat" of="$IMG" bs=1M seek="$2" conv=notrunc status=none
	HOST_MD5=$(md5 <"$T/hostpat")
}

# start_hub SIZE VECTORS: a hub on $T/hub.sock (HUB), logging to $T/hub.log.
start_hub() {
	local i
	HUB=$T/hub.sock
	VECTORS=$2
	"$VSHM" hub --socket "$HUB" --size "$1" --vectors "$2" -v 2>"$T/hub.log" &
	pids+=("$!")
	for ((i = 0; i < 100; i++)); do [ -S "$HUB" ] && break; sleep 0.05; done
	[ -S "$HUB" ] || { cat "$T/hub.log"; echo "Bail out! the hub did not start"; exit 1; }
}

# start_serve ARGS...: vshm serve on the hub (SERVE_PID), logging to
# $T/serve.N.log (SERVE_LOG); 0 once it says it is serving.
SERVES=0
start_serve() {
	local i
	SERVES=$((SERVES + 1))
	SERVE_LOG=$T/serve.$SERVES.log
	"$VSHM" serve --hub "$HUB" -v "$@" 2>"$SERVE_LOG" &
	SERVE_PID=$!
	for ((i = 0; i < 200; i++)); do
		grep -q " serving " "$SERVE_LOG" && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.05
	done
	sed 's/^/# serve: /' "$SERVE_LOG"
	return 1
}

# stop_serve [SIG]: stop it (KILL by default) and reap it.
stop_serve() {
	[ -n "$SERVE_PID" ] || return 0
	kill "-${1:-KILL}" "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null
	SERVE_PID=""
}

# run_guest SCRIPT MIN_CHECKS [run-guest.sh options]: boot the guest on
# INITRD and the hub, run SCRIPT in it with $T/env, number its results,
# hand its "req" lines to the caller's request function, and check that
# it ran to the end with at least MIN_CHECKS checks.  Bounded by
# GUEST_TIMEOUT.  GUEST_ID: the guest's peer id, once it said it.
run_guest() {
	local script=$1 min=$2 line left rc t_boot guest_exit="" booted="" guest_checks=0 gpid
	shift 2
	mkfifo "$T/console"
	t_boot=$(now)
	"$HERE/guest/run-guest.sh" -i "$INITRD" -H "$HUB" -n "$VECTORS" -t "$GUEST_TIMEOUT" "$@" \
		-e "$T/env" "$script" >"$T/console" 2>"$T/run-guest.log" &
	gpid=$!
	pids=("$gpid" "${pids[@]}")
	exec 4<"$T/console"
	local deadline=$((SECONDS + GUEST_TIMEOUT + 20))
	while :; do
		left=$((deadline - SECONDS))
		[ "$left" -gt 0 ] || break
		IFS= read -r -t "$left" -u 4 line || break
		printf '%s\n' "$line" >>"$T/console.log"
		# (the BIOS's terminal escapes may precede the first marker)
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
		"##vshm exit "*)
			set -- ${line#"##vshm exit "}
			guest_exit=$1
			diag "guest powered off at ${2:-?}s of uptime"
			;;
		esac
	done
	exec 4<&-
	wait "$gpid"
	rc=$?
	if [ -n "$booted" ]; then ok "the guest booted (after ${booted}s)"; else notok "the guest booted (never)"; fi
	check "the guest ran its script to the end ($guest_checks checks) and powered off (exit ${guest_exit:-none}, run-guest ${rc})" \
		test -n "$guest_exit" -a "$rc" = "$guest_exit" -a "$guest_checks" -ge "$min"
	if [ -z "$guest_exit" ] || [ "$rc" -ne 0 ]; then
		sed 's/^/# run-guest: /' "$T/run-guest.log"
		grep -v '^##vshm' "$T/console.log" | tail -n 30 | sed 's/^/# console: /'
	fi
}
