/*
 * io/uring.h -- a minimal io_uring on the raw system calls (no liburing).
 *
 * Why: a load generator's cost per request is mostly system calls; with
 * io_uring the sends and receives of every connection of a loop iteration
 * go to the kernel in one io_uring_enter(2), and their results come back
 * in a shared ring, so the per-request system calls drop from two (a read
 * and a write) to a fraction of one.  The ring's fd is pollable: a libuv
 * loop watches it with a uv_poll_t and drains completions when it is
 * readable, so timers, signals and everything else stay on libuv.
 *
 * The API is the three steps of the ring: get a submission entry
 * (uring_sqe, zeroed), submit what was prepared (uring_submit, one system
 * call for all of them), and take completions (uring_peek / uring_advance,
 * no system call).  Requests are identified by the 64-bit user_data the
 * caller puts in each entry.
 *
 * Ownership: struct uring owns the ring fd and its three mappings;
 * uring_free() releases them (a zeroed or failed struct is fine).  Not
 * thread-safe: one ring per thread.
 */
#ifndef DSYS_URING_H
#define DSYS_URING_H

#include <linux/io_uring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uring {
	int fd;                        /* -1 when not set up */
	unsigned *sq_head, *sq_tail, sq_mask, sq_entries, *sq_array;
	struct io_uring_sqe *sqes;
	unsigned *cq_head, *cq_tail, cq_mask;
	struct io_uring_cqe *cqes;
	unsigned sq_local_tail;        /* entries prepared, not yet published */
	unsigned to_submit;            /* published, not yet submitted */
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len, sqes_len;
	uint32_t features;             /* IORING_FEAT_* the kernel reported */
	uint32_t setup_flags;          /* IORING_SETUP_* it accepted */
	int enter_fd;                  /* what io_uring_enter takes: fd, or the registered index */
	unsigned enter_flags;          /* IORING_ENTER_REGISTERED_RING once registered */
	unsigned n_files;              /* slots of the registered file table, 0 when none */
};

/* Set up a ring of sq_entries submissions (rounded up to a power of two
 * by the kernel) and cq_entries completions.  Returns 0 or -errno
 * (-ENOSYS or -EPERM where io_uring is missing or disabled). */
int uring_init(struct uring *r, unsigned sq_entries, unsigned cq_entries);
void uring_free(struct uring *r);

/* A zeroed submission entry, or NULL when the ring is full (submit first). */
struct io_uring_sqe *uring_sqe(struct uring *r);

/* Hand every prepared entry to the kernel.  Returns how many it took, or
 * -errno. */
int uring_submit(struct uring *r);

/* The oldest completion, or NULL; uring_advance() consumes it. */
static inline struct io_uring_cqe *uring_peek(struct uring *r)
{
	unsigned head = *r->cq_head;
	unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
	if (head == tail)
		return NULL;
	return &r->cqes[head & r->cq_mask];
}

static inline void uring_advance(struct uring *r)
{
	__atomic_store_n(r->cq_head, *r->cq_head + 1, __ATOMIC_RELEASE);
}

/* Submission entries still free. */
unsigned uring_sq_space(const struct uring *r);

/* ---- for a thread whose loop waits in the ring itself ----
 *
 * uring_init_flags: uring_init with extra IORING_SETUP_* flags, e.g.
 * SINGLE_ISSUER | DEFER_TASKRUN: completions are then posted only while
 * the creating thread is inside uring_submit_wait (task work runs when
 * asked, never by interrupting the thread), so such a ring must be set up
 * by the thread that uses it, and its fd is of no use to epoll.  Returns
 * -EINVAL when the kernel refuses the flags (the caller may fall back to
 * uring_init). */
int uring_init_flags(struct uring *r, unsigned sq_entries, unsigned cq_entries, uint32_t flags);

/* Register the ring's own fd (IORING_REGISTER_RING_FDS, 5.18): every later
 * io_uring_enter skips the fd lookup.  0 or -errno (harmless to ignore:
 * the ring keeps working through its fd). */
int uring_register_ring(struct uring *r);

/* Undo uring_register_ring, on the thread that registered: the
 * registration holds the ring until that thread exits, which for a
 * program's main thread is the end of the program. */
int uring_unregister_ring(struct uring *r);

/* Enable a ring set up with IORING_SETUP_R_DISABLED: with SINGLE_ISSUER,
 * the calling thread becomes the one that submits (so a ring can be set up
 * and given its buffers on one thread, and used on another).  Returns 0 or
 * -errno. */
int uring_enable(struct uring *r);

/* Submit what was prepared and wait until at least min_complete
 * completions are in the ring, or timeout_ns has passed (UINT64_MAX: no
 * limit).  With min_wait_ns > 0 and a kernel that has IORING_FEAT_MIN_TIMEOUT
 * (6.12), waiting stops after min_wait_ns as soon as one completion is in
 * (min_complete is then a batch size worth waiting min_wait_ns for; on
 * older kernels such a wait is for one completion).
 * Returns the number submitted (0 on a timeout or a signal), or -errno. */
int uring_submit_wait(struct uring *r, unsigned min_complete, uint64_t min_wait_ns,
                      uint64_t timeout_ns);

/* A sparse table of n registered files (IORING_REGISTER_FILES2, 5.19):
 * entries with IOSQE_FIXED_FILE name a slot instead of an fd and skip the
 * fd lookup and reference count per operation.  uring_file_set puts fd in
 * slot (the table holds its own reference: close(fd) alone does not end
 * the socket) or empties it with fd -1.  0 or -errno. */
int uring_files_init(struct uring *r, unsigned n);
int uring_file_set(struct uring *r, unsigned slot, int fd);

/* A ring of provided buffers (IORING_REGISTER_PBUF_RING, 5.19), for
 * receives that pick their buffer when data arrives (IOSQE_BUFFER_SELECT
 * with buf_group = bgid; multishot receives need them): `entries` buffers
 * (a power of two, at most 32768) of `size` bytes each.  A completion with
 * IORING_CQE_F_BUFFER names its buffer in the upper 16 bits of its flags;
 * the caller reads it with uring_buf() and hands it back with
 * uring_buf_put() once done.  struct uring_bufs owns the ring and the
 * buffers; uring_bufs_free() unregisters and frees them (a zeroed struct
 * is fine).  0 or -errno (-EINVAL on kernels without buffer rings). */
struct uring_bufs {
	struct io_uring_buf_ring *br;
	char *base;                    /* entries * size bytes, mapped */
	unsigned entries, mask, size;
	uint16_t bgid;
	uint16_t tail;                 /* local copy of the shared tail */
	size_t ring_len;
	size_t base_len;               /* the mapping base points to */
};

int uring_bufs_init(struct uring *r, struct uring_bufs *b, uint16_t bgid, unsigned entries,
                    unsigned size);
void uring_bufs_free(struct uring *r, struct uring_bufs *b);

static inline char *uring_buf(const struct uring_bufs *b, unsigned bid)
{
	return b->base + (size_t)bid * b->size;
}

/* Give buffer bid back to the kernel. */
static inline void uring_buf_put(struct uring_bufs *b, unsigned bid)
{
	struct io_uring_buf *e = &b->br->bufs[b->tail & b->mask];
	e->addr = (uint64_t)(uintptr_t)uring_buf(b, bid);
	e->len = b->size;
	e->bid = (uint16_t)bid;
	b->tail++;
	__atomic_store_n(&b->br->tail, b->tail, __ATOMIC_RELEASE);
}

#endif
