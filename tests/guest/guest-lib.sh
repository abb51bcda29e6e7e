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
