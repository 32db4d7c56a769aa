/*
 * test_counter.c -- lib/counter: the lock-free table under threads, and the
 * file: backend's log (group commit, recovery, torn tails, compaction).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "counter/counter.h"
#include "store/url.h"
#include "tap.h"

#define THREADS 4
#define PER_THREAD 50000

struct worker {
	struct counter_table *t;
	int64_t *values;
	int fails;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char key[16];
		int n = snprintf(key, sizeof key, "k%d", i % 64);   /* new keys race too */
		int64_t v;
		if (counter_table_incr(w->t, "hot", 3, 1, &w->values[i]) < 0)
			w->fails++;
		if (counter_table_incr(w->t, key, (size_t)n, 1, &v) < 0)
			w->fails++;
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_table(void)
{
	struct counter_table *t = counter_table_new(100);
	int64_t v = 0;
	is_int(counter_table_get(t, "a", 1, &v), -ENOENT, "an absent key is ENOENT");
	is_int(counter_table_incr(t, "a", 1, 5, &v), 0, "incr creates a key");
	is_int(v, 5, "... with the increment as its value");
	is_int(counter_table_incr(t, "a", 1, -7, &v), 0, "a negative increment");
	is_int(v, -2, "... goes below zero");
	is_int(counter_table_set(t, "b", 1, INT64_MAX), 0, "set INT64_MAX");
	is_int(counter_table_incr(t, "b", 1, 1, &v), -EOVERFLOW, "an overflow is refused");
	counter_table_get(t, "b", 1, &v);
	ok(v == INT64_MAX, "... and the value is unchanged");
	counter_table_set(t, "c", 1, INT64_MIN);
	is_int(counter_table_incr(t, "c", 1, -1, &v), -EOVERFLOW, "so is an underflow");
	is_int(counter_table_del(t, "a", 1, &v), 0, "del of a present key");
	is_int(v, -2, "... answers its value");
	is_int(counter_table_del(t, "a", 1, &v), -ENOENT, "del again is ENOENT");
	is_int(counter_table_incr(t, "a", 1, 1, &v), 0, "a deleted key comes back");
	is_int(v, 1, "... from zero");
	struct counter_item *items;
	long n = counter_table_list(t, "", 0, &items);
	is_int(n, 3, "list sees the three present keys");
	ok(n == 3 && items[0].key_len == 1 && items[0].key[0] == 'a' && items[2].key[0] == 'c',
	   "... sorted by key");
	free(items);
	counter_table_set(t, "ab", 2, 1);
	n = counter_table_list(t, "a", 1, &items);
	is_int(n, 2, "list with a prefix");
	free(items);
	counter_table_free(t);

	t = counter_table_new(2);
	counter_table_incr(t, "x", 1, 1, &v);
	counter_table_incr(t, "y", 1, 1, &v);
	is_int(counter_table_incr(t, "z", 1, 1, &v), -ENOSPC, "a full table refuses a new key");
	is_int(counter_table_incr(t, "x", 1, 1, &v), 0, "... and still counts the old ones");
	counter_table_free(t);
}

static void test_threads(void)
{
	struct counter_table *t = counter_table_new(1000);
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int64_t *all = malloc(sizeof *all * THREADS * PER_THREAD);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){t, all + (size_t)i * PER_THREAD, 0};
		pthread_create(&th[i], NULL, hammer, &w[i]);
	}
	int fails = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		fails += w[i].fails;
	}
	is_int(fails, 0, "no increment failed under %d threads", THREADS);
	int64_t v = 0;
	counter_table_get(t, "hot", 3, &v);
	is_int(v, THREADS * PER_THREAD, "the hot key counts every increment");
	qsort(all, THREADS * PER_THREAD, sizeof *all, cmp_i64);
	int perm = 1;
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		perm &= all[i] == i + 1;
	ok(perm, "the values handed out are a permutation of 1..N");
	int64_t sum = 0;
	for (int k = 0; k < 64; k++) {
		char key[16];
		int n = snprintf(key, sizeof key, "k%d", k);
		counter_table_get(t, key, (size_t)n, &v);
		sum += v;
	}
	is_int(sum, THREADS * PER_THREAD, "keys created concurrently lose nothing");
	is_int(counter_table_count(t), 65, "and each exists once");
	free(all);
	counter_table_free(t);
}

/* ------------------------------------------------------------ file: */

struct done {
	int calls, err;
	int64_t value;
};

static void done_cb(void *ud, int err, int64_t value)
{
	struct done *d = ud;
	d->calls++;
	d->err = err;
	d->value = value;
}

static uv_loop_t loop;

