/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel stand-in for <stdint.h>: lets src/msg.c build inside the module. */
#ifndef VSHM_COMPAT_STDINT_H
#define VSHM_COMPAT_STDINT_H
#include <linux/limits.h>
#include <linux/types.h>
#ifndef UINT32_MAX
#define UINT32_MAX U32_MAX
#endif
#endif
