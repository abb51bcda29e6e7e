#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Draw the figures of a bench JSON (make bench BENCH_JSON=...) as one PNG:
#   top     round-trip times, log scale: the ring layouts polling and with
#           doorbells, their baselines, and Linux's ringtest when present
#   left    requests/s at 32 per publish, and ringtest's batched rate
#   right   MB/s rows (bounce, heap, memcpy ...) when the JSON has them
#
#   scripts/plot-bench.sh bench.json [out.png]     (default $O/bench.png)
#
# Needs python3 (reads the JSON) and gnuplot (Debian's gnuplot-nox); without
# gnuplot it says so and exits 0, so a benchmark run never fails on a plot.
set -eu
json=${1:?usage: plot-bench.sh bench.json [out.png]}
png=${2:-${O:-build}/bench.png}
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "plot: skipped: gnuplot not found (scripts/deps.sh installs gnuplot-nox)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One data file per panel: "label" value colour, in drawing order.
python3 - "$json" "$tmp" <<'EOF'
import json, re, sys

src, tmp = sys.argv[1], sys.argv[2]
with open(src) as f:
    j = json.load(f)

def num(k):
    v = j.get(k)
    return v if isinstance(v, (int, float)) else None

# colours: 1 ring polling, 2 ring doorbell, 3 shared-memory floor,
#          4 kernel channel, 5 Linux ringtest, 6 copy baseline, 7 zero copy,
#          8 ring polling timed as a whole run, like ringtest
rtt = [
    ("cache line", "cacheline_rtt_ns", 3),
    ("cache line, 1 line", "cacheline1_rtt_ns", 3),
    ("split poll", "split_rtt_ns_poll", 1),
    ("packed poll", "packed_rtt_ns_poll", 1),
    ("fifo poll", "fifo_rtt_ns_poll", 1),
    ("split, whole run", "wholerun_split_rtt_ns", 8),
    ("packed, whole run", "wholerun_packed_rtt_ns", 8),
    ("fifo, whole run", "wholerun_fifo_rtt_ns", 8),
    ("64 B floor, whole run", "wholerun_msg64_rtt_ns", 3),
    ("ringtest ring", "ringtest_ring_rtt_ns", 5),
    ("ringtest split", "ringtest_split_rtt_ns", 5),
    ("ringtest inorder", "ringtest_inorder_rtt_ns", 5),
    ("split doorbell", "split_rtt_ns_doorbell", 2),
    ("packed doorbell", "packed_rtt_ns_doorbell", 2),
    ("fifo doorbell", "fifo_rtt_ns_doorbell", 2),
    ("eventfd", "eventfd_rtt_ns", 4),
    ("pipe", "pipe_rtt_ns", 4),
    ("unix socket", "unix_rtt_ns", 4),
]
ops = [
    ("split poll", "split_ops_batch32_poll", 1, 1e-6),
    ("packed poll", "packed_ops_batch32_poll", 1, 1e-6),
    ("fifo poll", "fifo_ops_batch32_poll", 1, 1e-6),
    ("split doorbell", "split_ops_batch32_doorbell", 2, 1e-6),
    ("packed doorbell", "packed_ops_batch32_doorbell", 2, 1e-6),
    ("fifo doorbell", "fifo_ops_batch32_doorbell", 2, 1e-6),
    ("ringtest ring", "ringtest_ring_batched_ns", 5, None),
    ("ringtest split", "ringtest_split_batched_ns", 5, None),
    ("ringtest inorder", "ringtest_inorder_batched_ns", 5, None),
]

top = {}


def write(name, rows):
    with open("%s/%s.dat" % (tmp, name), "w") as f:
        for label, v, c in rows:
            f.write('"%s" %.6g %d\n' % (label, v, c))
    top[name] = max([v for _, v, _ in rows] or [1])
    return len(rows)

n = write("rtt", [(l, num(k), c) for l, k, c in rtt if num(k)])
rows = []
for l, k, c, scale in ops:
    v = num(k)
    if v:
        # ringtest gives ns per buffer: buffers per second is 1e9 / ns
        rows.append((l, v * scale if scale else 1e3 / v, c))
