/*
 * io/uring.c -- io_uring set-up, submission and completion on raw syscalls.
 *
 * The three mappings are the kernel's layout (io_uring_setup(2)): the
 * submission ring's indices and index array, the submission entries, and
 * the completion ring.  Entries are prepared at sq_local_tail, published
 * by a release store of the shared tail (so the kernel sees whole
 * entries), and submitted in one io_uring_enter(2).  Completions are read
 * with an acquire load of the shared tail and released by storing the head.
 *
 * A thread may also wait in the ring (uring_submit_wait): one
 * io_uring_enter(2) submits and sleeps until completions or a timeout
 * (IORING_ENTER_EXT_ARG, so the timeout needs no timer of its own), the
 * only way completions appear at all on a DEFER_TASKRUN ring.  Registering
 * the ring's fd and the sockets (a sparse file table) spares the kernel a
 * file lookup and a reference count per call and per operation, which in
 * a multi-threaded process are atomic operations.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/uring.h"

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned op, void *arg, unsigned n)
{
	return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

/* Newer than Debian 12's <linux/io_uring.h> (6.1); the values are ABI. */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

/* io_uring_getevents_arg as of 6.12: the pad became min_wait_usec. */
struct uring_getevents_arg {
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t min_wait_usec;
	uint64_t ts;
};

static int ring_setup(struct uring *r, unsigned sq_entries, unsigned cq_entries, uint32_t flags)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE | flags;
	p.cq_entries = cq_entries;
	int fd = sys_setup(sq_entries, &p);
	if (fd < 0 && errno == EINVAL && (flags & IORING_SETUP_COOP_TASKRUN) &&
	    !(flags & ~IORING_SETUP_COOP_TASKRUN)) {
		/* COOP_TASKRUN is 5.19: without it on older kernels */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		fd = sys_setup(sq_entries, &p);
	}
	if (fd < 0)
		return -errno;
	r->fd = fd;
	r->enter_fd = fd;
	r->features = p.features;
	r->setup_flags = p.flags;
	r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_map_len > r->sq_map_len)
			r->sq_map_len = r->cq_map_len;
		r->cq_map_len = r->sq_map_len;
	}
	r->sq_map = mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
	                 fd, IORING_OFF_SQ_RING);
	if (r->sq_map == MAP_FAILED) {
		r->sq_map = NULL;
		goto fail;
	}
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = mmap(NULL, r->cq_map_len, PROT_READ | PROT_WRITE,
		                 MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
		if (r->cq_map == MAP_FAILED) {
			r->cq_map = NULL;
			goto fail;
		}
	}
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
	               fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		r->sqes = NULL;
		goto fail;
	}
	char *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_entries = *(unsigned *)(sq + p.sq_off.ring_entries);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	/* the index array maps ring slots to entries one to one, once */
	for (unsigned i = 0; i < r->sq_entries; i++)
		r->sq_array[i] = i;
	r->sq_local_tail = *r->sq_tail;
	return 0;
fail:
	{
		int err = -errno;
		uring_free(r);
		return err;
	}
}

int uring_init(struct uring *r, unsigned sq_entries, unsigned cq_entries)
{
	/* COOP_TASKRUN: completions are not signalled by interrupting the
	 * thread (an IPI when it runs) */
	return ring_setup(r, sq_entries, cq_entries, IORING_SETUP_COOP_TASKRUN);
}

int uring_init_flags(struct uring *r, unsigned sq_entries, unsigned cq_entries, uint32_t flags)
{
	return ring_setup(r, sq_entries, cq_entries, flags);
}

void uring_free(struct uring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_map_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_map_len);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

unsigned uring_sq_space(const struct uring *r)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	return r->sq_entries - (r->sq_local_tail - head);
}

struct io_uring_sqe *uring_sqe(struct uring *r)
{
	if (uring_sq_space(r) == 0)
		return NULL;
	struct io_uring_sqe *sqe = &r->sqes[r->sq_local_tail & r->sq_mask];
	memset(sqe, 0, sizeof(*sqe));
	r->sq_local_tail++;
	r->to_submit++;
	return sqe;
}

int uring_submit(struct uring *r)
{
	if (r->to_submit == 0)
		return 0;
	__atomic_store_n(r->sq_tail, r->sq_local_tail, __ATOMIC_RELEASE);
	unsigned n = r->to_submit;
	int ret;
	do
		ret = sys_enter(r->enter_fd, n, 0, r->enter_flags);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	r->to_submit -= (unsigned)ret < n ? (unsigned)ret : n;
	return ret;
}

