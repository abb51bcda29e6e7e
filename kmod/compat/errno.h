/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel stand-in for <errno.h>.  The codec returns -ENOTSUP for a transport
 * message id revision 1 does not define; the kernel spells that EOPNOTSUPP.
 */
#ifndef VSHM_COMPAT_ERRNO_H
#define VSHM_COMPAT_ERRNO_H
#include <linux/errno.h>
#ifndef ENOTSUP
#define ENOTSUP EOPNOTSUPP
#endif
#endif
