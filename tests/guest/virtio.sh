# SPDX-License-Identifier: MIT
#
# Guest side of tests/test_guest_virtio.sh: Linux's own virtio_blk,
# virtio_console and virtio_rng, unmodified, over virtio_shm.ko and a vshm
# backend (vshm serve blk console rng) on the host.  Results go to the
# console as "##vshm" lines (lib/vshm-guest.sh); requests ask the host to
# act ("console-send", "kill-serve", "start-serve") or to check something
# after the guest is gone ("raw", "file").  Every wait is bounded.
#
# Environment (from the host): HOST_OFF_MB, HOST_MD5 (a pattern the host
# put in the image before boot), GUEST_OFF_MB (where we write one),
# FS_KB (the file system's size, from offset 0), IMG_SECTORS; MOD_ARGS
# (virtio_shm parameters, e.g. packed=1) and PACKED=1 for the run with
# packed rings, which skips the vanishing-backend part (the module tracks
# in-flight chains of split rings only).
. /lib/vshm-guest.sh
t_diag "$(nproc) vCPU(s), $(sed -n "s/MemTotal: *//p" /proc/meminfo) of RAM"


# ---- load -----------------------------------------------------------------------
t_check "the guest kernel's virtio_blk, virtio_console, virtio_rng load" \
	modprobe -a virtio_blk virtio_console virtio-rng
# shellcheck disable=SC2086
t_check "insmod virtio_shm.ko ${MOD_ARGS:-}" insmod "$KO" ${MOD_ARGS:-}
t_check "the backend's disk appears as /dev/vda (within 15 s)" t_until 15000 test -b /dev/vda
t_until 5000 sh -c '[ "$(ls '"$VDEVS"' | wc -l)" -ge 3 ]'
t_check "three virtio devices, ids 2, 3, 4 (blk, console, rng)" \
	test -n "$(vdev_of 2)" -a -n "$(vdev_of 3)" -a -n "$(vdev_of 4)"
for pair in 2:virtio_blk 3:virtio_console 4:virtio_rng; do
	d=$(vdev_of "${pair%%:*}")
	drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
	t_check "virtio id ${pair%%:*} is driven by the unmodified ${pair#*:} ($drv)" [ "$drv" = "${pair#*:}" ]
done
d=$(vdev_of 2)
path=$(readlink -f "$d")
t_diag "blk device: $path"
t_check "its parent is our DMA device under the ivshmem PCI device" \
	sh -c "echo '$path' | grep -q '/0000:00:0[0-9a-f].[0-7]/vshm[0-9]*/virtio[0-9]*$'"
feat=$(cat "$d/features")
t_diag "blk features: $feat"
t_check "negotiated VERSION_1 and ACCESS_PLATFORM (bits 32, 33)" \
	[ "$(echo "$feat" | cut -c33-34)" = 11 ]
if [ -z "${PACKED:-}" ]; then
	t_check "not FIFO_RING (bit 25) nor RING_PACKED (bit 34)" \
		[ "$(echo "$feat" | cut -c26)$(echo "$feat" | cut -c35)" = 00 ]
fi
t_check "debugfs counters exist and the session is active" [ "$(stat state)" = active ]

# ---- rng ------------------------------------------------------------------------
t_check "hw_random's current source is the virtio rng ($(cat /sys/class/misc/hw_random/rng_current))" \
	grep -q '^virtio_rng' /sys/class/misc/hw_random/rng_current
a=$(timeout 20 dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | md5)
b=$(timeout 20 dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | md5)
zero=$(head -c 4096 /dev/zero | md5)
n=$(timeout 20 dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | wc -c)
t_check "/dev/hwrng gives 4096 bytes ($n)" [ "$n" -eq 4096 ]
t_check "that differ from one read to the next and are not zero" \
	sh -c "[ '$a' != '$b' ] && [ '$a' != '$zero' ]"

# ---- console ----------------------------------------------------------------------
t_check "/dev/hvc0 exists (the virtio console's port 0)" test -c /dev/hvc0
rm -f /tmp/con.*
# One open file for all of it: hvc resets the line settings on the last close.
(
	exec 3<>/dev/hvc0
	stty raw -echo <&3 && : >/tmp/con.ready
	IFS= read -r line <&3 && printf 'echo:%s\n' "$line" >&3 && echo "$line" >/tmp/con.done
) &
cpid=$!
t_check "/dev/hvc0 opens and takes raw mode" t_until 5000 test -e /tmp/con.ready
t_req console-send
if t_until 20000 test -e /tmp/con.done; then
	t_ok "a line from the host's console socket arrives on /dev/hvc0 ($(cat /tmp/con.done)) and is echoed back"
