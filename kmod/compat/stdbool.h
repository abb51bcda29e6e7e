/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel stand-in for <stdbool.h>: bool comes with <linux/types.h>. */
#ifndef VSHM_COMPAT_STDBOOL_H
#define VSHM_COMPAT_STDBOOL_H
#include <linux/types.h>
#endif
