# SPDX-License-Identifier: MIT
#
# Guest side of make demo: Linux's own virtio drivers, unmodified, on disks,
# consoles and rngs that live behind a vshm window.  Prints for a person;
# the host shows it as it comes.
. /lib/vshm-guest.sh
say() { echo; echo "   [guest] $*"; }

say "Linux $(uname -r), loading the stock virtio drivers and virtio_shm.ko"
modprobe -a virtio_blk virtio_console virtio-rng ext4 2>/dev/null
insmod "$KO" || t_bail "insmod failed"
t_until 10000 [ -b /dev/vda ] || t_bail "no /dev/vda"
ndev() { [ "$(ls /sys/bus/virtio/devices | wc -l)" -ge 3 ] && [ -e /sys/bus/virtio/devices/virtio2/driver ]; }
t_until 10000 ndev
for d in /sys/bus/virtio/devices/*; do
	echo "   [guest]   $(basename "$d"): virtio id $(($(cat "$d/device"))), driver $(basename "$(readlink "$d/driver")")"
done

say "a file system on the vshm disk"
mkdir -p /mnt
mke2fs -q -F -b 1024 /dev/vda 65536 >/dev/null 2>&1 && mount -t ext2 /dev/vda /mnt || t_bail "mkfs/mount failed"
head -c 4194304 /dev/urandom >/mnt/hello.bin
echo "hello from a guest whose disk the backend reaches only through a window" >/mnt/hello.txt
sync
echo "   [guest]   $(df -h /mnt | tail -n 1)"
echo "   [guest]   md5 of hello.bin: $(md5sum /mnt/hello.bin | cut -d' ' -f1)"
umount /mnt && mount -t ext2 -o ro /dev/vda /mnt
echo "   [guest]   after a remount:  $(md5sum /mnt/hello.bin | cut -d' ' -f1)"
echo "   [guest]   hello.txt says: $(cat /mnt/hello.txt)"
umount /mnt

say "16 bytes from /dev/hwrng ($(cat /sys/class/misc/hw_random/rng_current))"
echo "   [guest]   $(head -c 16 /dev/hwrng | hexdump -v -e '16/1 "%02x"')"

say "what went through the window (virtio_shm debugfs)"
f=$(ls /sys/kernel/debug/virtio_shm/*/stats 2>/dev/null | head -n 1)
[ -n "$f" ] && grep -iE '^(state|sessions|mbox_msgs_sent)|map|bounce|bytes|pool' "$f" | head -n 12 | sed 's/^/   [guest]   /'
dmesg | grep -qE "WARNING|BUG|Oops" && echo "   [guest]   dmesg has warnings!" || echo "   [guest]   dmesg: clean"
t_ok "demo"
t_done
