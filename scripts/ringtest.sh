#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Linux's own ring benchmark, tools/virtio/ringtest, on this machine, as a
# yardstick for bench_rings.  It is built at bench time from Debian's
# linux-source-6.1 package: only tools/virtio/ringtest is extracted, into
# $O/ringtest/ (a build directory; none of it belongs in the repository),
# and built with its own Makefile, unmodified.
#
# Three of its layouts: ring (its own compact layout), virtio_ring_0_9 (the
# split ring, event index on) and virtio_ring_inorder (split, in order).
# Both threads poll, pinned like ours: guest (driver) on core 0, host
# (device) on core 1.  Two settings each:
#   --outstanding 1 --batch 1   one buffer in flight: each buffer is a round trip
#   defaults                    as many in flight as the ring holds (256)
#
# ringtest prints nothing; it runs a fixed number of buffers and exits.  So
# each run is timed from outside: ns per buffer = (wall time - start-up) /
# buffers, where start-up is the median wall time of runs of one buffer.
# Start-up (exec, threads, ring) takes milliseconds and varies by as much
# under load, so the runs are long: a million round trips, five million
# batched buffers, each 0.05 to 1 s when nothing else runs.
# Runs of all settings alternate, RINGTEST_RUNS (9) of each; a figure is
# the median (the row also shows the best run, for orientation).  Rows and "key": value lines as bench.h's bench_report.
#
# vshm's own rings are timed the same way, in the same rotation: bench_rings
# --once LAYOUT N runs N polling round trips (64-byte request and reply, the
# device on its own mapping) and exits, and is timed from outside like
# ringtest (wholerun_<layout>_rtt_ns).  bench_rings' own figures are median
# blocks inside a run; a whole run also pays for every time another task
# takes one of the two cores, so only these whole-run figures compare with
# ringtest's like for like.  The floors run alike too (bench_rings --once
# cacheline|cacheline1|msg64: a line each way, one line both ways, and a
# bare in-place exchange of 64 bytes each way), so each ring can be set
# against the floor of its kind in the same rotation.
#
#   O=build scripts/ringtest.sh      (BENCH_JSON_PART=file appends the figures)
# Knobs: RINGTEST_TAR (the tarball), RINGTEST_RUNS, VSHM_BENCH_QUICK.
set -u
O=${O:-build}
TAR=${RINGTEST_TAR:-/usr/src/linux-source-6.1.tar.xz}
RUNS=${RINGTEST_RUNS:-9}
dir=$O/ringtest
rtt_cycles=1000000
batched_cycles=5000000
if [ -n "${VSHM_BENCH_QUICK:-}" ]; then
	rtt_cycles=200000
	batched_cycles=1000000
	RUNS=5
fi

# Every key this script reports, for the rows printed when it cannot run.
KEYS="ringtest_split_rtt_ns ringtest_ring_rtt_ns ringtest_inorder_rtt_ns
ringtest_split_batched_ns ringtest_ring_batched_ns ringtest_inorder_batched_ns
wholerun_split_rtt_ns wholerun_packed_rtt_ns wholerun_fifo_rtt_ns
wholerun_cacheline_rtt_ns wholerun_cacheline1_rtt_ns wholerun_msg64_rtt_ns"

skip_all() {
	for key in $KEYS; do
		printf '  %-34s skipped: %s\n' "$key" "$1"
	done
	exit 0
}

echo "Linux tools/virtio/ringtest (from $(basename "$TAR")), guest core 0, host core 1, polling, $RUNS runs each, medians"
[ -r "$TAR" ] || skip_all "$TAR not found (scripts/deps.sh installs linux-source-6.1)"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found (times the runs)"
[ "$(nproc)" -ge 2 ] || skip_all "needs two cpus"

