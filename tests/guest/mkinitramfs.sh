#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build the test guest's initramfs: busybox-static with its applet links,
# tests/guest/init as /init, tests/guest/guest-lib.sh as /lib/vshm-guest.sh,
# the given modules in /lib/modules/KVER/extra/, and guest-kernel modules by
# name (with what they depend on, decompressed) from /lib/modules/KVER, with
# a modules.dep so that busybox modprobe works.  KVER is the kernel the first
# module was built for (its vermagic).
#
#   tests/guest/mkinitramfs.sh [-o OUT] [-m "NAME..."] MODULE.ko...
#
# OUT defaults to ${O:-build}/guest/initramfs.cpio.gz; OUT.info records
# KVER= and the inputs' hash.  The archive is rebuilt only when an input
# changed.  Per-run files (the test script) are not in it: run-guest.sh
# appends them as a second archive.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${O:-build}/guest/initramfs.cpio.gz
MODS=${GUEST_MODULES:-}

die() { echo "mkinitramfs: $*" >&2; exit 1; }
usage() { sed -n '11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while getopts "o:m:h" opt; do
	case $opt in
	o) OUT=$OPTARG ;;
	m) MODS=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
for ko in "$@"; do
	[ -f "$ko" ] || die "module $ko not found (build it with make kmod)"
done

for tool in cpio gzip depmod modinfo modprobe sha256sum flock; do
	command -v "$tool" >/dev/null || die "$tool not found; run scripts/deps.sh"
done
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || die "busybox not found; install busybox-static (scripts/deps.sh)"
# The guest has no libc: only a static busybox will run there.
if LC_ALL=C file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked'; then
	die "$BUSYBOX is dynamically linked; install busybox-static"
fi

KVER=$(modinfo -F vermagic "$1" | awk '{print $1}')
[ -n "$KVER" ] || die "cannot read the kernel version (vermagic) of $1"
MODDIR=/lib/modules/$KVER
[ -d "$MODDIR/kernel" ] || die "no $MODDIR/kernel: install the kernel $1 was built for (linux-image-amd64)"

# Our modules need some of the guest kernel's (virtio_shm: virtio and
# virtio_ring); /init loads those so that a plain insmod of ours works.
for ko in "$@"; do
	MODS="$MODS $(modinfo -F depends "$ko" | tr ',' ' ')"
done

# Guest-kernel modules, dependencies first, as modprobe would load them.
kmods=()
for m in $MODS; do
	deps=$(modprobe -S "$KVER" --show-depends "$m" 2>/dev/null) ||
		die "no module '$m' for kernel $KVER"
	while read -r kind path _; do
		[ "$kind" = insmod ] || continue
		case " ${kmods[*]} " in *" $path "*) ;; *) kmods+=("$path") ;; esac
	done <<<"$deps"
done

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock -w 120 9 || die "timed out waiting for another build of $OUT"

hash=$( {
	echo "$KVER $MODS"
	sha256sum "$0" "$HERE/init" "$HERE/guest-lib.sh" "$BUSYBOX" "$@" ${kmods[@]+"${kmods[@]}"} |
		cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ -f "$OUT.info" ] && grep -qx "HASH=$hash" "$OUT.info"; then
	exit 0
fi

STAGE=$(mktemp -d "$OUT.stage.XXXXXX")
trap 'rm -rf "$STAGE" "$OUT.tmp"' EXIT
mkdir -p "$STAGE"/{bin,dev,proc,sys,tmp,lib/modules/"$KVER"/extra,test}
cp "$BUSYBOX" "$STAGE/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ "$a" = busybox ] || ln -s busybox "$STAGE/bin/$a"
done
ln -s bin "$STAGE/sbin"
install -m 0755 "$HERE/init" "$STAGE/init"
install -m 0644 "$HERE/guest-lib.sh" "$STAGE/lib/vshm-guest.sh"
# The kernel opens /dev/console before it runs /init; /init falls back to
# devtmpfs when the node could not be made (not root).
mknod -m 0600 "$STAGE/dev/console" c 5 1 2>/dev/null || true

for ko in "$@"; do
	cp "$ko" "$STAGE/lib/modules/$KVER/extra/"
done
for path in ${kmods[@]+"${kmods[@]}"}; do
	rel=${path#"$MODDIR"/}
	dst=$STAGE/lib/modules/$KVER/${rel%.xz}
	dst=${dst%.zst}
	dst=${dst%.gz}
	mkdir -p "$(dirname "$dst")"
	case $path in
	*.ko.xz) xz -dc "$path" >"$dst" ;;
	*.ko.zst) zstd -qdc "$path" >"$dst" ;;
	*.ko.gz) gzip -dc "$path" >"$dst" ;;
	*) cp "$path" "$dst" ;;
	esac
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$MODDIR/$f" ] && cp "$MODDIR/$f" "$STAGE/lib/modules/$KVER/"
done
depmod -b "$STAGE" "$KVER" || die "depmod failed for the guest modules"

(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --quiet) | gzip -6n >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
printf 'KVER=%s\nHASH=%s\n' "$KVER" "$hash" >"$OUT.info"
echo "mkinitramfs: $OUT for $KVER ($(du -k "$OUT" | cut -f1) KiB)" >&2
