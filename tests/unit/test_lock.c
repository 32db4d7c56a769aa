/*
 * test_lock.c -- lib/lock: names and tokens, and the file: backend's
 * semantics straight through the interface (busy, wrong tokens change
 * nothing, fences survive reopening, a grant bound to a dead process is
 * free at once, a damaged state file is an error, waiting gives up).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock/lock.h"
#include "store/url.h"
#include "tap.h"

struct res {
	bool done;
	int err;
	struct lock_holder h;
	unsigned n;
	uint64_t fence0;
};

static void grant_cb(void *ud, int err, const struct lock_holder *h)
{
	struct res *r = ud;
	r->done = true;
	r->err = err;
	if (h)
		r->h = *h;
}

static void status_cb(void *ud, int err, const struct lock_holder *hs, unsigned n)
{
	struct res *r = ud;
	r->done = true;
	r->err = err;
	r->n = n;
	if (n)
		r->fence0 = hs[0].fence;
}

static uv_loop_t loop;
static struct lock_store *st;

static void open_store(const char *dir)
{
	struct store_url u;
	char err[128], text[256];
	snprintf(text, sizeof text, "file:%s", dir);
	if (store_url_parse(text, &u, err, sizeof err) < 0)
		abort();
	is_int(lock_store_open(&loop, &u, NULL, &st), 0, "file: store opens (%s)", dir);
}

static void close_store(void)
{
	lock_store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
}

static struct res acquire(const char *name, unsigned limit, pid_t pid, uint64_t wait_ms)
{
	struct res r = {0};
	struct lock_request rq = {.name = name, .ttl_ms = 10000, .limit = limit,
	                          .owner = "test", .pid = pid, .wait_ms = wait_ms};
	if (lock_acquire(st, &rq, grant_cb, &r) < 0)
		abort();
	while (!r.done)
		uv_run(&loop, UV_RUN_ONCE);
	return r;
}

static struct res by_token(int op, const char *name, const char *token)
{
	struct res r = {0};
	int e = op ? lock_renew(st, name, token, 5000, grant_cb, &r)
	           : lock_release(st, name, token, grant_cb, &r);
	if (e < 0)
		abort();
	while (!r.done)
		uv_run(&loop, UV_RUN_ONCE);
	return r;
}

static struct res status(const char *name)
{
	struct res r = {0};
	if (lock_status(st, name, status_cb, &r) < 0)
		abort();
	while (!r.done)
		uv_run(&loop, UV_RUN_ONCE);
	return r;
}

static void test_names(void)
{
	const char *why;
	char big[300];
	memset(big, 'n', sizeof big);
	is_int(lock_name_check("a", 1, &why), 0, "a one-byte name is fine");
	is_int(lock_name_check(big, 256, &why), 0, "a 256-byte name is fine");
	is_int(lock_name_check(big, 257, &why), -EINVAL, "a 257-byte name is refused");
	is_str(why, "is longer than 256 bytes", "and says why");
	is_int(lock_name_check("", 0, &why), -EINVAL, "an empty name is refused");
	is_int(lock_name_check("a/b", 3, &why), -EINVAL, "a name with '/' is refused");
	is_int(lock_name_check("a\0b", 3, &why), -EINVAL, "a name with NUL is refused");
	is_str(why, "contains a NUL byte", "and says why");
	ok(lock_token_valid("0123456789abcdef0123456789abcdef"), "32 lowercase hex digits are a token");
	ok(!lock_token_valid("0123456789ABCDEF0123456789abcdef"), "uppercase is not");
	ok(!lock_token_valid("0123"), "a short string is not");
	ok(lock_err_unreachable(-ECONNREFUSED) && lock_err_unreachable(-ETIMEDOUT),
	   "refused and timed out are unreachable");
	ok(!lock_err_unreachable(-EBUSY) && !lock_err_unreachable(-ETIME) && !lock_err_unreachable(-ENOENT),
	   "busy, a wait timeout and a wrong token are not");
}

static void test_file(const char *dir)
{
	open_store(dir);
	struct res a = acquire("job", 1, 0, 0);
	is_int(a.err, 0, "acquire grants a free lock");
	is_int(a.h.fence, 1, "the first grant has fence 1");
	ok(lock_token_valid(a.h.token), "with a valid token");
	is_int(acquire("job", 1, 0, 0).err, -EBUSY, "a second acquire finds it busy");
	is_int(acquire("job", 2, 0, 0).err, 0, "a semaphore of 2 lets a second holder in");
	is_int(acquire("job", 2, 0, 0).err, -EBUSY, "but not a third");
	struct res s = status("job");
	is_int(s.n, 2, "status lists both holders");
	const char *wrong = "0123456789abcdef0123456789abcdef";
	is_int(by_token(0, "job", wrong).err, -ENOENT, "a wrong token releases nothing");
	is_int(by_token(1, "job", wrong).err, -ENOENT, "a wrong token renews nothing");
	is_int(status("job").n, 2, "and both holders remain");
	struct res rn = by_token(1, "job", a.h.token);
	is_int(rn.err, 0, "the holder renews");
	is_int(rn.h.fence, 1, "a renewal keeps the fence");
	is_int(rn.h.ttl_ms, 5000, "and takes the new TTL");
	is_int(by_token(0, "job", a.h.token).err, 0, "the holder releases");
	is_int(by_token(0, "job", a.h.token).err, -ENOENT, "a second release is a no");
	close_store();

	open_store(dir);
	struct res b = acquire("job", 2, 0, 0);
	is_int(b.err, 0, "after reopening, the free place is granted");
	is_int(b.h.fence, 3, "with the next fence: the counter survived");

	/* a grant bound to a process ends when the process does */
	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	struct res c = acquire("bound", 1, child, 0);
	is_int(c.err, 0, "a grant bound to a live process");
	is_int(acquire("bound", 1, 0, 0).err, -EBUSY, "holds while it lives");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	is_int(acquire("bound", 1, 0, 0).err, 0, "and is free the moment it dies");

	/* waiting gives up with -ETIME */
	uint64_t t0 = uv_hrtime();
	is_int(acquire("bound", 1, 0, 60).err, -ETIME, "a wait on a held lock gives up with -ETIME");
	ok(uv_hrtime() - t0 >= 60 * 1000000ull, "after the wait has passed");

	/* a damaged state is an error, not a lock for everyone */
	char path[512];
	snprintf(path, sizeof path, "%s/bad.state", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"dsys_lock\":1,\"name\":\"bad\",\"fence\":4}\n{\"token\":\"zz\"\n", f);
	fclose(f);
	is_int(acquire("bad", 1, 0, 0).err, -EPROTO, "a damaged state file is -EPROTO");
	snprintf(path, sizeof path, "%s/other.state", dir);
	f = fopen(path, "w");
	fputs("{\"dsys_lock\":1,\"name\":\"not-other\",\"fence\":4}\n", f);
	fclose(f);
	is_int(acquire("other", 1, 0, 0).err, -EPROTO, "a state file of another name is -EPROTO");
	close_store();
}

int main(void)
{
	uv_loop_init(&loop);
	test_names();
	char dir[] = "/tmp/test_lock.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	test_file(dir);
	uv_loop_close(&loop);
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return tap_done();
}
