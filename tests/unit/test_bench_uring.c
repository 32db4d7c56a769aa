/*
 * test_bench_uring.c -- what dsys-bench's ring loop asks of lib/io/uring
 * beyond the basic ring: a SINGLE_ISSUER | DEFER_TASKRUN ring set up by
 * the thread that uses it, its fd registered, sockets in a sparse table of
 * registered files, waiting in the ring for a completion or a timeout
 * (uring_submit_wait), and a ring of provided buffers for a multishot
 * receive (uring_bufs).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "tap.h"
#include "io/uring.h"

int main(void)
{
	struct uring r;
	int e = uring_init_flags(&r, 8, 32, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (e == -ENOSYS || e == -EPERM || e == -EINVAL) {
		/* dsys-bench uses a plain ring or libuv there */
		uring_free(&r);
		return tap_skip_all("no SINGLE_ISSUER | DEFER_TASKRUN ring here");
	}
	is_int(e, 0, "a SINGLE_ISSUER | DEFER_TASKRUN ring is set up");
	ok(r.setup_flags & IORING_SETUP_DEFER_TASKRUN, "and says it defers task work");
	is_int(uring_register_ring(&r), 0, "its fd is registered");
	ok(r.enter_flags == IORING_ENTER_REGISTERED_RING && r.enter_fd >= 0,
	   "and io_uring_enter takes the registered index");

	/* a wait with nothing in the ring ends at its timeout */
	uint64_t t0 = uv_hrtime();
	is_int(uring_submit_wait(&r, 1, 0, 2000000), 0, "a wait with nothing to do times out: 0");
	ok(uv_hrtime() - t0 >= 1500000, "after about its 2 ms");
	ok(uring_peek(&r) == NULL, "with no completion");

	/* a no-op is submitted and completes within one wait */
	struct io_uring_sqe *sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_NOP;
	sqe->user_data = 7;
	is_int(uring_submit_wait(&r, 1, 0, UINT64_MAX), 1, "submit and wait hands over the no-op");
	struct io_uring_cqe *cqe = uring_peek(&r);
	ok(cqe && cqe->user_data == 7 && cqe->res == 0, "and its completion is there on return");
	uring_advance(&r);
	is_int((int)r.to_submit, 0, "nothing is left to submit");

	/* registered files: a send and a receive by slot */
	is_int(uring_files_init(&r, 4), 0, "a sparse table of 4 files");
	int sv[2];
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "a socketpair");
	is_int(uring_file_set(&r, 0, sv[0]), 0, "one end in slot 0");
	is_int(uring_file_set(&r, 3, sv[1]), 0, "the other in slot 3");
	is_int(uring_file_set(&r, 4, sv[1]), -EINVAL, "slot 4 is outside the table");
	char out[] = "GET / HTTP/1.1\r\n\r\n", in[64];
	sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_RECV;
	sqe->fd = 3;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->addr = (uintptr_t)in;
	sqe->len = sizeof in;
	sqe->user_data = 2;
	is_int(uring_submit_wait(&r, 1, 0, 1000000), 1, "a receive on an empty socket waits");
	ok(uring_peek(&r) == NULL, "and has not completed when the wait times out");
	sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_SEND;
	sqe->fd = 0;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->addr = (uintptr_t)out;
	sqe->len = sizeof out - 1;
	sqe->user_data = 1;
	is_int(uring_submit_wait(&r, 2, 0, 1000000000), 1, "the send goes with the next wait");
	int got = 0, sent = -1, recvd = -1;
	while ((cqe = uring_peek(&r)) != NULL) {
		if (cqe->user_data == 1)
			sent = cqe->res;
		if (cqe->user_data == 2)
			recvd = cqe->res;
		uring_advance(&r);
		got++;
	}
	is_int(got, 2, "both complete in that one wait");
	is_int(sent, (int)sizeof out - 1, "the send by slot sent the request");
	is_int(recvd, (int)sizeof out - 1, "the receive by slot got it");
	ok(memcmp(in, out, sizeof out - 1) == 0, "byte for byte");

	/* min_wait (IORING_FEAT_MIN_TIMEOUT, 6.12): a batch of 4 is waited for
	 * only so long once one is in */
	if (!(r.features & (1U << 15))) {
		diag("no IORING_FEAT_MIN_TIMEOUT: min_wait_ns is ignored here");
		sqe = uring_sqe(&r);
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = 9;
		is_int(uring_submit_wait(&r, 1, 1000000, 2000000000), 1, "a wait for one no-op");
		skip("no IORING_FEAT_MIN_TIMEOUT (Linux 6.12) here", "a batch wait ends at min_wait once one is in");
	} else {
		sqe = uring_sqe(&r);
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = 9;
		t0 = uv_hrtime();
		is_int(uring_submit_wait(&r, 4, 1000000, 2000000000), 1, "a wait for 4 with one to come");
		ok(uv_hrtime() - t0 < 1000000000, "returns with the one long before the timeout");
	}
	cqe = uring_peek(&r);
	ok(cqe && cqe->user_data == 9, "and the one is there");
	uring_advance(&r);

	/* provided buffers: a multishot receive takes one per arrival */
	struct uring_bufs bufs;
	is_int(uring_bufs_init(&r, &bufs, 5, 3, 64), -EINVAL, "a buffer ring of 3 is refused");
	is_int(uring_bufs_init(&r, &bufs, 5, 2, 64), 0, "a ring of 2 buffers of 64 bytes");
	sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_RECV;
	sqe->fd = 3;
	sqe->flags = IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->ioprio = IORING_RECV_MULTISHOT;
	sqe->buf_group = 5;
	sqe->user_data = 3;
	is_int(uring_submit_wait(&r, 1, 0, 1000000), 1, "a multishot receive is armed");
	int more = 0, seen_bid[2] = { -1, -1 }, texts = 0;
	for (int round = 0; round < 2; round++) {
		ok(write(sv[0], round ? "second" : "first", round ? 6 : 5) > 0, "message %d written", round);
		uring_submit_wait(&r, 1, 0, 1000000000);
		cqe = uring_peek(&r);
		ok(cqe && cqe->user_data == 3 && (cqe->flags & IORING_CQE_F_BUFFER),
		   "message %d completes in a provided buffer", round);
		if (!cqe)
			continue;
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		seen_bid[round] = (int)bid;
		more += (cqe->flags & IORING_CQE_F_MORE) != 0;
		if (cqe->res == (round ? 6 : 5) &&
		    memcmp(uring_buf(&bufs, bid), round ? "second" : "first", (size_t)cqe->res) == 0)
			texts++;
		uring_advance(&r);
		if (round == 1)
			uring_buf_put(&bufs, bid);  /* the first is kept: one left */
	}
	is_int(more, 2, "and the receive stays armed (F_MORE) both times");
	is_int(texts, 2, "each buffer holds its message");
	ok(seen_bid[0] != seen_bid[1], "in two different buffers");
	ok(write(sv[0], "third", 5) == 5, "a third message");
	uring_submit_wait(&r, 1, 0, 1000000000);
	cqe = uring_peek(&r);
	ok(cqe && (cqe->flags & IORING_CQE_F_BUFFER) &&
	   (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) == seen_bid[1],
	   "goes to the buffer that was put back");
	if (cqe)
		uring_advance(&r);
	ok(write(sv[0], "fourth", 6) == 6, "a fourth, with no buffer free");
	uring_submit_wait(&r, 1, 0, 1000000000);
	cqe = uring_peek(&r);
	ok(cqe && cqe->res == -ENOBUFS && !(cqe->flags & IORING_CQE_F_MORE),
	   "ends the receive with -ENOBUFS");
	if (cqe)
		uring_advance(&r);
	uring_bufs_free(&r, &bufs);
	ok(bufs.base == NULL && bufs.entries == 0, "the buffer ring is freed");

	is_int(uring_file_set(&r, 0, -1), 0, "slot 0 is emptied");
	close(sv[0]);
	close(sv[1]);
	uring_free(&r);
	is_int(r.fd, -1, "uring_free closes the ring");
	return tap_done();
}
