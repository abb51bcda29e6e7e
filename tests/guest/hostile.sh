# SPDX-License-Identifier: MIT
#
# Guest side of tests/test_guest_hostile.sh: Linux's own virtio_blk and
# virtio_rng over virtio_shm.ko, against backends that misbehave on
# purpose (vshm serve --hostile CLASS).  For each class the host replaces
# the backend ("req serve CLASS"), the guest puts it to work, and checks
# that the transport logs what the device did, takes the device out of
# service, fails what it held, and that nothing hangs: every workload
# runs in the background and must end within a bound.  Between classes,
# and at the end, a well-behaved backend must be served again as if
# nothing had happened.
# From /test/env: HOST_OFF_MB, HOST_MD5 (a pattern the host put in the
# image), MOD_ARGS (virtio_shm parameters).
. /lib/vshm-guest.sh

t_check "the guest kernel's virtio_blk and virtio_rng load" modprobe -a virtio_blk virtio-rng
# shellcheck disable=SC2086
t_check "insmod virtio_shm.ko ${MOD_ARGS:-}" insmod "$KO" ${MOD_ARGS:-}

sessions() { stat sessions 2>/dev/null || echo 0; }
dmesg_has() { dmesg | grep -q -- "$1"; }

# serve CLASS: have the host start a backend misbehaving as CLASS
# ("good": not at all), and wait for the session with it.
serve() {
	local s0
	s0=$(sessions)
	dmesg -c >>/tmp/klog
	t_req serve "$1"
	t_until 30000 sh -c "[ \"\$(sed -n 's/^sessions //p' $(stats_file))\" -gt $s0 ]"
}

# bounded NAME MS CMD...: run CMD in the background; 0 if it ended within
# MS ms (its exit status in /tmp/NAME.rc), 1 if it is still running.
bounded() {
	local name=$1 ms=$2
	shift 2
	rm -f "/tmp/$name.rc"
	("$@"; echo $? >"/tmp/$name.rc") >/dev/null 2>&1 &
	t_until "$ms" test -e "/tmp/$name.rc"
}

# Reads the disk's first 4 MiB again and again, and waits for the disk
# when it is away, until it has been away for 5 s (at most 400 passes):
# a workload that reaches every instance of the device.
read_while_disk() {
	local i=0 gone=0
	while [ $i -lt 400 ] && [ $gone -lt 50 ]; do
		if [ -b /dev/vda ]; then
			gone=0
			dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct 2>/dev/null
		else
			gone=$((gone + 1))
			usleep 100000
		fi
		i=$((i + 1))
	done
}
rng_reads() {
	local i=0
	while [ $i -lt 50 ] && [ -c /dev/hwrng ]; do
		timeout 5 dd if=/dev/hwrng of=/dev/null bs=64 count=4 2>/dev/null
		i=$((i + 1))
	done
}

good_again() {
	t_check "a well-behaved backend is served again (within 30 s)" serve good
	t_check "its disk appears (within 20 s)" t_until 20000 test -b /dev/vda
	t_check "and reads the host's pattern" [ "$(read_md5 "$HOST_OFF_MB")" = "$HOST_MD5" ]
}

# ---- a good backend first ------------------------------------------------------
good_again

# ---- used-id: completions of buffers the driver does not hold -----------------------
t_check "used-id: a backend completing buffers it was never given is served" serve used-id
t_until 20000 test -b /dev/vda
bad0=$(stat bad_completions)
if bounded io 90000 read_while_disk; then
	t_ok "used-id: readers of the disk ended (no hang; exit $(cat /tmp/io.rc))"
else
	t_notok "used-id: readers of the disk ended (still running after 90 s)"
fi
bounded rng 60000 rng_reads || t_notok "used-id: hwrng readers ended (still running after 60 s)"
t_check "used-id: the virtio core refused a completion (\"out of range\" / \"is not a head\")" \
	sh -c "dmesg | grep -qE 'id [0-9]+ out of range|is not a head'"
t_check "used-id: the transport logged the device broken and reset it" \
	dmesg_has "the device is broken, resetting it"
t_check "used-id: debugfs counts bad completions ($bad0 -> $(stat bad_completions))" \
	[ "$(stat bad_completions)" -gt "$bad0" ]
t_check "used-id: what the device held was failed on its behalf ($(stat chains_failed) chains)" \
	[ "$(stat chains_failed)" -ge 1 ]
t_check "used-id: after $((5 + 1)) resets the device is left out of service (within 60 s)" \
	t_until 60000 dmesg_has "resets in this session; left unregistered"
t_check "used-id: the session itself carries on" [ "$(stat state)" = active ]
dmesg | grep -E 'virtio_shm|virtio' | head -n 8 | while IFS= read -r l; do t_diag "dmesg: $l"; done

