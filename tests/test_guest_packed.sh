#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The guest suite once more with packed rings negotiated (virtio_shm.ko
# packed=1): Linux's own virtio_ring builds packed rings through our DMA
# ops, and blk, console and rng run over them against vshm serve.
VSHM_GUEST_PACKED=1 exec "$(dirname "$0")/test_guest_virtio.sh" "$@"
