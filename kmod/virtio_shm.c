// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_shm: the Linux guest transport of vshm.
 *
 * vshm carries virtio over one restricted shared window.  In a QEMU guest
 * the window is BAR2 of an ivshmem-doorbell device (PCI 1af4:1110,
 * revision 1) whose server is a vshm hub.  A doorbell is a write of
 * (peer << 16) | vector to BAR0 + 0x0c; the doorbells other peers ring for
 * us arrive as MSI-X vectors, one per ivshmem vector (BAR1 holds the table).
 *
 * This file is the PCI layer: it binds the device, maps the registers and
 * the window (write-back, as every other peer maps it), checks the window
 * header against include/vshm/abi.h, takes every MSI-X vector and counts
 * the interrupts of each.  The virtio-msg mailbox driver, the DMA ops and
 * the virtio_device registration are built on struct vshm_pci.
 *
 * sysfs, in the PCI device's directory while the driver is bound:
 *   ivposition   our ivshmem peer id (IVPosition, read once at probe)
 *   vectors      MSI-X vectors in use
 *   window_size  bytes of the window (BAR2)
 *   abi          the window's ABI version, "major.minor"
 *   interrupts   interrupts seen per vector, space-separated, vector 0 first
 *   doorbell     write "PEER VECTOR" to ring that peer's vector (root only)
 * docs/guest.md describes the module and its tests.
 */
#include <linux/atomic.h>
#include <linux/device.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include <vshm/abi.h>

#include "vshm_tp.h"

/* ------------------------------------------------------------------------ */
/* The ivshmem-doorbell device (QEMU docs/specs/ivshmem-spec.rst)           */

#define IVSHMEM_VENDOR_ID	0x1af4
#define IVSHMEM_DEVICE_ID	0x1110
#define IVSHMEM_REVISION	1	/* QEMU >= 2.6: MSI-X only, BAR2 64-bit */

#define IVSHMEM_BAR_REGS	0
#define IVSHMEM_BAR_WINDOW	2

#define IVSHMEM_REGS_SIZE	256
#define IVSHMEM_REG_IVPOSITION	0x08	/* RO: our peer id */
#define IVSHMEM_REG_DOORBELL	0x0c	/* WO: (peer << 16) | vector */

#define IVSHMEM_MAX_PEER	0xffffu

/* ------------------------------------------------------------------------ */
/* Private state                                                            */

struct vshm_pci;

/* One MSI-X vector; entry k is ivshmem vector k. */
struct vshm_vec {
	struct vshm_pci *vp;		/* owner, for the handler */
	unsigned int index;		/* ivshmem vector number */
	int irq;			/* Linux irq, 0 while not requested */
	atomic_long_t count;		/* interrupts handled */
	char name[24];			/* "virtio_shm-vecN", in /proc/interrupts */
	/* Doorbell storms (vshm_pci_vec_irq) */
	unsigned long win_start;	/* jiffies: the current one-second window */
	unsigned int idle, busy;	/* interrupts without / with work in it */
	atomic_t masked;		/* disabled until @unmask runs */
	struct delayed_work unmask;
	atomic_long_t storms;
};

/* One bound ivshmem-doorbell device: everything later layers build on. */
struct vshm_pci {
	struct pci_dev *pdev;		/* the device we are bound to */
	void __iomem *regs;		/* BAR0: the ivshmem registers */
	void *win;			/* BAR2, memremap(MEMREMAP_WB): the window */
	resource_size_t win_size;	/* bytes of BAR2 */
	u32 ivposition;			/* our peer id; fixed for the binding */
	u16 abi_major;			/* of the window we accepted */
	u16 abi_minor;			/* ditto; compatible additions only */
	u32 hub_vectors;		/* the hub's vectors per peer (header) */
	unsigned int nvec;		/* MSI-X vectors allocated, >= 1 */
	struct vshm_vec *vecs;		/* [nvec] */
	struct vshm_tp *tp;		/* the virtio transport (vshm_transport.c) */
};

/*
 * Ring @vector of peer @peer.  writel() is ordered after this CPU's earlier
 * stores to normal memory, so whatever we wrote into the window before
 * ringing is visible to the peer it wakes.  The device drops doorbells for
 * peers or vectors it does not know, silently: they are wake-up hints only.
 */
