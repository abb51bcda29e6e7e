// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio-msg codec inside the module: libvshm's src/msg.c (MIT, the
 * same code the user-space runtimes, the tests and the fuzzer use), built
 * against kmod/compat/, which maps the few libc headers it includes onto
 * kernel ones.  Nothing else of libvshm is compiled in.
 */
#include "msg.c"
