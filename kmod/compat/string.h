/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel stand-in for <string.h>. */
#ifndef VSHM_COMPAT_STRING_H
#define VSHM_COMPAT_STRING_H
#include <linux/string.h>
#endif