static void vshm_pci_ring(struct vshm_pci *vp, u16 peer, u16 vector)
{
	writel(((u32)peer << 16) | vector, vp->regs + IVSHMEM_REG_DOORBELL);
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                               */

/*
 * A device can ring our doorbells without end (a doorbell storm): in a
 * one-second window, STORM_IDLE (500) interrupts that found no work, ten times
 * more than those that did, mask the vector for STORM_MASK_MS.  Nothing
 * is lost meanwhile: the transport's watchdog rescans every queue, and an
 * interrupt that arrives while masked is delivered when unmasked.
 */
#define STORM_IDLE	500
#define STORM_MASK_MS	100

static irqreturn_t vshm_pci_vec_irq(int irq, void *data)
{
	struct vshm_vec *v = data;
	bool work;

	atomic_long_inc(&v->count);
	work = vshm_tp_irq(READ_ONCE(v->vp->tp), v->index);
	if (time_after(jiffies, v->win_start + HZ)) {
		v->win_start = jiffies;
		v->idle = 0;
		v->busy = 0;
	}
	if (work) {
		v->busy++;
	} else if (++v->idle >= STORM_IDLE && v->idle / 10 > v->busy &&
		   !atomic_xchg(&v->masked, 1)) {
		disable_irq_nosync(irq);
		atomic_long_inc(&v->storms);
		dev_warn_ratelimited(&v->vp->pdev->dev,
				     "vector %u: %u interrupts without work within a second: a doorbell storm from the device; masked for %u ms, its queues polled meanwhile\n",
				     v->index, v->idle, STORM_MASK_MS);
		schedule_delayed_work(&v->unmask, msecs_to_jiffies(STORM_MASK_MS));
	}
	return IRQ_HANDLED;
}

static void vshm_pci_unmask(struct work_struct *work)
{
	struct vshm_vec *v = container_of(to_delayed_work(work), struct vshm_vec, unmask);

	v->idle = 0;
	v->busy = 0;
	v->win_start = jiffies;
	if (atomic_xchg(&v->masked, 0))
		enable_irq(v->irq);
}

static void vshm_pci_free_irqs(struct vshm_pci *vp)
{
	unsigned int i;

	for (i = 0; i < vp->nvec; i++) {
		struct vshm_vec *v = &vp->vecs[i];

		if (v->irq <= 0)
			continue;
		disable_irq(v->irq);	/* no new storm verdicts */
		cancel_delayed_work_sync(&v->unmask);
		if (atomic_xchg(&v->masked, 0))
			enable_irq(v->irq);
		enable_irq(v->irq);
		free_irq(v->irq, v);
	}
	kfree(vp->vecs);
	vp->vecs = NULL;
	vp->nvec = 0;
	pci_free_irq_vectors(vp->pdev);
}

/*
 * Take every MSI-X vector the device has (ivshmem-doorbell always has the
 * capability; ivshmem-plain never does).  QEMU drops doorbells that arrive
 * before MSI-X is enabled; from then until request_irq() unmasks a vector
 * it latches them in the PBA and delivers them on unmask.  Doorbells are
 * hints: whoever sets up on top rescans the shared state afterwards.
 */
static int vshm_pci_setup_irqs(struct vshm_pci *vp)
{
	struct pci_dev *pdev = vp->pdev;
	struct device *dev = &pdev->dev;
	int want, got, err;
	unsigned int i;

	want = pci_msix_vec_count(pdev);
	if (want <= 0) {
		dev_err(dev, "no MSI-X vectors: ivshmem-plain has no doorbells; use -device ivshmem-doorbell,chardev=...,vectors=N\n");
		return -ENODEV;
	}
	got = pci_alloc_irq_vectors(pdev, 1, want, PCI_IRQ_MSIX);
	if (got < 0) {
		dev_err(dev, "cannot allocate MSI-X vectors (%d of them): %d\n", want, got);
		return got;
	}
	if (got < want)
		dev_warn(dev, "only %d of %d MSI-X vectors; doorbells on the others are lost\n",
			 got, want);

	vp->vecs = kcalloc(got, sizeof(*vp->vecs), GFP_KERNEL);
	if (!vp->vecs) {
		pci_free_irq_vectors(pdev);
		return -ENOMEM;
	}
	vp->nvec = got;
	for (i = 0; i < vp->nvec; i++) {
		struct vshm_vec *v = &vp->vecs[i];
		int irq = pci_irq_vector(pdev, i);

		v->vp = vp;
		v->index = i;
		atomic_long_set(&v->count, 0);
		atomic_long_set(&v->storms, 0);
		atomic_set(&v->masked, 0);
		v->win_start = jiffies;
		INIT_DELAYED_WORK(&v->unmask, vshm_pci_unmask);
		snprintf(v->name, sizeof(v->name), KBUILD_MODNAME "-vec%u", i);
		if (irq < 0) {
			err = irq;
			goto err_free;
		}
		err = request_irq(irq, vshm_pci_vec_irq, 0, v->name, v);
		if (err) {
			dev_err(dev, "cannot request irq %d for vector %u: %d\n", irq, i, err);
			goto err_free;
		}
		v->irq = irq;
	}
	return 0;

err_free:
	vshm_pci_free_irqs(vp);
	return err;
}

/* ------------------------------------------------------------------------ */
/* The window header                                                        */

/*
 * The hub formats the header before any peer can map the window, and no
 * peer writes the fields read here; still, each is loaded once and checked
 * before use, like everything in shared memory.
 */
static int vshm_pci_check_window(struct vshm_pci *vp)
{
	const struct vshm_win_hdr *hdr = vp->win;
	struct device *dev = &vp->pdev->dev;
	u64 magic = le64_to_cpu(READ_ONCE(hdr->magic));
	u16 major = le16_to_cpu(READ_ONCE(hdr->abi_major));
	u16 minor = le16_to_cpu(READ_ONCE(hdr->abi_minor));
	u32 hdr_size = le32_to_cpu(READ_ONCE(hdr->hdr_size));
	u64 win_size = le64_to_cpu(READ_ONCE(hdr->win_size));

	if (magic != VSHM_MAGIC) {
		dev_err(dev, "BAR2 is not a vshm window: magic %#018llx, expected %#018llx (\"VSHMWIN1\"); is the ivshmem server a vshm hub?\n",
			magic, (u64)VSHM_MAGIC);
		return -ENODEV;
	}
	if (major != VSHM_ABI_MAJOR) {
		dev_err(dev, "window ABI %u.%u is not supported: this module speaks ABI %u.x\n",
			major, minor, VSHM_ABI_MAJOR);
		return -EPROTO;
	}
	if (hdr_size != VSHM_HDR_SIZE || win_size != vp->win_size) {
		dev_err(dev, "window header says %llu bytes with a %u-byte header; BAR2 is %llu bytes\n",
			win_size, hdr_size, (u64)vp->win_size);
		return -EPROTO;
	}
	vp->abi_major = major;
	vp->abi_minor = minor;
	vp->hub_vectors = le32_to_cpu(READ_ONCE(hdr->vectors));
	return 0;
}

/* ------------------------------------------------------------------------ */
/* sysfs                                                                    */

static struct vshm_pci *dev_to_vp(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t ivposition_show(struct device *dev, struct device_attribute *attr,
			       char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_vp(dev)->ivposition);
}
static DEVICE_ATTR_RO(ivposition);

static ssize_t vectors_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_vp(dev)->nvec);
}
static DEVICE_ATTR_RO(vectors);

