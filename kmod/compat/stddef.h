/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel stand-in for <stddef.h>. */
#ifndef VSHM_COMPAT_STDDEF_H
#define VSHM_COMPAT_STDDEF_H
#include <linux/stddef.h>
#include <linux/types.h>
#endif
