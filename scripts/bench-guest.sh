#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Sequential reads in a QEMU guest (TCG): Linux's virtio_blk over vshm
# (virtio_shm.ko, every byte bounced through the window, `vshm serve` on
# the host) against the same guest reading the same image through QEMU's
# own virtio-blk-pci.  One boot, two disks, runs alternating
# (tests/guest/bench-read.sh); each figure is the median of the rounds.
#
#   O=build VSHM=build/vshm scripts/bench-guest.sh
#     (BENCH_JSON_PART=file appends the figures, as bench.h's bench_report)
# Knobs: VSHM_BENCH_QUICK (smaller image, fewer rounds),
#        BENCH_GUEST_MB (MiB read per run), BENCH_GUEST_ROUNDS.
# Without QEMU, the guest kernel or its headers it prints "skipped" rows.
set -u
unset MAKEFLAGS MFLAGS MAKELEVEL
O=${O:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
VSHM=${VSHM:-$O/vshm}
MB=${BENCH_GUEST_MB:-128}
ROUNDS=${BENCH_GUEST_ROUNDS:-5}
if [ -n "${VSHM_BENCH_QUICK:-}" ]; then
	MB=${BENCH_GUEST_MB:-32}
	ROUNDS=${BENCH_GUEST_ROUNDS:-3}
fi
KEYS="guest_vshm_seq_read_mbs guest_virtio_pci_seq_read_mbs guest_seq_read_over_virtio_pci"

skip_all() {
	for key in $KEYS; do
		printf '  %-34s skipped: %s\n' "$key" "$1"
	done
	exit 0
}
report() {	# KEY VALUE UNIT WHAT
	printf '  %-34s %14.3f %-8s %s\n' "$1" "$2" "$3" "$4"
	[ -z "${BENCH_JSON_PART:-}" ] || printf '"%s": %.6g\n' "$1" "$2" >>"$BENCH_JSON_PART"
}

echo "virtio_blk in a TCG guest: over vshm against QEMU's virtio-blk-pci, one boot, $MB MiB of 1 MiB O_DIRECT reads, $ROUNDS rounds, medians"
command -v qemu-system-x86_64 >/dev/null || skip_all "qemu-system-x86_64 not installed (scripts/deps.sh)"
KDIR=$(make -s --no-print-directory -C "$TOP/kmod" print-kdir 2>/dev/null)
[ -n "$KDIR" ] && [ -f "$KDIR/Makefile" ] || skip_all "no headers for the guest kernel (linux-headers-amd64)"
KVER=$(basename "$(dirname "$KDIR")")
[ -r "/boot/vmlinuz-$KVER" ] || skip_all "no guest kernel /boot/vmlinuz-$KVER (linux-image-amd64)"
for tool in busybox cpio depmod modinfo; do
	command -v "$tool" >/dev/null || skip_all "$tool not installed (scripts/deps.sh)"
done
[ -x "$VSHM" ] || skip_all "$VSHM not built"
VSHM=$(cd "$(dirname "$VSHM")" && pwd)/$(basename "$VSHM")

T=$(mktemp -d /tmp/vshm-benchguest.XXXXXX)
pids=()
cleanup() {
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
fail() { echo "bench-guest: $*" >&2; skip_all "$1"; }

mkdir -p "$O"
OABS=$(cd "$O" && pwd)
make -s --no-print-directory -C "$TOP/kmod" BUILD="$OABS/kmod" >"$T/kmod.log" 2>&1 ||
	{ cat "$T/kmod.log" >&2; fail "the module does not build"; }
INITRD=$OABS/guest/initramfs-bench.cpio.gz
"$TOP/tests/guest/mkinitramfs.sh" -o "$INITRD" -m "virtio_pci virtio_blk" "$OABS/kmod/virtio_shm.ko" \
	2>"$T/mkinitramfs.log" || { cat "$T/mkinitramfs.log" >&2; fail "no initramfs"; }

# An image of random data (not a sparse file: both paths read real blocks).
IMG=$T/disk.img
head -c $((MB << 20)) /dev/urandom >"$IMG"
HUB=$T/hub.sock
"$VSHM" hub --socket "$HUB" --size 64M --vectors 4 2>"$T/hub.log" &
pids+=("$!")
for ((i = 0; i < 100; i++)); do [ -S "$HUB" ] && break; sleep 0.05; done
[ -S "$HUB" ] || fail "the hub did not start"
"$VSHM" serve --hub "$HUB" "blk:$IMG,ro" 2>"$T/serve.log" &
pids+=("$!")
for ((i = 0; i < 100; i++)); do grep -q " serving " "$T/serve.log" && break; sleep 0.05; done
grep -q " serving " "$T/serve.log" || { cat "$T/serve.log" >&2; fail "vshm serve did not start"; }

printf 'BENCH_MB=%s\nBENCH_ROUNDS=%s\n' "$MB" "$ROUNDS" >"$T/env"
"$TOP/tests/guest/run-guest.sh" -i "$INITRD" -H "$HUB" -n 4 -t 600 -e "$T/env" \
	-q -drive -q "file=$IMG,if=none,id=d0,format=raw,readonly=on" \
	-q -device -q "virtio-blk-pci,drive=d0" \
	"$TOP/tests/guest/bench-read.sh" >"$T/console" 2>"$T/run-guest.log"
rc=$?
sed -n 's/.*##vshm # \(vshm\|virtio-pci\|counters\)/  # \1/p' "$T/console"
if [ "$rc" -ne 0 ]; then
	grep '##vshm' "$T/console" | tail -n 5 >&2
	cat "$T/run-guest.log" >&2
	fail "the guest run failed (exit $rc)"
fi

# MB/s of one disk: the median of its rounds.
mbs() {
	sed -n "s/.*##vshm # bench $1 [0-9]* \([0-9]*\) \([0-9]*\)$/\1 \2/p" "$T/console" |
		awk '$2 > 0 { print $1 * 100 / $2 }' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
v=$(mbs vshm)
p=$(mbs virtio_pci)
[ -n "$v" ] && [ -n "$p" ] || fail "no figures in the guest's output"
report guest_vshm_seq_read_mbs "$v" MB/s "virtio_blk over vshm: bounced through the window, vshm serve (io_uring)"
report guest_virtio_pci_seq_read_mbs "$p" MB/s "the same guest and image through QEMU's virtio-blk-pci"
report guest_seq_read_over_virtio_pci "$(echo "$v / $p" | bc -l)" ratio \
	"information: higher is better; TCG emulates the guest's bounce copies"