else
	kill "$cpid" 2>/dev/null
	t_notok "a line from the host's console socket arrives on /dev/hvc0 (nothing within 20 s)"
fi
wait "$cpid" 2>/dev/null

# ---- blk: raw I/O -----------------------------------------------------------------
t_check "capacity: $IMG_SECTORS sectors" [ "$(cat /sys/block/vda/size)" -eq "$IMG_SECTORS" ]
got=$(read_md5 "$HOST_OFF_MB")
t_check "reads the host's 1 MiB pattern at $HOST_OFF_MB MiB ($got)" [ "$got" = "$HOST_MD5" ]
head -c 1048576 /dev/urandom >/tmp/raw
want=$(md5 /tmp/raw)
t_check "writes 1 MiB of random data at $GUEST_OFF_MB MiB (O_DIRECT)" \
	dd if=/tmp/raw of=/dev/vda bs=1M seek="$GUEST_OFF_MB" oflag=direct conv=fsync 2>/dev/null
t_req raw "$GUEST_OFF_MB" "$want"
t_check "and reads it back" [ "$(read_md5 "$GUEST_OFF_MB")" = "$want" ]
s0=$(cut -c1-4 /proc/uptime)
t_check "16 MiB of 1 MiB O_DIRECT reads" dd if=/dev/vda of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null
t_diag "16 MiB read in $(echo "$(cut -c1-4 /proc/uptime) - $s0" | bc) s of guest time"

# ---- blk: a file system -----------------------------------------------------------
mkdir -p /mnt
t_check "mke2fs on the first $FS_KB KiB" mke2fs -q -F -b 1024 /dev/vda "$FS_KB"
t_check "mount it (ext2)" mount -t ext2 /dev/vda /mnt
mkdir -p /mnt/d
i=0
for size in 100000 1048576 3000000; do
	i=$((i + 1))
	head -c "$size" /dev/urandom >"/mnt/d/f$i"
	eval "m$i=$(md5 /mnt/d/f$i)"
done
t_check "three files of random data written, sync" sync
t_check "umount" umount /mnt
t_check "mount again" mount -t ext2 -o ro /dev/vda /mnt
ok=1
for i in 1 2 3; do
	eval "want=\$m$i"
	got=$(md5 "/mnt/d/f$i")
	[ "$got" = "$want" ] || ok=0
	t_req file "/d/f$i" "$want"
done
t_check "the files read back intact after remounting" [ "$ok" -eq 1 ]
t_check "umount again" umount /mnt

# ---- what went through the window ---------------------------------------------------
f=$(stats_file)
sed 's/^/counters: /' "$f" | while IFS= read -r l; do t_diag "$l"; done
blk=$(sed -n 's/^dev\([0-9]*\)\.virtio_id 2$/\1/p' "$f")
t_check "blk bounced through its pool: $(stat dev$blk.bounce_maps) mappings" [ "$(stat dev$blk.bounce_maps)" -gt 1000 ]
t_check "more than 5 MiB copied into the window ($(stat dev$blk.bytes_to_device))" \
	[ "$(stat dev$blk.bytes_to_device)" -gt 5000000 ]
t_check "more than 20 MiB copied out of it ($(stat dev$blk.bytes_from_device))" \
	[ "$(stat dev$blk.bytes_from_device)" -gt 20000000 ]
t_check "no mapping failed, none unknown" \
	[ "$(stat dev$blk.map_failures)$(stat dev$blk.bad_unmaps)" = 00 ]
t_check "blk idle: no bounce buffer still mapped, only its ring in the pool" \
	sh -c "[ $(stat dev$blk.bounce_live) -eq 0 ] && [ $(stat dev$blk.pool_in_use) -eq $(stat dev$blk.pool_coherent) ]"
t_check "no mailbox violation, timeout or lost session" \
	[ "$(stat mbox_violations)$(stat mbox_call_timeouts)$(stat sessions_lost)" = 000 ]

