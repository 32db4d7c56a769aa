/*
 * http_io_uring.c -- a ring plus a provided-buffer ring for lib/http_server.
 *
 * The buffer ring is memory we map ourselves (anonymous, page aligned) and
 * register with IORING_REGISTER_PBUF_RING; the kernel takes blocks from its
 * head, we put them back at its tail (http_uring_buf_put).  Everything
 * else -- submission, completion -- is lib/uring's.  These helpers could
 * move to lib/uring once a second user needs provided buffers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "http_io_uring.h"

static int sys_register(int fd, unsigned op, void *arg, unsigned nr)
{
	return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

/* Multishot receives (what lib/http_server arms per connection) came in
 * Linux 6.0; earlier kernels have io_uring and buffer rings (5.19) but
 * would fail every receive, and no feature bit tells. */
static bool kernel_has_multishot_recv(void)
{
	struct utsname un;
	unsigned major = 0;
	if (uname(&un) < 0 || sscanf(un.release, "%u.", &major) != 1)
		return false;
	return major >= 6;
}

int http_uring_init(struct http_uring *u, unsigned sq_entries, unsigned cq_entries,
                    unsigned nbufs, unsigned buf_size)
{
	memset(u, 0, sizeof *u);
	u->ring.fd = -1;
	if (nbufs == 0 || (nbufs & (nbufs - 1)) || nbufs > 32768 || buf_size == 0)
		return -EINVAL;
	if (!kernel_has_multishot_recv())
		return -EOPNOTSUPP;
	int r = uring_init(&u->ring, sq_entries, cq_entries);
	if (r < 0)
		return r;
	u->nbufs = nbufs;
	u->buf_size = buf_size;
	u->br_len = (nbufs * sizeof(struct io_uring_buf) + 4095) & ~(size_t)4095;
	void *m = mmap(NULL, u->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	u->br = m;
	u->bufs = calloc(nbufs, buf_size);
	u->next = calloc(nbufs, sizeof *u->next);
	u->len = calloc(nbufs, sizeof *u->len);
	if (!u->bufs || !u->next || !u->len) {
		r = -ENOMEM;
		goto fail;
	}
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = nbufs;
	reg.bgid = u->bgid;
	if (sys_register(u->ring.fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
		r = -errno;
		goto fail;
	}
	for (unsigned i = 0; i < nbufs; i++)
		http_uring_buf_put(u, i);
	return 0;
fail:
	http_uring_free(u);
	return r;
}

void http_uring_free(struct http_uring *u)
{
	/* closing the ring unregisters the buffer ring */
	uring_free(&u->ring);
	if (u->br)
		munmap(u->br, u->br_len);
	free(u->bufs);
	free(u->next);
	free(u->len);
	memset(u, 0, sizeof *u);
	u->ring.fd = -1;
}

int http_uring_probe(void)
{
	struct http_uring u;
	int r = http_uring_init(&u, 4, 8, 1, 64);
	http_uring_free(&u);
	return r;
}