int uring_submit_wait(struct uring *r, unsigned min_complete, uint64_t min_wait_ns,
                      uint64_t timeout_ns)
{
	if (r->to_submit)
		__atomic_store_n(r->sq_tail, r->sq_local_tail, __ATOMIC_RELEASE);
	unsigned n = r->to_submit;
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(timeout_ns / 1000000000u),
		.tv_nsec = (long long)(timeout_ns % 1000000000u),
	};
	struct uring_getevents_arg arg = {
		.sigmask_sz = _NSIG / 8,
		.ts = timeout_ns == UINT64_MAX ? 0 : (uint64_t)(uintptr_t)&ts,
	};
	if (min_wait_ns && (r->features & IORING_FEAT_MIN_TIMEOUT))
		arg.min_wait_usec = (uint32_t)(min_wait_ns / 1000 ? min_wait_ns / 1000 : 1);
	else if (min_wait_ns && min_complete > 1)
		min_complete = 1;  /* no batch wait here: do not wait for all of it */
	unsigned flags = r->enter_flags | IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int ret = (int)syscall(__NR_io_uring_enter, r->enter_fd, n, min_complete, flags,
	                       &arg, sizeof arg);
	if (ret < 0) {
		/* a timeout or a signal ended the wait: nothing was submitted
		 * (the kernel reports the wait's error only then) */
		if (errno == ETIME || errno == EINTR)
			return 0;
		return -errno;
	}
	r->to_submit -= (unsigned)ret < n ? (unsigned)ret : n;
	return ret;
}

int uring_enable(struct uring *r)
{
	return sys_register(r->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0 ? -errno : 0;
}

int uring_register_ring(struct uring *r)
{
	struct io_uring_rsrc_update up = { .offset = -1U, .data = (uint64_t)r->fd };
	int ret = sys_register(r->fd, IORING_REGISTER_RING_FDS, &up, 1);
	if (ret != 1)
		return ret < 0 ? -errno : -EIO;
	r->enter_fd = (int)up.offset;
	r->enter_flags = IORING_ENTER_REGISTERED_RING;
	return 0;
}

int uring_unregister_ring(struct uring *r)
{
	if (!(r->enter_flags & IORING_ENTER_REGISTERED_RING))
		return 0;
	struct io_uring_rsrc_update up = { .offset = (unsigned)r->enter_fd };
	int ret = sys_register(r->fd, IORING_UNREGISTER_RING_FDS, &up, 1);
	r->enter_fd = r->fd;
	r->enter_flags = 0;
	return ret < 0 ? -errno : 0;
}

int uring_files_init(struct uring *r, unsigned n)
{
	struct io_uring_rsrc_register reg = { .nr = n, .flags = IORING_RSRC_REGISTER_SPARSE };
	if (sys_register(r->fd, IORING_REGISTER_FILES2, &reg, sizeof reg) < 0)
		return -errno;
	r->n_files = n;
	return 0;
}

int uring_file_set(struct uring *r, unsigned slot, int fd)
{
	if (slot >= r->n_files)
		return -EINVAL;
	int32_t f = fd;
	struct io_uring_rsrc_update2 up = { .offset = slot, .data = (uint64_t)(uintptr_t)&f, .nr = 1 };
	int ret = sys_register(r->fd, IORING_REGISTER_FILES_UPDATE2, &up, sizeof up);
	if (ret != 1)
		return ret < 0 ? -errno : -EIO;
	return 0;
}

int uring_bufs_init(struct uring *r, struct uring_bufs *b, uint16_t bgid, unsigned entries,
                    unsigned size)
{
	memset(b, 0, sizeof(*b));
	if (entries == 0 || entries > 32768 || (entries & (entries - 1)) || size == 0)
		return -EINVAL;
	b->ring_len = entries * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, b->ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ring == MAP_FAILED)
		return -ENOMEM;
	b->br = ring;
	/* mapped, not malloc'd: the kernel hands out zeroed pages when a
	 * receive first writes into them, so a fresh server does not fault in
	 * and clear every block at start-up (1024 x 2 KiB: half its start-up
	 * CPU, taken from the old server's core in a restart), and valgrind
	 * counts mapped memory as defined, which it cannot see the kernel write */
	b->base_len = (size_t)entries * size;
	void *base = mmap(NULL, b->base_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		b->base_len = 0;
		uring_bufs_free(r, b);
		return -ENOMEM;
	}
	b->base = base;
	b->entries = entries;
	b->mask = entries - 1;
	b->size = size;
	b->bgid = bgid;
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)ring, .ring_entries = entries, .bgid = bgid,
	};
	if (sys_register(r->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
		int err = -errno;
		b->entries = 0;  /* not registered: nothing to unregister */
		uring_bufs_free(r, b);
		return err;
	}
	for (unsigned i = 0; i < entries; i++)
		uring_buf_put(b, i);
	return 0;
}

void uring_bufs_free(struct uring *r, struct uring_bufs *b)
{
	if (b->entries && r->fd >= 0) {
		struct io_uring_buf_reg reg = { .bgid = b->bgid };
		sys_register(r->fd, IORING_UNREGISTER_PBUF_RING, &reg, 1);
	}
	if (b->br)
		munmap(b->br, b->ring_len);
	if (b->base)
		munmap(b->base, b->base_len);
	memset(b, 0, sizeof(*b));
}
