#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The hub against QEMU's ivshmem-doorbell, checked from inside a Linux
# guest: a vshm hub, a host peer (tool_hubpeer) and a QEMU guest (TCG)
# running tests/guest/hub-compat.sh, first with no driver (sysfs, devmem),
# then through kmod/virtio_shm.ko.  The guest's results are numbered into
# this TAP stream; its "req" lines are answered here (docs/guest.md).
# Every process this starts is stopped on exit; every wait is bounded.
# Needs VSHM (the vshm binary) and TOOLS (the test tool dir); builds the
# module into $O/kmod and the initramfs into $O/guest.  Skips (77) without
# QEMU, the guest kernel or its headers.
set -u
# Run from make check: the parent's jobserver is not ours to use.
unset MAKEFLAGS MFLAGS MAKELEVEL
VSHM=${VSHM:-build/vshm}
TOOLS=${TOOLS:-build/tests}
O=${O:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
GUEST_TIMEOUT=${VSHM_GUEST_TIMEOUT:-90}
WIN=16777216
VECTORS=4

skip() { echo "1..0 # SKIP $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 not installed (scripts/deps.sh installs it)"
KDIR=$(make -s --no-print-directory -C "$TOP/kmod" print-kdir 2>/dev/null)
[ -n "$KDIR" ] && [ -f "$KDIR/Makefile" ] ||
	skip "no kernel headers for the guest kernel (linux-headers-amd64)"
KVER=$(basename "$(dirname "$KDIR")")
[ -r "/boot/vmlinuz-$KVER" ] || skip "no guest kernel /boot/vmlinuz-$KVER (linux-image-amd64)"
for tool in busybox cpio depmod modinfo; do
	command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
if ! [ -x "$VSHM" ] || ! [ -x "$TOOLS/tool_hubpeer" ]; then
	echo "Bail out! $VSHM or $TOOLS/tool_hubpeer missing: run make tests first"
	exit 1
fi

T=$(mktemp -d /tmp/vshm-guesthub.XXXXXX)
n=0 fail=0
pids=()
cleanup() {
	# In order: run-guest.sh (its own trap stops QEMU), the peer, the hub.
	# (counted loops: bash can cut a $(...) short while it exits on a signal)
	for p in "${pids[@]}"; do
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
# numeq A B: both are numbers (decimal or 0x hex) and equal.
numeq() {
	local re='^(0x[0-9a-fA-F]+|[0-9]+)$'
	[[ $1 =~ $re && $2 =~ $re ]] && (($1 == $2))
}
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }
t_start=$(now)

# ---- build: module, initramfs -----------------------------------------------
mkdir -p "$O"
OABS=$(cd "$O" && pwd)
KO=$OABS/kmod/virtio_shm.ko
make -s --no-print-directory -C "$TOP/kmod" BUILD="$OABS/kmod" >"$T/kmod.log" 2>&1
rc=$?
warn=$(grep -iE 'warning|error' "$T/kmod.log")
check "virtio_shm.ko builds against $KVER without warnings" test "$rc" -eq 0 -a -z "$warn" -a -f "$KO"
[ -z "$warn" ] || sed 's/^/# /' <<<"$warn" | head -n 20
[ "$rc" -eq 0 ] || { tail -n 20 "$T/kmod.log" | sed 's/^/# /'; echo "Bail out! no module"; exit 1; }
INITRD=$OABS/guest/initramfs.cpio.gz
if ! "$HERE/guest/mkinitramfs.sh" -o "$INITRD" "$KO" 2>"$T/mkinitramfs.log"; then
	sed 's/^/# /' "$T/mkinitramfs.log"
	echo "Bail out! no initramfs"
	exit 1
fi
ok "initramfs for $KVER ($(du -k "$INITRD" | cut -f1) KiB)"

# ---- the hub and the host peer -----------------------------------------------
HUB=$T/hub.sock
"$VSHM" hub --socket "$HUB" --size 16M --vectors "$VECTORS" -v 2>"$T/hub.log" &
pids=("$!")
for ((i = 0; i < 100; i++)); do [ -S "$HUB" ] && break; sleep 0.05; done
[ -S "$HUB" ] || { cat "$T/hub.log"; echo "Bail out! the hub did not start"; exit 1; }

coproc PEER { exec "$TOOLS/tool_hubpeer" "$HUB" 2>"$T/peer.log"; }
pids=("$PEER_PID" "${pids[@]}")
exec 5<&"${PEER[0]}" 6>&"${PEER[1]}"
# peer CMD...: one command to tool_hubpeer; its answer lands in $R.
peer() {
	R="no answer"
	echo "$*" >&6 2>/dev/null || { R="tool_hubpeer is gone"; return 1; }
	IFS= read -r -t 15 -u 5 R || R="no answer"
	[ "${R%% *}" = ok ]
}
IFS= read -r -t 10 -u 5 hello || hello=""
HOST_ID=$(sed -n 's/^id \([0-9]*\) .*/\1/p' <<<"$hello")
[ -n "$HOST_ID" ] || { cat "$T/peer.log"; echo "Bail out! tool_hubpeer did not join ($hello)"; exit 1; }
diag "host peer: $hello"

# Values the guest checks for and stores, in the last page of the window
# (the driver area: nobody else uses it in this test).
HOST_PAT_OFF=$((WIN - 4096)) GUEST_PAT_OFF=$((WIN - 4096 + 8))
HOST_PAT=$(printf '0x%04x%04x%04x%04x' $((RANDOM % 32768)) "$RANDOM" "$RANDOM" "$RANDOM")
GUEST_PAT=$(printf '0x%04x%04x%04x%04x' $((RANDOM % 32768)) "$RANDOM" "$RANDOM" "$RANDOM")
check "the host peer stores a value in the window" peer poke "$HOST_PAT_OFF" "$HOST_PAT"
cat >"$T/env" <<EOF
HOST_PEER=$HOST_ID
WIN_SIZE=$WIN
VECTORS=$VECTORS
HOST_PAT_OFF=$HOST_PAT_OFF
HOST_PAT=$HOST_PAT
GUEST_PAT_OFF=$GUEST_PAT_OFF
GUEST_PAT=$GUEST_PAT
EOF

# ---- the guest -----------------------------------------------------------------
GUEST_ID=""
guest_id() { # the id the hub gave QEMU: the one peer besides us
	[ -n "$GUEST_ID" ] && return 0
	peer peers || return 1
	set -- ${R#ok}
	[ $# -eq 1 ] && GUEST_ID=$1
}

# The guest's requests (tests/guest/hub-compat.sh).  It waits, bounded, for
# the effect of each; nothing here waits on the guest.
request() {
	case $1 in
	ring) # VEC: ring the guest's vector VEC
		guest_id || { notok "the hub reported QEMU's join ($R)"; return; }
		peer ring "$GUEST_ID" "$2" || notok "host peer rings guest vector $2 ($R)"
		;;
	ivposition) # N: what the guest read from BAR0 + 8
		guest_id
		check "the guest's IVPosition ($2) is the id the hub gave QEMU (${GUEST_ID:-none: $R})" \
			test "$2" = "$GUEST_ID"
		;;
	peek) # OFF VALUE: the guest stored VALUE at OFF through BAR2
		peer peek "$2"
		check "the host peer sees the guest's 64-bit store at window offset $2 ($R, want $3)" \
			numeq "${R#ok }" "$3"
		;;
	poke) # OFF VALUE
		peer poke "$2" "$3" || notok "host peer stores $3 at window offset $2 ($R)"
		;;
	expect-wake) # VEC: the guest rang the host peer's vector VEC
		peer wait "$2" 5000
		check "the guest's doorbell wakes the host peer on vector $2 ($R)" test "$R" = "ok 1"
		local v others=""
		for ((v = 0; v < VECTORS; v++)); do
			[ "$v" -eq "$2" ] && continue
			peer count "$v"
			[ "$R" = "ok 0" ] || others="$others $v:$R"
		done
		check "and no other vector of the host peer${others:+ (rung:$others)}" test -z "$others"
		# The answer: the guest waits for it before it goes on.
		guest_id && peer ring "$GUEST_ID" "$2"
		;;
	*)
		notok "unknown request from the guest: $*"
		;;
	esac
}

