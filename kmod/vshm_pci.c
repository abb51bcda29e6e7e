// SPDX-License-Identifier: GPL-2.0
/*
 * The PCI layer of virtio_shm.ko.  Its source is virtio_shm.c; it is built
 * under this name because the module, made of several objects, is itself
 * called virtio_shm.o.
 */
#include "virtio_shm.c"
