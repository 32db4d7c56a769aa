/*
 * uring.c -- io_uring set-up, submission and completion on raw syscalls.
 *
 * The three mappings are the kernel's layout (io_uring_setup(2)): the
 * submission ring's indices and index array, the submission entries, and
 * the completion ring.  Entries are prepared at sq_local_tail, published
 * by a release store of the shared tail (so the kernel sees whole
 * entries), and submitted in one io_uring_enter(2).  Completions are read
 * with an acquire load of the shared tail and released by storing the head.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uring.h"

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

int uring_init(struct uring *r, unsigned sq_entries, unsigned cq_entries)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	/* COOP_TASKRUN: completions are not signalled by interrupting the
	 * thread (an IPI when it runs); it is a 5.19 flag, so without it on
	 * older kernels */
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = cq_entries;
	int fd = sys_setup(sq_entries, &p);
	if (fd < 0 && errno == EINVAL) {
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		fd = sys_setup(sq_entries, &p);
	}
	if (fd < 0)
		return -errno;
	r->fd = fd;
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
		ret = sys_enter(r->fd, n, 0, 0);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	r->to_submit -= (unsigned)ret < n ? (unsigned)ret : n;
	return ret;
}
