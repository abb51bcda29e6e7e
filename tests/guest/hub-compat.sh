# SPDX-License-Identifier: MIT
#
# Runs inside the test guest (tests/test_guest_hub.sh boots it): a vshm hub
# as QEMU's ivshmem-doorbell presents it to Linux, first with no driver
# (sysfs and devmem), then through virtio_shm.ko.  The host side answers
# "req" lines (docs/guest.md); every wait for an answer is bounded.
# From /test/env: HOST_PEER (the host peer's id), WIN_SIZE, VECTORS,
# HOST_PAT_OFF/HOST_PAT (the host wrote it), GUEST_PAT_OFF/GUEST_PAT (ours).
. /lib/vshm-guest.sh

DRV=/sys/bus/pci/drivers/virtio_shm
WAIT_MS=10000

# ---- the PCI device, no driver ----------------------------------------------
DEV=""
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ]; then
		DEV=$d
		break
	fi
done
[ -n "$DEV" ] || t_bail "no PCI device 1af4:1110 (ivshmem) in /sys/bus/pci/devices"
BDF=${DEV##*/}
t_ok "ivshmem 1af4:1110 is on the PCI bus at $BDF"
t_check "it is revision 1 ($(cat "$DEV/revision"))" t_eq "$(cat "$DEV/revision")" 1
t_check "no driver is bound yet" [ ! -e "$DEV/driver" ]

# One line per BAR in "resource": start end flags.
bar_start() { sed -n "$(($1 + 1))p" "$DEV/resource" | cut -d' ' -f1; }
bar_size() {
	set -- $(sed -n "$(($1 + 1))p" "$DEV/resource")
	if t_eq "$1" 0; then echo 0; else echo $(($2 - $1 + 1)); fi
}
BAR0=$(bar_start 0)
BAR2=$(bar_start 2)
t_check "BAR0 is the 256-byte register block at $BAR0" t_eq "$(bar_size 0)" 256
t_check "BAR1 holds the MSI-X table ($(bar_size 1) bytes)" [ "$(bar_size 1)" -gt 0 ]
t_check "BAR2 at $BAR2 is as large as the hub's window ($(bar_size 2) = $WIN_SIZE bytes)" \
	t_eq "$(bar_size 2)" "$WIN_SIZE"

win() { devmem $((BAR2 + $1)) "${2:-64}"; }	# OFF [WIDTH]
win_is() { t_eq "$(win "$1")" "$2"; }		# OFF VALUE (64-bit)
MAGIC=$(win 0)
t_check "BAR2 begins with the vshm magic \"VSHMWIN1\" ($MAGIC)" t_eq "$MAGIC" 0x314e49574d485356
t_check "window ABI major 1 ($(win 8 16))" t_eq "$(win 8 16)" 1
t_check "the header's win_size is the BAR size ($(win 16))" win_is 16 "$WIN_SIZE"
t_check "a value the host peer stored in the window reads back here" win_is "$HOST_PAT_OFF" "$HOST_PAT"
devmem $((BAR2 + GUEST_PAT_OFF)) 64 "$GUEST_PAT"
t_check "a 64-bit store into BAR2 reads back" win_is "$GUEST_PAT_OFF" "$GUEST_PAT"
t_req peek "$GUEST_PAT_OFF" "$GUEST_PAT"

IVPOS=$(($(devmem $((BAR0 + 8)) 32)))
t_diag "IVPosition (BAR0 + 0x08) = $IVPOS"
t_req ivposition "$IVPOS"

# ---- a window the module must refuse -----------------------------------------
# The host changes the header (req poke); we see it through BAR2, then try
# to bind.  dmesg must say why, and nothing stays bound.
refused() { # DESC DMESG-TEXT: bind must fail, dmesg must say DMESG-TEXT
	if echo "$BDF" >"$DRV/bind" 2>/dev/null; then
		t_notok "$1: the module bound anyway"
		echo "$BDF" >"$DRV/unbind"
		return
	fi
	t_check "$1: refused, and dmesg says '$2'" sh -c "dmesg | grep -q \"$2\""
}
HDR8=$(win 8)	# abi_major, abi_minor, hdr_size
t_req poke 0 0
if t_until $WAIT_MS win_is 0 0; then
	t_check "insmod virtio_shm.ko" insmod "$KO"
	t_check "with no magic in BAR2 the device stays unbound" [ ! -e "$DEV/driver" ]
	t_check "and dmesg says why" sh -c 'dmesg | grep -q "BAR2 is not a vshm window"'
else
	t_notok "the host's write of 0 over the magic is not visible in BAR2"
	insmod "$KO"
fi
t_req poke 0 "$MAGIC"
t_req poke 8 $(((HDR8 & ~0xffff) | 2))
if t_until $WAIT_MS win_is 8 $(((HDR8 & ~0xffff) | 2)) && win_is 0 "$MAGIC"; then
	refused "window ABI 2.0" "window ABI 2.0 is not supported"
else
	t_notok "the host's ABI change is not visible in BAR2"
fi
t_req poke 8 "$HDR8"
t_req poke 16 $((WIN_SIZE * 2))
if t_until $WAIT_MS win_is 16 $((WIN_SIZE * 2)) && win_is 8 "$HDR8"; then
	refused "a header claiming twice the BAR's size" "window header says $((WIN_SIZE * 2)) bytes"
else
	t_notok "the host's win_size change is not visible in BAR2"
fi
t_req poke 16 "$WIN_SIZE"
t_until $WAIT_MS win_is 16 "$WIN_SIZE" || t_notok "the host's restored win_size is not visible"

# ---- bound -------------------------------------------------------------------
t_check "with the header restored, binding works" sh -c "echo $BDF >$DRV/bind"
bound() { [ "$(basename "$(readlink "$DEV/driver")")" = virtio_shm ]; }
bound || t_bail "virtio_shm is not bound to $BDF; dmesg: $(dmesg | grep virtio_shm | tail -n 3)"
t_check "sysfs ivposition is IVPosition ($(cat "$DEV/ivposition"))" t_eq "$(cat "$DEV/ivposition")" "$IVPOS"
t_check "sysfs vectors is $VECTORS ($(cat "$DEV/vectors"))" t_eq "$(cat "$DEV/vectors")" "$VECTORS"
t_check "sysfs window_size is $WIN_SIZE" t_eq "$(cat "$DEV/window_size")" "$WIN_SIZE"
t_check "sysfs abi is 1.0 ($(cat "$DEV/abi"))" [ "$(cat "$DEV/abi")" = 1.0 ]
t_check "dmesg announces the window" sh -c \
	"dmesg | grep -q 'vshm window of $WIN_SIZE bytes (ABI 1.0), peer id $IVPOS, $VECTORS vectors'"

# x86 PAT keeps one entry per mapped range: the module's mapping of BAR2
# is there while it is bound, and gone after remove.  (Its type is what
# the firmware's MTRRs allow: below 4 GiB SeaBIOS makes it uncached-minus.)
PATLIST=/sys/kernel/debug/x86/pat_memtype_list
bar2_pat() { grep -F "[mem $(printf '0x%016x' $((BAR2)))-" "$PATLIST"; }
has_bar2_pat() { bar2_pat >/dev/null; }
if [ -r "$PATLIST" ]; then
	t_check "BAR2 is mapped: $(bar2_pat | sed 's/^PAT: //')" has_bar2_pat
else
	t_ok "BAR2 is mapped # SKIP no $PATLIST"
fi

# Interrupts of vector V summed over CPUs, from /proc/interrupts; -1 if absent.
irqs() {
	awk -v n="virtio_shm-vec$1" '$NF == n {
		s = 0
		for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i
		print s; f = 1
	} END { if (!f) print -1 }' /proc/interrupts
}
all_irqs() { v=0; while [ $v -lt "$VECTORS" ]; do printf '%s ' "$(irqs $v)"; v=$((v + 1)); done; }
irq_above() { [ "$(irqs "$1")" -gt "$2" ]; }
sys_irqs() { echo $(cat "$DEV/interrupts"); }

