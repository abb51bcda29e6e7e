#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Linux's own virtio_blk, virtio_console and virtio_rng, unmodified, in a
# QEMU guest (TCG), over virtio_shm.ko and the window of an ivshmem-doorbell
# device whose other side is `vshm serve blk console rng`, a process that
# can reach nothing but that window.  The guest runs tests/guest/virtio.sh;
# its results are numbered into this TAP stream and its requests answered
# here; what it wrote is checked in the image once it is gone.
# Every process this starts is stopped on exit; every wait is bounded.
# Needs VSHM (the vshm binary); builds the module into $O/kmod and the
# initramfs into $O/guest.  Skips (77) without QEMU, the guest kernel or its
# headers (scripts/deps.sh installs them).  VSHM_GUEST_SMP=N boots N vCPUs;
# VSHM_GUEST_MODARGS adds virtio_shm parameters (e.g. stall_ms=300).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/guest/host-lib.sh"
GUEST_TIMEOUT=${VSHM_GUEST_TIMEOUT:-240}
IMG_MB=64 HOST_OFF_MB=40 GUEST_OFF_MB=48 FS_KB=32768

guest_prereqs python3
guest_scratch guestvirtio

# ---- build: module, initramfs with the guest kernel's virtio drivers ----------
build_module
build_initramfs initramfs-virtio.cpio.gz "virtio_blk virtio_console virtio_rng ext4"

# ---- the image, the hub, the backend -------------------------------------------
make_image "$IMG_MB" "$HOST_OFF_MB"

start_hub "${IMG_MB}M" 4
serve_devices() { rm -f "$T/con.sock"; start_serve "blk:$IMG" "console:unix=$T/con.sock" rng; }
# Isolation: the device process maps the window and io_uring's rings shared,
# nothing else (in particular nothing of the guest).
isolated() {
	local maps=/proc/$SERVE_PID/maps shared
	shared=$(awk '$2 ~ /s$/ { $1 = $2 = $3 = $4 = $5 = ""; print }' "$maps" | sed 's/^ *//' | sort -u)
	diag "serve $SERVE_PID shared mappings: $(echo $shared)"
	grep -q '^/memfd:vshm' <<<"$shared" &&
		! grep -vE '^/memfd:vshm-hub( \(deleted\))?$|^anon_inode:\[io_uring\]$' <<<"$shared" | grep -q .
}
serve_devices || { echo "Bail out! vshm serve did not start"; exit 1; }
check "vshm serve maps the window and io_uring rings shared, nothing else" isolated

# The console's host side: connects at once, sends a line when the guest
# asks for it, and collects what comes back.
TOKEN=hello-$RANDOM$RANDOM
python3 - "$T/con.sock" "$T/con.go" "$T/con.out" "$TOKEN" <<'EOF' &
import os, socket, sys, time
path, go, out, token = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
end = time.time() + 30
while True:
    try:
        s.connect(path)
        break
    except OSError:
        if time.time() > end:
            open(out, "w").write("(could not connect)\n")
            sys.exit(1)
        time.sleep(0.05)
end = time.time() + 300
while not os.path.exists(go):
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.05)
s.sendall((token + "\n").encode())
s.settimeout(0.5)
got, want, end = b"", ("echo:" + token + "\n").encode(), time.time() + 25
while want not in got and time.time() < end:
    try:
        d = s.recv(4096)
    except socket.timeout:
        continue
    if not d:
        break
    got += d
open(out, "w").write(got.decode(errors="replace"))
EOF
pids+=("$!")

cat >"$T/env" <<EOF
HOST_OFF_MB=$HOST_OFF_MB
HOST_MD5=$HOST_MD5
GUEST_OFF_MB=$GUEST_OFF_MB
FS_KB=$FS_KB
IMG_SECTORS=$((IMG_MB * 2048))
MOD_ARGS="${VSHM_GUEST_PACKED:+packed=1} ${VSHM_GUEST_MODARGS:-}"
PACKED="${VSHM_GUEST_PACKED:-}"
EOF

# ---- the guest -------------------------------------------------------------------------
raws=() files=() killed="" restarted=""
request() {
	case $1 in
	console-send) : >"$T/con.go" ;;
	kill-serve)
		killed=$SERVE_PID
		stop_serve
		;;
	start-serve)
		if serve_devices; then
			restarted=$SERVE_PID
			check "the restarted vshm serve is isolated the same way" isolated
		else
			notok "vshm serve restarts"
		fi
		;;
	raw) raws+=("$2 $3") ;;
	file) files+=("$2 $3") ;;
	*) notok "unknown request from the guest: $*" ;;
	esac
}

smp=()
[ -z "${VSHM_GUEST_SMP:-}" ] || smp=(-q -smp -q "$VSHM_GUEST_SMP")
min_checks=45	# the packed run skips the vanishing-backend and reset parts
[ -n "${VSHM_GUEST_PACKED:-}" ] && min_checks=40
run_guest "$HERE/guest/virtio.sh" "$min_checks" ${smp[@]+"${smp[@]}"}

# ---- what the host sees ------------------------------------------------------------------
for ((i = 0; i < 50; i++)); do [ -s "$T/con.out" ] && break; sleep 0.1; done
check "console: the host's line came back from the guest through the console socket" \
	grep -qx "echo:$TOKEN" "$T/con.out"
[ -s "$T/con.out" ] && diag "console socket got: $(head -c 200 "$T/con.out" | tr '\n' '|')"
check "the guest wrote one raw block for the host to check" test "${#raws[@]}" -eq 1
for r in "${raws[@]}"; do
	set -- $r
	got=$(dd if="$IMG" bs=1M skip="$1" count=1 status=none | md5)
	check "the image holds the guest's raw 1 MiB at $1 MiB ($got)" test "$got" = "$2"
done
check "the guest reported three files" test "${#files[@]}" -eq 3
if command -v debugfs >/dev/null; then
	for f in "${files[@]}"; do
		set -- $f
		rm -f "$T/dump"
		debugfs -R "dump $1 $T/dump" "$IMG" >/dev/null 2>&1
		got=$(md5 <"$T/dump" 2>/dev/null)
		check "the image's ext2 file system holds $1 as the guest wrote it" test "$got" = "$2"
	done
else
	ok "the files in the image, checked on the host # SKIP debugfs (e2fsprogs) not installed"
fi
if [ -z "${VSHM_GUEST_PACKED:-}" ]; then
	check "the backend was killed once and restarted once" test -n "$killed" -a -n "$restarted"
	check "the restarted backend served a session" grep -q "driver peer .* attached" "$T/serve.2.log"
fi
check "hub log: no dropped or refused peer" sh -c "! grep -qiE 'drop|refus' '$T/hub.log'"
diag "whole test: $(since "$t_start")s"

echo "1..$n"
[ "$fail" -eq 0 ]
