/*
 * test_io_loop.c -- lib/io/loop, the io_uring loop driver dsys-serve and
 * dsys-bench run on: completions reach the callback of their tag, a libuv
 * timer and a libuv fd (polled through the ring) run inside the loop and
 * may submit, the owner's wake_ns ends a wait, a cancel of everything on a
 * socket ends its multishot receive, and io_loop_stop ends the run once
 * libuv has closed what is left.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "tap.h"
#include "io/loop.h"

enum { TAG_RECV = 1, TAG_SEND = 2 };

static struct io_loop L;
static uv_loop_t uvl;
static uv_timer_t start_timer, guard;
static uv_poll_t poll_h;
static int sv[2], pv[2];
static char got[64];
static int send_res = -1, recv_end = 1, recv_bufs, polled, woke, timed_out, prepares, reaped;
static uint64_t wake_set;
static uint64_t recv_value;

/* Everything of ours is out of the ring: close libuv's handles; the run
 * ends once they are closed. */
static void finish(void)
{
	io_loop_stop(&L);
	if (uv_is_closing((uv_handle_t *)&guard))
		return;
	uv_close((uv_handle_t *)&start_timer, NULL);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_close((uv_handle_t *)&poll_h, NULL);
}

static void on_recv(void *arg, uint64_t value, int res, uint32_t flags)
{
	ok(arg == &L, "a completion's callback gets its tag's argument");
	recv_value = value;
	unsigned bid;
	char *data = io_loop_cqe_buf(&L, flags, &bid);
	if (res > 0 && data) {
		recv_bufs++;
		memcpy(got, data, (size_t)res < sizeof got - 1 ? (size_t)res : sizeof got - 1);
		io_loop_buf_put(&L, bid);
		/* make libuv's fd readable: only the ring's poll of libuv's
		 * epoll fd can tell the loop to run it */
		ok(write(pv[0], "x", 1) == 1, "a byte for the libuv poll handle");
		return;
	}
	if (!(flags & IORING_CQE_F_MORE)) {
		recv_end = res;
		finish();
	}
}

static void on_send(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	is_int((int)(value >> 8), 42, "the send's value comes back without its tag");
	send_res = res;
}

static void on_start(uv_timer_t *t)
{
	(void)t;
	/* submitting from inside a libuv callback: it goes with the next wait */
	io_loop_send(&L, sv[0], false, "hello", 5, MSG_NOSIGNAL, 0, io_loop_data(TAG_SEND, 42 << 8));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)status;
	(void)events;
	char b;
	if (read(pv[1], &b, 1) == 1)
		polled++;
	wake_set = uv_hrtime();
	L.wake_ns = wake_set + 3000000;   /* 3 ms, with libuv's next timer 2 s away */
}

static void on_guard(uv_timer_t *t)
{
	(void)t;
	timed_out = 1;
	io_loop_cancel_fd(&L, sv[1], false);
	finish();
}

static void prepare(struct io_loop *l)
{
	prepares++;
	if (l->wake_ns && uv_hrtime() >= l->wake_ns) {
		l->wake_ns = 0;
		woke = 1;
		ok(uv_hrtime() - wake_set < 1000000000, "wake_ns ended the wait long before libuv's timer");
		io_loop_cancel_fd(l, sv[1], false);
	}
}

static void reap_end(struct io_loop *l, unsigned n)
{
	(void)l;
	reaped += (int)n;
}

static const struct io_loop_hooks hooks = { .prepare = prepare, .reap_end = reap_end };

int main(void)
{
	int e = io_loop_probe();
	if (e < 0) {
		printf("1..0 # SKIP io_uring loop unavailable here: %s\n", strerror(-e));
		return 0;
	}
	uv_loop_init(&uvl);
	struct io_loop_config cfg = { .sq_entries = 8, .cq_entries = 32, .nbufs = 3, .buf_size = 64 };
	is_int(io_loop_init(&L, &uvl, &cfg), -EINVAL, "3 provided buffers are refused (a power of two)");
	ok(L.ring.fd == -1, "and nothing is left set up");
	cfg.nbufs = 4;
	cfg.hooks = &hooks;
	is_int(io_loop_init(&L, &uvl, &cfg), 0, "a loop with 4 buffers of 64 bytes");
	ok(L.ring.setup_flags & IORING_SETUP_DEFER_TASKRUN, "its ring defers task work");
	io_loop_on(&L, TAG_RECV, on_recv, &L);
	io_loop_on(&L, TAG_SEND, on_send, NULL);

	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "a socketpair for the ring");
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, pv) == 0, "a socketpair for libuv");
	io_loop_recv_multishot(&L, sv[1], false, io_loop_data(TAG_RECV, 8u << 4));
	uv_timer_init(&uvl, &start_timer);
	uv_timer_start(&start_timer, on_start, 5, 0);
	uv_timer_init(&uvl, &guard);
	uv_timer_start(&guard, on_guard, 2000, 0);
	uv_poll_init(&uvl, &poll_h, pv[1]);
	uv_poll_start(&poll_h, UV_READABLE, on_poll);

	is_int(io_loop_run(&L), 0, "the loop runs until stopped and libuv has nothing left");
	ok(!timed_out, "without the 2 s guard firing");
	ok(!(L.ring.enter_flags & IORING_ENTER_REGISTERED_RING) && L.ring.enter_fd == L.ring.fd,
	   "and lets go of the ring fd it registered for the thread");
	is_int(send_res, 5, "the send from a libuv timer sent its 5 bytes");
	is_int(recv_bufs, 1, "the multishot receive got them in one provided buffer");
	is_str(got, "hello", "byte for byte");
	is_int((int)recv_value, 8 << 4, "with the value it was armed with");
	is_int(polled, 1, "libuv's poll handle ran once its fd was readable");
	is_int(woke, 1, "the owner's wake_ns came");
	is_int(recv_end, -ECANCELED, "the cancel of everything on the socket ended the receive");
	ok(prepares >= 3, "the prepare hook ran before every wait (%d)", prepares);
	ok(reaped >= 3, "and the turns took every completion (%d)", reaped);

	io_loop_free(&L);
	ok(L.ring.fd == -1 && L.bufs.base == NULL, "io_loop_free releases the ring and its buffers");
	io_loop_free(&L);
	ok(L.ring.fd == -1, "and a second io_loop_free is harmless");
	is_int(uv_loop_close(&uvl), 0, "every libuv handle was closed");
	close(sv[0]);
	close(sv[1]);
	close(pv[0]);
	close(pv[1]);
	return tap_done();
}