v=0
missing=""
while [ $v -lt "$VECTORS" ]; do
	[ "$(irqs $v)" -ge 0 ] || missing="$missing $v"
	v=$((v + 1))
done
t_check "/proc/interrupts lists virtio_shm-vec0..$((VECTORS - 1))${missing:+ (missing:$missing)}" [ -z "$missing" ]

# Something rings our vector VEC: expect that vector, and no other, to
# count exactly one more, in /proc/interrupts and in sysfs.
expect_irq() { # VEC BEFORE (all_irqs output) DESC
	local vec=$1 before=$2 what=$3 i=0 want="" c
	for c in $before; do
		[ $i -eq "$vec" ] && c=$((c + 1))
		want="$want$c "
		i=$((i + 1))
	done
	t_until $WAIT_MS irq_above "$vec" "$(echo "$before" | cut -d' ' -f$((vec + 1)))"
	usleep 50000	# a second, wrong interrupt would show up by now
	t_check "$what: virtio_shm-vec$vec counts it, no other vector does (counts $(all_irqs))" \
		[ "$(all_irqs)" = "$want" ]
	t_check "sysfs interrupts agrees ($(sys_irqs))" [ "$(sys_irqs) " = "$want" ]
}

v=0
while [ $v -lt "$VECTORS" ]; do
	before=$(all_irqs)
	t_req ring $v
	expect_irq $v "$before" "the host peer rings vector $v"
	v=$((v + 1))
