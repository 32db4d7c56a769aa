/*
 * http/io_uring.h -- the io_uring pieces lib/http/server's second socket
 * backend needs on top of lib/io/uring: a ring per loop thread with a ring of
 * provided receive buffers (IORING_REGISTER_PBUF_RING), so a connection can
 * keep a receive armed for its whole life without holding a buffer of its
 * own while it is idle.
 *
 * The receives lib/http/server arms are multishot ones (Linux 6.0), so
 * http_uring_init refuses older kernels.
 *
 * Buffers: nbufs blocks of buf_size bytes in one allocation, buffer group 0.
 * A receive with IOSQE_BUFFER_SELECT takes one (its id is in the
 * completion's flags), the caller copies the bytes out and gives the block
 * back with http_uring_buf_put at once.  The blocks are zeroed at set-up so
 * that tools which do not see the kernel's writes (valgrind) take them as
 * defined.
 *
 * The buffer ring itself is lib/io/uring's (uring_bufs_*); what is added here
 * is the per-block bookkeeping a connection needs to hold blocks in order.
 *
 * Ownership: struct http_uring owns its ring, its buffer ring and the
 * blocks; http_uring_free releases them (a zeroed or failed struct is
 * fine).  One per thread; not thread-safe.
 */
#ifndef DSYS_HTTP_IO_URING_H
#define DSYS_HTTP_IO_URING_H

#include <stddef.h>
#include <stdint.h>

#include "io/uring.h"

struct http_uring {
	struct uring ring;
	struct uring_bufs bufs;         /* the provided-buffer ring, group bgid */
	uint16_t *next;                 /* per block: the next one a connection holds */
	uint32_t *len;                  /* per block: the bytes the kernel put in it */
	unsigned nbufs, buf_size;
	uint16_t bgid;
};

/* Set up a ring (sq_entries, cq_entries) and register nbufs (a power of
 * two) receive buffers of buf_size bytes as group 0.  Returns 0 or -errno
 * (-ENOSYS, -EPERM where io_uring is missing or disabled; -EOPNOTSUPP on
 * kernels before 6.0, which lack multishot receives; -EINVAL where the
 * kernel lacks provided-buffer rings). */
int http_uring_init(struct http_uring *u, unsigned sq_entries, unsigned cq_entries,
                    unsigned nbufs, unsigned buf_size);
void http_uring_free(struct http_uring *u);

/* Could a ring be set up here?  0, or the -errno http_uring_init gives. */
int http_uring_probe(void);

static inline char *http_uring_buf(struct http_uring *u, unsigned bid)
{
	return uring_buf(&u->bufs, bid);
}

/* Give block bid back to the kernel. */
static inline void http_uring_buf_put(struct http_uring *u, unsigned bid)
{
	uring_buf_put(&u->bufs, bid);
}

#endif