static ssize_t window_size_show(struct device *dev, struct device_attribute *attr,
				char *buf)
{
	return sysfs_emit(buf, "%llu\n", (u64)dev_to_vp(dev)->win_size);
}
static DEVICE_ATTR_RO(window_size);

static ssize_t abi_show(struct device *dev, struct device_attribute *attr,
			char *buf)
{
	struct vshm_pci *vp = dev_to_vp(dev);

	return sysfs_emit(buf, "%u.%u\n", vp->abi_major, vp->abi_minor);
}
static DEVICE_ATTR_RO(abi);

/* One number per vector: @count(vector), space-separated. */
static ssize_t emit_per_vector(struct vshm_pci *vp, char *buf, bool storms)
{
	unsigned int i;
	int len = 0;

	for (i = 0; i < vp->nvec; i++)
		len += sysfs_emit_at(buf, len, "%s%lu", i ? " " : "",
				     atomic_long_read(storms ? &vp->vecs[i].storms : &vp->vecs[i].count));
	len += sysfs_emit_at(buf, len, "\n");
	return len;
}

static ssize_t interrupts_show(struct device *dev, struct device_attribute *attr,
			       char *buf)
{
	return emit_per_vector(dev_to_vp(dev), buf, false);
}
static DEVICE_ATTR_RO(interrupts);

