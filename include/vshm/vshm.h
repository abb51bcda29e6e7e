/* SPDX-License-Identifier: MIT */
/*
 * libvshm: virtio over a restricted shared window.
 *
 * Conventions for the whole library:
 *  - functions return 0, a count, or a negative errno; the library never sets
 *    errno and never exits or aborts on peer input;
 *  - vshm_drv_* runs on the driver side, vshm_dev_* on the device side;
 *  - every address exchanged with the peer is a window offset.
 */
#ifndef VSHM_VSHM_H
#define VSHM_VSHM_H

#include <vshm/abi.h>
#include <vshm/window.h>
#include <vshm/vq.h>
#include <vshm/bounce.h>
#include <vshm/heap.h>
#include <vshm/msg.h>
#include <vshm/doorbell.h>
#include <vshm/mbox.h>
#include <vshm/session.h>
#include <vshm/devmodel.h>
#include <vshm/devrt.h>
#include <vshm/drvrt.h>
#include <vshm/drivers.h>
#include <vshm/hub.h>
#include <vshm/attach.h>

#define VSHM_VERSION_STRING "0.1.0"



#endif