mkfifo "$T/console"
t_boot=$(now)
"$HERE/guest/run-guest.sh" -i "$INITRD" -H "$HUB" -n "$VECTORS" -t "$GUEST_TIMEOUT" \
	-e "$T/env" "$HERE/guest/hub-compat.sh" >"$T/console" 2>"$T/run-guest.log" &
GPID=$!
pids=("$GPID" "${pids[@]}")
exec 4<"$T/console"

guest_exit="" booted="" guest_checks=0
deadline=$((SECONDS + GUEST_TIMEOUT + 20))
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
	"##vshm exit "*) set -- ${line#"##vshm exit "}; guest_exit=$1 ;;
	esac
done
exec 4<&-
wait "$GPID"
rc=$?
if [ -n "$booted" ]; then ok "the guest booted (after ${booted}s)"; else notok "the guest booted (never)"; fi
check "the guest ran its script to the end ($guest_checks checks) and powered off (exit ${guest_exit:-none}, run-guest ${rc})" \
	test -n "$guest_exit" -a "$rc" = "$guest_exit" -a "$guest_checks" -ge 40
if [ -z "$guest_exit" ] || [ "$rc" -ne 0 ]; then
	sed 's/^/# run-guest: /' "$T/run-guest.log"
	grep -v '^##vshm' "$T/console.log" | tail -n 30 | sed 's/^/# console: /'
fi

# ---- what the hub saw -----------------------------------------------------------
for ((i = 0; i < 50; i++)); do grep -q "peer ${GUEST_ID:-x} left" "$T/hub.log" && break; sleep 0.1; done
check "hub log: QEMU joined as peer ${GUEST_ID:-?} and left when the guest powered off" \
	grep -q "peer ${GUEST_ID:-x} left" "$T/hub.log"
check "hub log: no dropped or refused peer" sh -c "! grep -qiE 'drop|refus|error' '$T/hub.log'"
check "the host peer is still connected" peer peers
diag "whole test: $(since "$t_start")s"

echo "1..$n"
[ "$fail" -eq 0 ]