/* Per vector: how many times a doorbell storm had it masked. */
static ssize_t storms_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return emit_per_vector(dev_to_vp(dev), buf, true);
}
static DEVICE_ATTR_RO(storms);

/* "PEER VECTOR", two decimal numbers below 65536; anything else is -EINVAL. */
static int vshm_parse_doorbell(const char *buf, u16 *peer, u16 *vector)
{
	char tmp[24], *s, *first;

	if (strscpy(tmp, buf, sizeof(tmp)) < 0)
		return -EINVAL;
	s = strim(tmp);
	first = strsep(&s, " \t");
	if (!s)
		return -EINVAL;
	if (kstrtou16(first, 10, peer) || kstrtou16(skip_spaces(s), 10, vector))
		return -EINVAL;
	return 0;
}

static ssize_t doorbell_store(struct device *dev, struct device_attribute *attr,
			      const char *buf, size_t count)
{
	u16 peer, vector;

	if (vshm_parse_doorbell(buf, &peer, &vector))
		return -EINVAL;
	vshm_pci_ring(dev_to_vp(dev), peer, vector);
	return count;
}
static DEVICE_ATTR_WO(doorbell);

static struct attribute *vshm_pci_attrs[] = {
	&dev_attr_ivposition.attr,
	&dev_attr_vectors.attr,
	&dev_attr_window_size.attr,
	&dev_attr_abi.attr,
	&dev_attr_interrupts.attr,
	&dev_attr_storms.attr,
	&dev_attr_doorbell.attr,
	NULL,
};
ATTRIBUTE_GROUPS(vshm_pci);

/* ------------------------------------------------------------------------ */
/* PCI driver                                                               */

