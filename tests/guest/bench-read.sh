# SPDX-License-Identifier: MIT
#
# Guest side of scripts/bench-guest.sh: one image, two disks in one guest,
# virtio_blk over virtio_shm (the window, bounced) and virtio_blk over
# QEMU's own virtio-blk-pci; sequential 1 MiB O_DIRECT reads of BENCH_MB
# MiB from each, BENCH_ROUNDS rounds, the two disks alternating.  Prints
# "##vshm # bench DISK ROUND MB CENTISECONDS" for the host to turn into
# figures.
. /lib/vshm-guest.sh

modprobe -a virtio_pci virtio_blk || t_bail "cannot load virtio_pci, virtio_blk"
insmod "/lib/modules/$(uname -r)/extra/virtio_shm.ko" || t_bail "cannot load virtio_shm.ko"

# The disk whose virtio device hangs below a vshm DMA device is ours.
find_disks() {
	V="" P=""
	for b in /sys/block/vd*; do
		[ -e "$b/device" ] || continue
		case $(readlink -f "$b/device") in
		*/vshm[0-9]*/virtio[0-9]*) V=${b##*/} ;;
		*) P=${b##*/} ;;
		esac
	done
	[ -n "$V" ] && [ -n "$P" ]
}
t_until 20000 find_disks || t_bail "expected a vshm disk and a virtio-pci disk: $(ls /sys/block)"
t_diag "vshm disk /dev/$V, virtio-pci disk /dev/$P"

cs() { cut -d' ' -f1 /proc/uptime | tr -d .; }	# centiseconds of uptime
run() {	# DISK NAME ROUND
	local t0 t1
	t0=$(cs)
	dd if="/dev/$1" of=/dev/null bs=1M count="$BENCH_MB" iflag=direct 2>/dev/null || t_bail "reading /dev/$1 failed"
	t1=$(cs)
	echo "##vshm # bench $2 $3 $BENCH_MB $((t1 - t0))"
}

# Warm up both paths (and the host's page cache for the image).
dd if="/dev/$V" of=/dev/null bs=1M count="$BENCH_MB" iflag=direct 2>/dev/null
dd if="/dev/$P" of=/dev/null bs=1M count="$BENCH_MB" iflag=direct 2>/dev/null
r=1
while [ "$r" -le "$BENCH_ROUNDS" ]; do
	if [ $((r % 2)) -eq 1 ]; then
		run "$V" vshm "$r"
		run "$P" virtio_pci "$r"
	else
		run "$P" virtio_pci "$r"
		run "$V" vshm "$r"
	fi
	r=$((r + 1))
done
grep -E '^dev[0-9]+\.(pool_peak|bounce_maps|map_failures|bytes_from_device) ' \
	/sys/kernel/debug/virtio_shm/*/stats | while IFS= read -r l; do t_diag "counters: $l"; done
rmmod virtio_shm
t_ok "bench done"
