#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: show vshm doing its job with what exists today.
set -eu
O=${O:-build}
make --no-print-directory -s "$O/tests/test_vq_split" "$O/bench/bench_core"
echo "== vshm core: a driver thread and a device thread over one window"
echo "   (the device thread uses its own mapping, with the header and mailbox made inaccessible)"
"$O/tests/test_vq_split" | grep -E '^#|^not ok' | sed 's/^# /   /'
echo
echo "== the core benchmark (ratios against baselines measured in the same run)"
VSHM_BENCH_QUICK=1 "$O/bench/bench_core" | sed 's/^/   /'
echo
echo "The end-to-end demo (hub, vshm serve, a driver process, a QEMU guest) arrives"
echo "with the runtime and the guest module; it is not built yet."