static int vshm_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	resource_size_t win_start;
	struct vshm_pci *vp;
	int err;

	if (pdev->revision != IVSHMEM_REVISION) {
		dev_err(dev, "ivshmem revision %u is not supported (need %u: QEMU 2.6 or later, -device ivshmem-doorbell)\n",
			pdev->revision, IVSHMEM_REVISION);
		return -ENODEV;
	}

	vp = kzalloc(sizeof(*vp), GFP_KERNEL);
	if (!vp)
		return -ENOMEM;
	vp->pdev = pdev;
	pci_set_drvdata(pdev, vp);

	err = pci_enable_device_mem(pdev);
	if (err) {
		dev_err(dev, "cannot enable the device: %d\n", err);
		goto err_free;
	}
	/* MSI-X messages are memory writes by the device. */
	pci_set_master(pdev);

	err = pci_request_regions(pdev, KBUILD_MODNAME);
	if (err) {
		dev_err(dev, "cannot claim the BARs (another driver?): %d\n", err);
		goto err_disable;
	}

	if (!(pci_resource_flags(pdev, IVSHMEM_BAR_REGS) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, IVSHMEM_BAR_REGS) < IVSHMEM_REGS_SIZE) {
		dev_err(dev, "BAR0 is not a %d-byte register block\n", IVSHMEM_REGS_SIZE);
		err = -ENODEV;
		goto err_release;
	}
	vp->regs = pci_iomap(pdev, IVSHMEM_BAR_REGS, IVSHMEM_REGS_SIZE);
	if (!vp->regs) {
		dev_err(dev, "cannot map BAR0\n");
		err = -ENOMEM;
		goto err_release;
	}

	win_start = pci_resource_start(pdev, IVSHMEM_BAR_WINDOW);
	vp->win_size = pci_resource_len(pdev, IVSHMEM_BAR_WINDOW);
	if (!(pci_resource_flags(pdev, IVSHMEM_BAR_WINDOW) & IORESOURCE_MEM) ||
	    vp->win_size < VSHM_WIN_MIN_SIZE) {
		dev_err(dev, "BAR2 (the window) is missing or smaller than %llu bytes\n",
			(u64)VSHM_WIN_MIN_SIZE);
		err = -ENODEV;
		goto err_unmap_regs;
	}
	/* Write-back: the window is RAM that every peer maps cached. */
	vp->win = memremap(win_start, vp->win_size, MEMREMAP_WB);
	if (!vp->win) {
		dev_err(dev, "cannot map BAR2 (%llu bytes) write-back\n", (u64)vp->win_size);
		err = -ENOMEM;
		goto err_unmap_regs;
	}

	vp->ivposition = readl(vp->regs + IVSHMEM_REG_IVPOSITION);
	if (vp->ivposition > IVSHMEM_MAX_PEER) {
		dev_err(dev, "IVPosition %#x is not a peer id\n", vp->ivposition);
		err = -ENODEV;
		goto err_unmap_win;
	}

	err = vshm_pci_check_window(vp);
	if (err)
		goto err_unmap_win;

	err = vshm_pci_setup_irqs(vp);
	if (err)
		goto err_unmap_win;
	if (vp->hub_vectors != vp->nvec)
		dev_warn(dev, "the hub has %u vectors per peer, the device %u; use vectors=%u\n",
			 vp->hub_vectors, vp->nvec, vp->hub_vectors);

	dev_info(dev, "vshm window of %llu bytes (ABI %u.%u), peer id %u, %u vectors\n",
		 (u64)vp->win_size, vp->abi_major, vp->abi_minor, vp->ivposition, vp->nvec);

	{
		struct vshm_tp_params tpp = {
			.pdev = pdev, .win = vp->win, .win_size = vp->win_size, .regs = vp->regs,
			.ivposition = vp->ivposition, .hub_vectors = vp->hub_vectors,
			.nvec = vp->nvec,
		};
		struct vshm_tp *tp = vshm_tp_create(&tpp);

		if (IS_ERR(tp)) {
			err = PTR_ERR(tp);
			vshm_pci_free_irqs(vp);
			goto err_unmap_win;
		}
		WRITE_ONCE(vp->tp, tp);
	}
	return 0;

err_unmap_win:
	memunmap(vp->win);
err_unmap_regs:
	pci_iounmap(pdev, vp->regs);
err_release:
	pci_release_regions(pdev);
err_disable:
	pci_clear_master(pdev);
	pci_disable_device(pdev);
err_free:
	pci_set_drvdata(pdev, NULL);
	kfree(vp);
	return err;
}

/* The sysfs attributes are gone before this runs (driver core). */
static void vshm_pci_remove(struct pci_dev *pdev)
{
	struct vshm_pci *vp = pci_get_drvdata(pdev);
	struct vshm_tp *tp = vp->tp;

	/* The virtio devices go first, while their interrupts still arrive. */
	vshm_tp_stop(tp);
	WRITE_ONCE(vp->tp, NULL);
	vshm_pci_free_irqs(vp);		/* waits for running handlers */
	vshm_tp_free(tp);
	memunmap(vp->win);
	pci_iounmap(pdev, vp->regs);
	pci_release_regions(pdev);
	pci_clear_master(pdev);
	pci_disable_device(pdev);
	pci_set_drvdata(pdev, NULL);
	kfree(vp);
}

static const struct pci_device_id vshm_pci_ids[] = {
	{ PCI_DEVICE(IVSHMEM_VENDOR_ID, IVSHMEM_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, vshm_pci_ids);

static struct pci_driver vshm_pci_driver = {
	.name		= KBUILD_MODNAME,
	.id_table	= vshm_pci_ids,
	.probe		= vshm_pci_probe,
	.remove		= vshm_pci_remove,
	.dev_groups	= vshm_pci_groups,
};

static int __init vshm_init(void)
{
	return pci_register_driver(&vshm_pci_driver);
}

static void __exit vshm_exit(void)
{
	pci_unregister_driver(&vshm_pci_driver);
}

module_init(vshm_init);
module_exit(vshm_exit);

MODULE_DESCRIPTION("vshm: virtio over a restricted shared window (ivshmem-doorbell transport)");
MODULE_LICENSE("GPL");
