# SPDX-License-Identifier: MIT
#
# Sourced by guest test scripts (it is /lib/vshm-guest.sh in the guest).
# The guest prints TAP results without numbers, prefixed with "##vshm", and
# the host numbers them into its own TAP stream:
#   ##vshm ok DESC / ##vshm not ok DESC / ##vshm # DIAG
#   ##vshm req WHAT ARGS...   ask the host side to do something; the guest
#                             then waits (bounded) until it sees the effect
#   ##vshm bail WHY           give up; nothing after this is meaningful
T_FAIL=0

t_ok() { echo "##vshm ok $*"; }
t_notok() { T_FAIL=$((T_FAIL + 1)); echo "##vshm not ok $*"; }
t_check() { # DESC CMD...
	local what="$1"
	shift
	if "$@"; then t_ok "$what"; else t_notok "$what"; fi
}
t_diag() { echo "##vshm # $*"; }
t_req() { echo "##vshm req $*"; }
t_bail() { echo "##vshm bail $*"; exit 1; }
t_done() { [ "$T_FAIL" -eq 0 ]; exit; }

# t_until MS CMD...: run CMD every 20 ms until it succeeds, at most MS ms.
t_until() {
	local left=$1
	shift
	while ! "$@"; do
		[ "$left" -le 0 ] && return 1
		usleep 20000
		left=$((left - 20))
	done
}

# Numbers: devmem prints 0x-prefixed upper-case hex; compare as integers.
t_eq() { [ "$(($1))" -eq "$(($2))" ]; }

# ---- over virtio_shm.ko ------------------------------------------------------
KO=/lib/modules/$(uname -r)/extra/virtio_shm.ko
VDEVS=/sys/bus/virtio/devices
stats_file() { ls /sys/kernel/debug/virtio_shm/*/stats 2>/dev/null | head -n 1; }
# stat NAME: one value of the transport's debugfs counters
stat() { sed -n "s/^$1 //p" "$(stats_file)"; }
md5() { md5sum "$@" | cut -d' ' -f1; }
# the virtio device with virtio id $1 (a number), or nothing
vdev_of() {
	local d
	for d in "$VDEVS"/*; do
		[ -e "$d/device" ] && [ "$(($(cat "$d/device")))" -eq "$1" ] && { echo "$d"; return; }
	done
}
no_vdevs() { [ -z "$(ls "$VDEVS" 2>/dev/null)" ]; }
# a pattern's md5, read at MiB offset $1 (uncached)
read_md5() { dd if=/dev/vda bs=1M skip="$1" count=1 iflag=direct 2>/dev/null | md5; }
# The kernel log (and FILE, what was taken out of it before) has no sign of
# a kernel bug: no WARN, BUG, Oops, call trace, lockup, hung task or
# disabled interrupt.
t_dmesg_clean() {
	local bad
	bad=$({ [ -z "${1:-}" ] || cat "$1"; dmesg; } | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|RIP:|refcount_t|list_(add|del) corruption|soft lockup|hung_task|blocked for more than|nobody cared' | head -n 5)
	t_check "dmesg has no WARN, BUG, Oops, call trace, lockup or hung task${bad:+: $bad}" [ -z "$bad" ]
}
