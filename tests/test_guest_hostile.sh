#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# virtio_shm.ko against hostile backends: a QEMU guest (TCG) runs Linux's
# own virtio_blk and virtio_rng over the module while the host replaces
# its backend with `vshm serve --hostile CLASS` for each class of
# misbehaviour: completions of buffers the driver does not hold (used-id),
# completions longer than their buffers (used-len), random config bytes
# and generations (config), a device that stops answering control messages
# (mute), doorbells without end (storm), and requests taken and never
# completed (stall).  The guest (tests/guest/
# hostile.sh) checks that the module logs it, takes the device out of
# service and fails what it held, that no workload hangs, that the kernel
# log shows no oops, and that a well-behaved backend is served again after
# each.  Every process this starts is stopped on exit; every wait is
# bounded.  Skips (77) without QEMU, the guest kernel or its headers.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/guest/host-lib.sh"
GUEST_TIMEOUT=${VSHM_GUEST_TIMEOUT:-480}
IMG_MB=16 HOST_OFF_MB=8

guest_prereqs
guest_scratch guesthostile
build_module
build_initramfs initramfs-hostile.cpio.gz "virtio_blk virtio_rng"

make_image "$IMG_MB" "$HOST_OFF_MB"
start_hub "${IMG_MB}M" 4

# What each class needs: used-id every 32nd completion, mute after 20
# answers (in the middle of probing the two devices).
served=()
request() {
	local args=()
	case $1 in
	serve)
		stop_serve
		case $2 in
		good) ;;
		mute) args=(--hostile mute --hostile-after 20) ;;
		used-id | used-len | config | storm | stall) args=(--hostile "$2") ;;
		*) notok "unknown class from the guest: $2"; return ;;
		esac
		if start_serve ${args[@]+"${args[@]}"} "blk:$IMG" rng; then
			served+=("$2")
			[ "$2" = good ] || check "vshm serve --hostile $2 says what it is doing" \
				grep -q "HOSTILE: $2" "$SERVE_LOG"
		else
			notok "vshm serve ${args[*]} starts"
		fi
		;;
	*) notok "unknown request from the guest: $*" ;;
	esac
}

cat >"$T/env" <<EOT
HOST_OFF_MB=$HOST_OFF_MB
HOST_MD5=$HOST_MD5
MOD_ARGS="call_timeout_ms=500 stall_ms=2000"
EOT
run_guest "$HERE/guest/hostile.sh" 35
check "the host served every class the guest asked for (${served[*]})" \
	test "${served[*]}" = "good used-id good used-len good config good mute good storm good stall good"
check "the image still holds the host's pattern" \
	test "$(dd if="$IMG" bs=1M skip="$HOST_OFF_MB" count=1 status=none | md5)" = "$HOST_MD5"
diag "whole test: $(since "$t_start")s"
echo "1..$n"
[ "$fail" -eq 0 ]
