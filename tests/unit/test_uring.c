/*
 * test_uring.c -- the raw io_uring ring: set-up, a batch of no-ops in one
 * submission, completions in order with their user_data, a full ring, and
 * a real socket round trip (send and recv over a socketpair).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "io/uring.h"

int main(void)
{
	struct uring r;
	int e = uring_init(&r, 8, 32);
	if (e == -ENOSYS || e == -EPERM) {
		/* dsys-bench and the servers fall back to libuv there */
		uring_free(&r);
		return tap_skip_all(e == -ENOSYS ? "io_uring unavailable here (ENOSYS)"
		                                 : "io_uring refused here (EPERM)");
	}
	is_int(e, 0, "a ring of 8 entries is set up");
	ok(r.fd >= 0 && r.sq_entries == 8, "its fd is open and it has 8 submission entries");

	for (int i = 0; i < 8; i++) {
		struct io_uring_sqe *sqe = uring_sqe(&r);
		ok(sqe != NULL, "entry %d is free", i);
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = 100 + (uint64_t)i;
	}
	ok(uring_sqe(&r) == NULL, "a ninth entry is refused: the ring is full");
	is_int(uring_submit(&r), 8, "one submission hands all 8 to the kernel");
	is_int((int)uring_sq_space(&r), 8, "and the ring is free again");
	int seen = 0, in_order = 1;
	struct io_uring_cqe *cqe;
	while ((cqe = uring_peek(&r)) != NULL) {
		if (cqe->user_data != (uint64_t)(100 + seen) || cqe->res != 0)
			in_order = 0;
		uring_advance(&r);
		seen++;
	}
	is_int(seen, 8, "8 completions come back");
	ok(in_order, "each with its user_data and result 0");
	ok(uring_peek(&r) == NULL, "and then none");

	int sv[2];
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "a socketpair");
	char out[] = "GET / HTTP/1.1\r\n\r\n", in[64];
	struct io_uring_sqe *sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_SEND;
	sqe->fd = sv[0];
	sqe->addr = (uintptr_t)out;
	sqe->len = sizeof out - 1;
	sqe->user_data = 1;
	sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_RECV;
	sqe->fd = sv[1];
	sqe->addr = (uintptr_t)in;
	sqe->len = sizeof in;
	sqe->user_data = 2;
	is_int(uring_submit(&r), 2, "a send and a receive in one submission");
	int got_send = 0, got_recv = 0;
	for (int spins = 0; spins < 1000 && !(got_send && got_recv); spins++) {
		while ((cqe = uring_peek(&r)) != NULL) {
			if (cqe->user_data == 1)
				got_send = cqe->res;
			if (cqe->user_data == 2) {
				got_recv = cqe->res;
				in[got_recv > 0 ? got_recv : 0] = '\0';
			}
			uring_advance(&r);
		}
		if (!(got_send && got_recv))
			usleep(1000);
	}
	is_int(got_send, (int)sizeof out - 1, "the send wrote every byte");
	is_int(got_recv, (int)sizeof out - 1, "the receive read them");
	is_str(in, out, "the same bytes");
	close(sv[0]);
	close(sv[1]);
	uring_free(&r);
	ok(r.fd == -1, "uring_free closes the ring");
	uring_free(&r);
	ok(r.fd == -1, "and a second free is harmless");
	return tap_done();
}