# ---- used-len: completions longer than their buffers ---------------------------------
good_again
t_check "used-len: a backend claiming 4 GiB written per completion is served" serve used-len
bounded io 60000 read_while_disk || t_notok "used-len: readers of the disk ended (still running after 60 s)"
bounded rng 60000 rng_reads || t_notok "used-len: hwrng readers ended (still running after 60 s)"
t_check "used-len: the transport logged completions longer than their buffers" \
	dmesg_has "completion longer than its buffers"
t_check "used-len: and took the device out of service (within 60 s)" \
	t_until 60000 dmesg_has "resets in this session; left unregistered"
dmesg | grep -E 'virtio_shm' | head -n 4 | while IFS= read -r l; do t_diag "dmesg: $l"; done

# ---- config: garbage config space, a generation that never stands still ------------
good_again
t_check "config: a backend answering random config bytes is served" serve config
sleep 3
bounded cfgio 60000 read_while_disk || t_notok "config: disk readers ended (still running after 60 s)"
if bounded up 20000 sleep 1; then t_ok "config: the guest stays responsive"; else t_notok "config: the guest stays responsive (sleep 1 took > 20 s)"; fi
t_check "config: the transport stopped following the flapping generation" \
	dmesg_has "config generation keeps changing"
n=$(ls "$VDEVS" 2>/dev/null | wc -l)
t_diag "config: $n virtio device(s) probed with garbage config; disk: $(cat /sys/block/vda/size 2>/dev/null || echo none) sectors"
dmesg | grep -E 'virtio' | head -n 6 | while IFS= read -r l; do t_diag "dmesg: $l"; done

# ---- mute: a heartbeat but no answers --------------------------------------------
good_again
t_check "mute: a backend that stops answering mid-probe is served" serve mute
t_check "mute: the transport ends the session: \"the device stopped answering\" (within 30 s)" \
	t_until 30000 dmesg_has "the device stopped answering"
t_check "mute: no virtio device is left behind (within 30 s)" t_until 30000 no_vdevs
t_check "mute: the session is not active" [ "$(stat state)" != active ]
t_diag "mute: $(stat mbox_call_timeouts) exchanges timed out"

# ---- storm: doorbells without end -------------------------------------------------
good_again
t_check "storm: a backend ringing every doorbell without end is served" serve storm
t_until 20000 test -b /dev/vda
if bounded storm 120000 sh -c '[ "$(dd if=/dev/vda bs=1M skip='"$HOST_OFF_MB"' count=1 iflag=direct 2>/dev/null | md5sum | cut -d" " -f1)" = '"$HOST_MD5"' ]'; then
	t_check "storm: the disk still reads the host's pattern" [ "$(cat /tmp/storm.rc)" = 0 ]
else
	t_notok "storm: a 1 MiB read ended (still running after 120 s)"
fi
if bounded up 20000 sleep 1; then t_ok "storm: the guest stays responsive"; else t_notok "storm: the guest stays responsive (sleep 1 took > 20 s)"; fi
t_check "storm: the module masks the stormy vectors (\"a doorbell storm from the device\", within 30 s)" \
	t_until 30000 dmesg_has "a doorbell storm from the device"
t_diag "storm: $(stat irqs_queue) queue and $(stat irqs_mailbox) mailbox interrupts; masked per vector: $(cat /sys/bus/pci/drivers/virtio_shm/*/storms 2>/dev/null)"
dmesg | grep -E 'virtio_shm' | head -n 4 | while IFS= read -r l; do t_diag "dmesg: $l"; done

# ---- stall: requests taken and never completed -------------------------------------
good_again
t_check "stall: a backend that stops completing requests is served" serve stall
t_until 20000 test -b /dev/vda
if bounded io 120000 read_while_disk; then
	t_ok "stall: readers of the disk ended (no hang; exit $(cat /tmp/io.rc))"
else
	t_notok "stall: readers of the disk ended (still running after 120 s)"
fi
t_check "stall: the transport logged requests held without a completion" \
	dmesg_has "requests held without a completion"
t_check "stall: and took the device out of service (within 60 s)" \
	t_until 60000 dmesg_has "resets in this session; left unregistered"
dmesg | grep -E 'virtio_shm' | head -n 4 | while IFS= read -r l; do t_diag "dmesg: $l"; done

# ---- and after all that ------------------------------------------------------------
good_again
n=$(timeout 20 dd if=/dev/hwrng bs=64 count=4 2>/dev/null | wc -c)
t_check "and its rng gives bytes ($n)" [ "$n" -gt 0 ]
t_dmesg_clean /tmp/klog
if bounded rmmod 30000 rmmod virtio_shm; then
	t_check "rmmod virtio_shm at the end" [ "$(cat /tmp/rmmod.rc)" = 0 ]
else
	t_notok "rmmod virtio_shm at the end (still running after 30 s)"
fi
t_done