# ---- a device that needs a reset ------------------------------------------------------
# (split rings only: it writes a split ring's avail index)
if [ -z "${PACKED:-}" ]; then
# Scribble on the rng queue's avail index in the window, as a broken driver
	# would: the backend refuses the queue and sets DEVICE_NEEDS_RESET on that
	# device; the transport resets it alone and probes it again.
	pci=$(basename "$(dirname "$f")")
	bar2=$(sed -n 3p "/sys/bus/pci/devices/$pci/resource" | cut -d' ' -f1)
	rng=$(sed -n 's/^dev\([0-9]*\)\.virtio_id 4$/\1/p' "$f")
	avail=$(sed -n "s/^dev$rng\.vq0 .* driver \(0x[0-9a-f]*\) .*/\1/p" "$f")
	regs0=$(stat devices_registered)
	needs_reset_seen() { [ "$(stat needs_reset)" -ge 1 ]; }
	reprobed() { [ "$(stat devices_registered)" -gt "$regs0" ] && [ -n "$(vdev_of 4)" ]; }
	t_diag "rng queue 0: avail ring at window offset $avail, BAR2 at $bar2"
	for try in 1 2 3; do
		devmem $((bar2 + avail + 2)) 16 0x7777
		t_until 3000 needs_reset_seen && break
	done
	t_check "the backend flags the rng DEVICE_NEEDS_RESET (EVENT_CONFIG)" needs_reset_seen
	t_check "the transport resets it and probes it again (within 15 s)" t_until 15000 reprobed
	t_until 5000 grep -q '^virtio_rng' /sys/class/misc/hw_random/rng_current
	n=$(timeout 20 dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | wc -c)
	t_check "/dev/hwrng works again ($n bytes)" [ "$n" -eq 4096 ]
	t_check "the disk carried on meanwhile" [ "$(read_md5 "$HOST_OFF_MB")" = "$HOST_MD5" ]
	t_check "no session was lost for it" [ "$(stat sessions_lost)" -eq 0 ]
fi

# ---- unload and load again ------------------------------------------------------------
t_check "rmmod virtio_shm" rmmod virtio_shm
t_check "the virtio devices are gone" no_vdevs
# shellcheck disable=SC2086
t_check "insmod again" insmod "$KO" ${MOD_ARGS:-}
t_check "a new session brings the disk back (within 15 s)" t_until 15000 test -b /dev/vda
t_check "and the host's pattern reads back" [ "$(read_md5 "$HOST_OFF_MB")" = "$HOST_MD5" ]

if [ -n "${PACKED:-}" ]; then
	# Every device negotiated VIRTIO_F_RING_PACKED (feature bit 34).
	packed_all=1
	for d in "$VDEVS"/*; do
		f=$(cat "$d/features")
		[ "$(echo "$f" | cut -c35)" = 1 ] || packed_all=0
	done
	t_check "every device runs packed rings (feature bit 34)" [ "$packed_all" -eq 1 ]
else
# ---- the backend vanishes with I/O in flight, then comes back -------------------------
	rm -f /tmp/io.*
	(
		i=0
		while [ $i -lt 1000 ]; do
			dd if=/dev/vda of=/dev/null bs=1M count=32 iflag=direct 2>/dev/null || { echo $i >/tmp/io.err; break; }
			i=$((i + 1))
		done
		echo $i >/tmp/io.done
	) &
	rpid=$!
	sleep 1
	t_req kill-serve
	if t_until 30000 test -e /tmp/io.done; then
		t_ok "a reader busy on the disk when the backend died finished (no hang)"
	else
		t_notok "a reader busy on the disk when the backend died finished (still running after 30 s)"
		kill "$rpid" 2>/dev/null
	fi
	t_check "and saw an I/O error" test -e /tmp/io.err
	t_check "the transport removed the virtio devices (within 15 s)" t_until 15000 no_vdevs
	t_check "debugfs: the session was lost ($(stat sessions_lost)), $(stat chains_failed) chains failed on the device's behalf" \
		[ "$(stat sessions_lost)" -ge 1 ]
	t_req start-serve
	t_check "a restarted backend is picked up: the disk is back (within 30 s)" t_until 30000 test -b /dev/vda
	t_check "and reads the host's pattern" [ "$(read_md5 "$HOST_OFF_MB")" = "$HOST_MD5" ]
	t_check "sessions: $(stat sessions)" [ "$(stat sessions)" -ge 2 ]
	
fi

# ---- the kernel's log ---------------------------------------------------------------
dmesg | grep -E 'virtio_shm|virtio_blk|vda' | tail -n 30 | while IFS= read -r l; do t_diag "dmesg: $l"; done
t_dmesg_clean
t_check "no vector was masked for a doorbell storm (a well-behaved backend)" \
	sh -c '! dmesg | grep -q "doorbell storm"'
t_check "and no device was found breaking the ring rules ($(stat bad_completions))" [ "$(stat bad_completions)" = 0 ]
t_check "rmmod virtio_shm at the end" rmmod virtio_shm
t_done