/* Issue op on a fresh handle, run the loop until it answers. */
static struct done run_op(struct counter_store *s, char op, const char *key, int64_t arg)
{
	struct counter *c;
	struct done d = {0, 0, 0};
	counter_attach(s, &loop, &c);
	size_t n = strlen(key);
	switch (op) {
	case 'i': counter_incr(c, key, n, arg, done_cb, &d); break;
	case 'g': counter_get(c, key, n, done_cb, &d); break;
	case 's': counter_set(c, key, n, arg, done_cb, &d); break;
	default: counter_del(c, key, n, done_cb, &d); break;
	}
	while (d.calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	counter_detach(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	return d;
}

static struct counter_store *open_file(const char *dir, uint64_t compact)
{
	struct counter_options o;
	counter_options_init(&o);
	o.max_keys = 1000;
	o.compact_bytes = compact;
	struct counter_store *s = NULL;
	char err[256];
	int r = counter_file_open(dir, &o, &s, err, sizeof err);
	if (r < 0)
		diag("open %s: %s", dir, err);
	return s;
}

static void test_file(void)
{
	char dir[] = "/tmp/test_counter.XXXXXX";
	ok(mkdtemp(dir) != NULL, "a temporary directory");
	char store[300], log[320];
	snprintf(store, sizeof store, "%s/c", dir);
	snprintf(log, sizeof log, "%s/log", store);
	uv_loop_init(&loop);

	struct counter_store *s = open_file(store, 0);
	ok(s != NULL, "file: opens a new directory");
	struct done d = run_op(s, 'i', "a", 2);
	ok(d.calls == 1 && d.err == 0 && d.value == 2, "incr answers after its fsync");
	run_op(s, 'i', "a", 3);
	run_op(s, 's', "b", -9);
	run_op(s, 'i', "gone", 1);
	d = run_op(s, 'd', "gone", 0);
	ok(d.err == 0 && d.value == 1, "del answers the old value");
	struct counter_options o;
	counter_options_init(&o);
	struct counter_store *s2 = NULL;
	is_int(counter_file_open(store, &o, &s2, NULL, 0), -EBUSY, "a second open of the same directory is EBUSY");

	/* many increments in one go share fsyncs and all land */
	struct counter *c;
	counter_attach(s, &loop, &c);
	struct done many[500];
	memset(many, 0, sizeof many);
	for (int i = 0; i < 500; i++)
		counter_incr(c, "m", 1, 1, done_cb, &many[i]);
	int answered = 0;
	while (answered < 500) {
		uv_run(&loop, UV_RUN_ONCE);
		answered = 0;
		for (int i = 0; i < 500; i++)
			answered += many[i].calls;
	}
	int inorder = 1;
	for (int i = 0; i < 500; i++)
		inorder &= many[i].err == 0 && many[i].value == i + 1;
	ok(inorder, "500 pipelined increments answer 1..500 in order");
	counter_detach(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	counter_store_close(s);

	s = open_file(store, 0);
	d = run_op(s, 'g', "a", 0);
	ok(d.err == 0 && d.value == 5, "after a reopen: a is 5");
	d = run_op(s, 'g', "b", 0);
	ok(d.err == 0 && d.value == -9, "b is -9");
	d = run_op(s, 'g', "gone", 0);
	is_int(d.err, -ENOENT, "a deleted key stays deleted");
	d = run_op(s, 'g', "m", 0);
	ok(d.value == 500, "m is 500");
	counter_store_close(s);

	/* a torn tail: half a record at the end */
	struct stat st;
	stat(log, &st);
	off_t size = st.st_size;
	int fd = open(log, O_WRONLY | O_APPEND);
	ok(write(fd, "\x11\x22\x33\x44\x30\x00\x00\x00\x01\x05", 10) == 10, "append a torn record");
	close(fd);
	s = open_file(store, 0);
	ok(s != NULL, "a torn tail does not stop recovery");
	stat(log, &st);
	ok(st.st_size == size, "... the torn record is cut off");
	d = run_op(s, 'i', "a", 1);
	ok(d.value == 6, "... and the log goes on after it");
	counter_store_close(s);

	/* a flipped bit inside a record followed by more is damage */
	fd = open(log, O_RDWR);
	char byte;
	ok(pread(fd, &byte, 1, 20) == 1, "read a byte");
	byte ^= 1;
	ok(pwrite(fd, &byte, 1, 20) == 1, "flip a bit in the first record");
	close(fd);
	char err[256];
	counter_options_init(&o);
	is_int(counter_file_open(store, &o, &s2, err, sizeof err), -EBADMSG, "damage in the middle is EBADMSG");
	ok(strstr(err, "damaged") != NULL, "... and the message says so: %s", err);
	fd = open(log, O_RDWR);
	byte ^= 1;
	ok(pwrite(fd, &byte, 1, 20) == 1, "repair it");
	close(fd);

	/* compaction: a small threshold keeps the log near the live set */
	s = open_file(store, 256);
	counter_attach(s, &loop, &c);
	struct done dd[2000];
	memset(dd, 0, sizeof dd);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 100; i++)
			counter_incr(c, "hot", 3, 1, done_cb, &dd[round * 100 + i]);
		int got = 0;
		while (got < 100) {
			uv_run(&loop, UV_RUN_ONCE);
			got = 0;
			for (int i = 0; i < 100; i++)
				got += dd[round * 100 + i].calls;
		}
	}
	counter_detach(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	counter_store_close(s);
	stat(log, &st);
	ok(st.st_size < 2000 * 20, "the log was compacted (%lld bytes for 2000 increments)", (long long)st.st_size);
	s = open_file(store, 256);
	d = run_op(s, 'g', "hot", 0);
	ok(d.value == 2000, "and every increment survived compaction");
	d = run_op(s, 'g', "a", 0);
	ok(d.value == 6, "so did the other counters");
	counter_store_close(s);
	uv_loop_close(&loop);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ok(system(cmd) == 0, "clean up");
}

int main(void)
{
	test_table();
	test_threads();
	test_file();
	return tap_done();
}
