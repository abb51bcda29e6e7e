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
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/guest/host-lib.sh"
TOOLS=${TOOLS:-build/tests}
GUEST_TIMEOUT=${VSHM_GUEST_TIMEOUT:-90}
WIN=16777216

guest_prereqs
if ! [ -x "$TOOLS/tool_hubpeer" ]; then
	echo "Bail out! $TOOLS/tool_hubpeer missing: run make tests first"
	exit 1
fi
guest_scratch guesthub

# numeq A B: both are numbers (decimal or 0x hex) and equal.
numeq() {
	local re='^(0x[0-9a-fA-F]+|[0-9]+)$'
	[[ $1 =~ $re && $2 =~ $re ]] && (($1 == $2))
}

# ---- build: module, initramfs -----------------------------------------------
build_module
build_initramfs initramfs.cpio.gz

# ---- the hub and the host peer -----------------------------------------------
start_hub 16M 4

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

run_guest "$HERE/guest/hub-compat.sh" 40

# ---- what the hub saw -----------------------------------------------------------
for ((i = 0; i < 50; i++)); do grep -q "peer ${GUEST_ID:-x} left" "$T/hub.log" && break; sleep 0.1; done
check "hub log: QEMU joined as peer ${GUEST_ID:-?} and left when the guest powered off" \
	grep -q "peer ${GUEST_ID:-x} left" "$T/hub.log"
check "hub log: no dropped or refused peer" sh -c "! grep -qiE 'drop|refus|error' '$T/hub.log'"
check "the host peer is still connected" peer peers
diag "whole test: $(since "$t_start")s"

echo "1..$n"
[ "$fail" -eq 0 ]