m = write("ops", rows)
# Streaming rows: memcpy, bounce and heap at each size, smallest size first.
def size_of(k):
    m = re.search(r"(\d+)([km])", k)
    return int(m.group(1)) << (10 if m.group(2) == "k" else 20) if m else 0

kinds = ("memcpy", "bounce", "heap")
mb = []
for k in sorted(j, key=lambda k: (size_of(k), [k.startswith(x) for x in kinds].index(True)
                                  if k.startswith(kinds) else 9, k)):
    v = num(k)
    if k.startswith(kinds) and k.endswith("_mbps") and v and \
            not k.endswith(("_hot_mbps", "_stream_mbps")):
        mb.append((k[:-5], v / 1000, 7 if k.startswith("heap") else 6))
b = write("mbps", mb)
title = "vshm bench: %s, %s" % (j.get("machine", "?"), j.get("date", "?"))
with open(tmp + "/meta", "w") as f:
    f.write("%d %d %d %g %g %g\n%s\n" % (n, m, b, top["rtt"] * 2.5, top["ops"] * 1.12,
                                          top["mbps"] * 1.12, title.replace('"', "")))
EOF

read -r n_rtt n_ops n_mb top_rtt top_ops top_mb <"$tmp/meta"
title=$(sed -n 2p "$tmp/meta")
if [ "$n_rtt" -eq 0 ] && [ "$n_ops" -eq 0 ] && [ "$n_mb" -eq 0 ]; then
	echo "plot: skipped: no ring or MB/s figures in $json"
	exit 0
fi
mkdir -p "$(dirname "$png")"

gnuplot <<EOF
set terminal pngcairo size 1400,1000 font "sans,10" noenhanced
set output "$png"
set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics
set key off
set xtics rotate by -30 nomirror
set linetype 1 lc rgb "#1f77b4"
set linetype 2 lc rgb "#ff7f0e"
set linetype 3 lc rgb "#7f7f7f"
set linetype 4 lc rgb "#9467bd"
set linetype 5 lc rgb "#2ca02c"
set linetype 6 lc rgb "#8c564b"
set linetype 7 lc rgb "#17becf"
set linetype 8 lc rgb "#9ecae1"
set multiplot title "$title" font "sans,12"

set origin 0, 0.48
set size 1, 0.5
set title "Round trip, one request in flight (ns, log scale, lower is better)\nvshm: 64 B each way; dark blue: polling, median blocks in a run; light blue: polling, whole runs timed like ringtest; orange: eventfd doorbells\ngrey: floors (cache line: a line each way, one line; 64 B each way, bare model); green: Linux ringtest (whole runs, no payload); purple: kernel channels"
set logscale y
set yrange [*:$top_rtt]
set format y "%g"
set ylabel "ns"
if ($n_rtt > 0) {
	plot "$tmp/rtt.dat" using 0:2:3:xtic(1) with boxes lc variable, \
	     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.7 font "sans,9"
}
unset logscale y

set origin 0, 0
set size 0.5, 0.47
set title "Requests per second, 32 per publish (millions, higher is better)\nringtest: 1000 / its batched ns per buffer (whole runs, no payload)"
set ylabel "M requests/s"
set yrange [0:$top_ops]
if ($n_ops > 0) {
	plot "$tmp/ops.dat" using 0:2:3:xtic(1) with boxes lc variable, \
	     "" using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.7 font "sans,9"
}

set origin 0.5, 0
set size 0.5, 0.47
set title "Streaming (GB/s, higher is better)\nbrown: memcpy baseline and bounce buffers, cyan: zero-copy heap"
set ylabel "GB/s"
set yrange [0:$top_mb]
if ($n_mb > 0) {
	plot "$tmp/mbps.dat" using 0:2:3:xtic(1) with boxes lc variable, \
	     "" using 0:2:(sprintf("%.1f", \$2)) with labels offset 0,0.7 font "sans,8"
} else {
	unset xtics
	unset ytics
	set label 1 "no MB/s figures in this JSON" at graph 0.5, 0.5 center
	plot [0:1] [0:1] NaN notitle
}
unset multiplot
EOF
echo "plot: $png"