# ---- extract and build (cached: redone only when the tarball changes) ----
stamp="$(stat -c '%s %Y' "$TAR") $TAR"
progs=(ring virtio_ring_0_9 virtio_ring_inorder)
if [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$dir"
	mkdir -p "$dir" || skip_all "cannot create $dir"
	echo "  (extracting tools/virtio/ringtest from $TAR: the whole tarball is decompressed, ~30 s)"
	if ! tar -xJf "$TAR" -C "$dir" --strip-components=4 --wildcards \
		'*/tools/virtio/ringtest/*' 2>"$dir/extract.log" || [ ! -f "$dir/main.c" ]; then
		skip_all "cannot extract tools/virtio/ringtest (see $dir/extract.log)"
	fi
	# Its own Makefile and flags: nothing from an outer make (CC=clang, ...).
	if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$dir" "${progs[@]}" >"$dir/build.log" 2>&1; then
		skip_all "build failed (see $dir/build.log)"
	fi
	echo "$stamp" >"$dir/.stamp"
fi
for p in "${progs[@]}"; do
	[ -x "$dir/$p" ] || skip_all "$dir/$p missing (see $dir/build.log)"
done

# ---- run -----------------------------------------------------------------
# Python times each child with a monotonic clock; a run that fails (an
# assert in ringtest) makes the whole figure a skip, never a number.
python3 - "$dir" "$RUNS" "$rtt_cycles" "$batched_cycles" "${BENCH_JSON_PART:-}" \
	"$O/bench/bench_rings" <<'EOF'
import os, subprocess, sys, time, statistics

d, runs, rtt_cycles, batched_cycles, part, vshm = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
pin = ["--host-affinity", "1", "--guest-affinity", "0"]
configs = [
    ("ringtest_split_rtt_ns", "virtio_ring_0_9", "rtt"),
    ("ringtest_ring_rtt_ns", "ring", "rtt"),
    ("ringtest_inorder_rtt_ns", "virtio_ring_inorder", "rtt"),
    ("ringtest_split_batched_ns", "virtio_ring_0_9", "batched"),
    ("ringtest_ring_batched_ns", "ring", "batched"),
    ("ringtest_inorder_batched_ns", "virtio_ring_inorder", "batched"),
    ("wholerun_split_rtt_ns", "vshm:split", "rtt"),
    ("wholerun_packed_rtt_ns", "vshm:packed", "rtt"),
    ("wholerun_fifo_rtt_ns", "vshm:fifo", "rtt"),
    ("wholerun_cacheline_rtt_ns", "vshm:cacheline", "rtt"),
    ("wholerun_cacheline1_rtt_ns", "vshm:cacheline1", "rtt"),
    ("wholerun_msg64_rtt_ns", "vshm:msg64", "rtt"),
]
what = {
    "rtt": "per round trip, --outstanding 1 --batch 1",
    "batched": "per buffer, up to 256 in flight (defaults)",
    "vshm": "per round trip, bench_rings --once, timed alike",
}
name = {"virtio_ring_0_9": "split", "ring": "ring", "virtio_ring_inorder": "split in order"}


def command(prog, args):
    if prog.startswith("vshm:"):
        # bench_rings pins its own threads (driver core 0, device core 1)
        # and takes the round-trip count as its last argument.
        return [vshm, "--once", prog[5:], args[-1]]
    return [os.path.join(d, prog)] + pin + args


def wall_ns(prog, args):
    t0 = time.perf_counter_ns()
    r = subprocess.run(command(prog, args),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (prog, r.returncode,
                           r.stderr.decode(errors="replace").strip()[:200]))
    return t1 - t0


def args_of(mode):
    if mode == "rtt":
        return ["--outstanding", "1", "--batch", "1", "--run-cycles", str(rtt_cycles)], rtt_cycles
    return ["--run-cycles", str(batched_cycles)], batched_cycles


samples = {k: [] for k, _, _ in configs}
startup = {p: [] for _, p, _ in configs}
failed = {}
if not os.access(vshm, os.X_OK):
    for key, prog, _ in configs:
        if prog.startswith("vshm:"):
            failed[key] = "%s not built (make bench builds it)" % vshm
for _ in range(runs):
    for key, prog, mode in configs:
        if key in failed:
            continue
        a, n = args_of(mode)
        try:
            if mode == "rtt":
                startup[prog].append(wall_ns(prog, ["--run-cycles", "1"]))
            samples[key].append((wall_ns(prog, a), n, prog))
        except (RuntimeError, OSError) as e:
            failed[key] = str(e)

out = open(part, "a") if part else None
for key, prog, mode in configs:
    if key in failed or not samples[key]:
        print("  %-34s skipped: %s" % (key, failed.get(key, "no runs")))
        continue
    s0 = statistics.median(startup[prog]) if startup[prog] else 0
    per = [max(t - s0, 0) / n for t, n, _ in samples[key]]
    v = statistics.median(per)
    if prog == "vshm:msg64":
        label = "64-byte floor (bare in-place exchange): %s" % what["vshm"]
    elif prog.startswith("vshm:cacheline"):
        label = "%s floor: %s" % ("one-line" if prog.endswith("1") else "two-line",
                                  what["vshm"])
    elif prog.startswith("vshm:"):
        label = "vshm %s: %s" % (prog[5:], what["vshm"])
    else:
        label = "%s: %s" % (name[prog], what[mode])
    label += "; best run %.0f" % min(per)
    print("  %-34s %14.3f %-8s %s" % (key, v, "ns", label))
    if out:
        out.write('"%s": %.6g\n' % (key, v))
sys.stdout.flush()
if out:
    out.close()
EOF