done

# Guest to host: the host peer checks its eventfd and answers on the same vector.
before=$(all_irqs)
devmem $((BAR0 + 12)) 32 $(((HOST_PEER << 16) | 1))
t_req expect-wake 1
expect_irq 1 "$before" "devmem doorbell to the host peer's vector 1, answered"
before=$(all_irqs)
t_check "sysfs doorbell accepts '$HOST_PEER 2'" sh -c "echo '$HOST_PEER 2' >$DEV/doorbell"
t_req expect-wake 2
expect_irq 2 "$before" "sysfs doorbell to the host peer's vector 2, answered"
before=$(all_irqs)
echo "$IVPOS 3" >"$DEV/doorbell"
expect_irq 3 "$before" "a doorbell to ourselves"
before=$(all_irqs)
t_check "a doorbell to an absent peer is accepted" sh -c "echo '999 0' >$DEV/doorbell"
for bad in "65536 0" "1 65536" "4294967297 0" "-1 0" "0x1 0" "1" "1 2 3" "x y" ""; do
	t_check "sysfs doorbell refuses '$bad'" sh -c "! echo '$bad' >$DEV/doorbell 2>/dev/null"
done
usleep 200000
t_check "none of that raised an interrupt" [ "$(all_irqs)" = "$before" ]

# ---- unbind, rebind ---------------------------------------------------------
t_check "rmmod virtio_shm" rmmod virtio_shm
t_check "the device is unbound" [ ! -e "$DEV/driver" ]
t_check "its interrupts are freed" sh -c '! grep -q virtio_shm /proc/interrupts'
t_check "its BARs are released" sh -c '! grep -q virtio_shm /proc/iomem'
if [ -r "$PATLIST" ]; then
	t_check "its mapping of BAR2 is gone (no entry in the PAT list)" eval "! has_bar2_pat"
else
	t_ok "its mapping of BAR2 is gone # SKIP no $PATLIST"
fi
t_check "insmod again binds again" sh -c "insmod $KO && [ -e $DEV/driver ]"
before=$(all_irqs)
t_req ring 0
expect_irq 0 "$before" "after rebinding, the host peer rings vector 0"
t_check "rmmod again" rmmod virtio_shm

bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|x86/PAT: .*(expected|conflicting|invalid)|virtio_shm.*(leak|double)')
t_check "dmesg has no warning, BUG, Oops or PAT conflict" [ -z "$bad" ]
[ -z "$bad" ] || echo "$bad" | head -n 20 | sed 's/^/##vshm # /'
t_done
