#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: vshm doing its job, from nothing but the README.
#
# A hub creates the shared window; `vshm serve` (the device process) serves
# a disk image, an rng and a console over it; a driver process writes data,
# reads it back and verifies it.  Then we look at what the device process
# has mapped: the window, and no other shared memory.
set -eu
O=${O:-build}
VSHM=$O/vshm
D=$(mktemp -d /tmp/vshm-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$D"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. a hub: the stand-in for the hypervisor (64 MiB window, QEMU ivshmem-server protocol)"
"$VSHM" hub --socket "$D/hub.sock" --size 64M --vectors 4 2>"$D/hub.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$D/hub.sock" ] && break; sleep 0.05; done
sed 's/^/   /' "$D/hub.log"

say "2. a device process serving a fresh 256 MiB disk image, an rng and a console"
truncate -s 256M "$D/disk.img"
"$VSHM" serve --hub "$D/hub.sock" "blk:$D/disk.img,serial=demo-disk" rng "console:unix=$D/console.sock" 2>"$D/serve.log" &
SERVE=$!
pids+=($SERVE)
for _ in $(seq 100); do grep -q " serving " "$D/serve.log" && break; sleep 0.05; done
sed 's/^/   /' "$D/serve.log"

say "3. a driver process looks at the bus"
"$VSHM" io --hub "$D/hub.sock" info | sed 's/^/   /'

say "4. the driver writes 64 MiB of random data to the disk, then verifies it"
head -c 64M /dev/urandom >"$D/data"
"$VSHM" io --hub "$D/hub.sock" write "$D/data" 16M | sed 's/^/   /'
"$VSHM" io --hub "$D/hub.sock" verify "$D/data" 16M | sed 's/^/   /'
if cmp -s "$D/data" <(dd if="$D/disk.img" bs=1M skip=16 count=64 iflag=fullblock 2>/dev/null); then
	echo "   the image file on the host holds exactly those bytes"
else
	echo "   MISMATCH between the image file and the data written" >&2
	exit 1
fi

say "5. random I/O at queue depth 32, checked against an in-memory model of the disk"
"$VSHM" io --hub "$D/hub.sock" stress 512M 32 | sed 's/^/   /'

say "6. 32 random bytes from the rng device"
"$VSHM" io --hub "$D/hub.sock" rng 32 | sed 's/^/   /'

say "7. what the device process (pid $SERVE) has mapped"
maps=/proc/$SERVE/maps
shared=$(awk '$2 ~ /s$/' "$maps")
echo "   shared mappings (the 's' in the permissions column):"
sed 's/^/     /' <<<"$shared"
window=$(grep -c "memfd:vshm" <<<"$shared" || true)
other=$(grep -v -e "memfd:vshm" -e "anon_inode:\[io_uring\]" <<<"$shared" | grep -c . || true)
if [ "$window" -eq 1 ] && [ "$other" -eq 0 ]; then
	echo "   -> one shared mapping with another process: the vshm window (memfd)."
	echo "      The io_uring rings are shared with the kernel only (the disk I/O engine)."
	echo "      The device cannot reach the driver's private memory, only what the"
	echo "      driver put in the window."
else
	echo "   -> unexpected shared mappings above" >&2
	exit 1
fi
echo "   its open files:"
ls -l "/proc/$SERVE/fd" | awk 'NR > 1 { print "     " $9 " -> " $11 }'

say "8. a Linux guest: its own virtio_blk, virtio_console and virtio_rng over the window"
KVER=$(dpkg-query -W -f='${Version}' linux-headers-amd64 >/dev/null 2>&1 && \
	ls /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -n 1)
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$KVER" ] || [ ! -e "/boot/vmlinuz-$KVER" ]; then
	echo "   (skipped: QEMU or the guest kernel is not installed; scripts/deps.sh installs them)"
else
	kill -TERM "$SERVE"; wait "$SERVE" 2>/dev/null || true
	truncate -s 128M "$D/guest.img"
	"$VSHM" serve --hub "$D/hub.sock" "blk:$D/guest.img" rng "console:unix=$D/gcon.sock" 2>"$D/serve2.log" &
	pids+=($!)
	for _ in $(seq 100); do grep -q " serving " "$D/serve2.log" && break; sleep 0.05; done
	if make --no-print-directory -s kmod >"$D/kmod.log" 2>&1 &&
	   tests/guest/mkinitramfs.sh -o "$O/guest/demo-initramfs.cpio.gz" \
		-m "virtio_blk virtio_console virtio_rng ext4" "$O/kmod/virtio_shm.ko" >"$D/initrd.log" 2>&1; then
		echo "   booting QEMU (TCG: software emulation, about 10-20 s) with -device ivshmem-doorbell on the hub"
		tests/guest/run-guest.sh -i "$O/guest/demo-initramfs.cpio.gz" -H "$D/hub.sock" -n 4 -t 180 \
			tests/guest/demo.sh 2>"$D/guest.log" | grep "^   \[guest\]\|^$" || true
		if debugfs -R "cat /hello.txt" "$D/guest.img" >"$D/hello.txt" 2>/dev/null && [ -s "$D/hello.txt" ]; then
			echo "   [host]  debugfs reads the guest's file straight from the image: $(cat "$D/hello.txt")"
		fi
	else
		echo "   (skipped: the guest module or its initramfs did not build; see make kmod)"
		sed 's/^/   /' "$D/kmod.log" "$D/initrd.log" | tail -n 5
	fi
fi

say "done: stopping the device process and the hub"
