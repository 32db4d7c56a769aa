/*
 * http/io_uring.c -- a ring plus a provided-buffer ring for lib/http/server.
 *
 * Submission, completion and the provided-buffer ring are lib/io/uring's; this
 * adds the check that the kernel has multishot receives and the per-block
 * arrays a connection uses to hold blocks in order.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "http/io_uring.h"

/* Multishot receives (what lib/http/server arms per connection) came in
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
	/* set up here, used by a loop thread: disabled until that thread
	 * enables it (uring_enable), which makes it the single issuer; task
	 * work deferred to its waits, so completions never interrupt it */
	int r = uring_init_flags(&u->ring, sq_entries, cq_entries,
	                         IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	                         IORING_SETUP_R_DISABLED);
	if (r == -EINVAL)
		r = -EOPNOTSUPP;   /* before 6.1 */
	if (r < 0)
		return r;
	u->nbufs = nbufs;
	u->buf_size = buf_size;
	u->next = calloc(nbufs, sizeof *u->next);
	u->len = calloc(nbufs, sizeof *u->len);
	if (!u->next || !u->len) {
		r = -ENOMEM;
		goto fail;
	}
	r = uring_bufs_init(&u->ring, &u->bufs, u->bgid, nbufs, buf_size);
	if (r < 0)
		goto fail;
	/* defined for valgrind, which does not see the kernel write them */
	memset(u->bufs.base, 0, (size_t)nbufs * buf_size);
	return 0;
fail:
	http_uring_free(u);
	return r;
}

void http_uring_free(struct http_uring *u)
{
	uring_bufs_free(&u->ring, &u->bufs);
	uring_free(&u->ring);
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
