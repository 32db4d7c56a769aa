/*
 * lock_cli -- a benchmark driver for lib/lock: many operations in one
 * process, so that what is timed is the store's round trips and not a
 * process start per operation (bench-40-lock.sh runs the per-command case
 * separately, with dsys-lock itself).
 *
 *   lock_cli URL latency NAME N
 *       N uncontended acquire+release pairs, one after another; prints
 *       {"pairs":N,"p50_us":..,"p99_us":..,"mean_us":..}
 *   lock_cli URL handoff NAME SECONDS
 *       acquire (waiting), release, again, for SECONDS: one of several
 *       contenders; prints {"grants":N,"seconds":S}
 *
 * Exit 0, or 1 with a line on stderr when an operation fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/hist.h"
#include "base/parse.h"
#include "lock/lock.h"
#include "store/url.h"

static uv_loop_t loop;
static struct lock_store *store;
static int last_err;
static struct lock_holder grant;
static bool done;

static void grant_cb(void *ud, int err, const struct lock_holder *h)
{
	(void)ud;
	last_err = err;
	if (h)
		grant = *h;
	done = true;
	uv_stop(&loop);
}

static int wait_cb(void)
{
	while (!done)
		uv_run(&loop, UV_RUN_DEFAULT);
	done = false;
	return last_err;
}

static int pair(const char *name, uint64_t wait_ms)
{
	struct lock_request rq = {.name = name, .ttl_ms = 10000, .limit = 1, .owner = "bench",
	                          .pid = 0, .wait_ms = wait_ms};
	int r = lock_acquire(store, &rq, grant_cb, NULL);
	if (r == 0)
		r = wait_cb();
	if (r < 0)
		return r;
	char token[LOCK_TOKEN_LEN + 1];
	memcpy(token, grant.token, sizeof token);
	r = lock_release(store, name, token, grant_cb, NULL);
	if (r == 0)
		r = wait_cb();
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: lock_cli URL latency|handoff NAME N|SECONDS\n");
		return 2;
	}
	struct store_url u;
	char err[256];
	uint64_t n;
	if (store_url_parse(argv[1], &u, err, sizeof err) < 0 || parse_u64(argv[4], &n) < 0 || n == 0) {
		fprintf(stderr, "lock_cli: bad arguments: %s\n", err);
		return 2;
	}
	uv_loop_init(&loop);
	int r = lock_store_open(&loop, &u, NULL, &store);
	if (r < 0) {
		fprintf(stderr, "lock_cli: cannot open %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	int rc = 0;
	if (!strcmp(argv[2], "latency")) {
		struct hist *h = hist_new(10000000);
		uint64_t sum = 0;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t t0 = uv_hrtime();
			r = pair(argv[3], 0);
			uint64_t us = (uv_hrtime() - t0) / 1000;
			if (r < 0) {
				fprintf(stderr, "lock_cli: pair %llu: %s (%s)\n", (unsigned long long)i,
				        strerror(-r), lock_store_last_error(store));
				rc = 1;
				break;
			}
			hist_record(h, us);
			sum += us;
		}
		if (!rc)
			printf("{\"pairs\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,\"mean_us\":%llu}\n",
			       (unsigned long long)n, (unsigned long long)hist_percentile(h, 50),
			       (unsigned long long)hist_percentile(h, 99), (unsigned long long)(sum / n));
		hist_free(h);
	} else if (!strcmp(argv[2], "handoff")) {
		uint64_t end = uv_hrtime() + n * 1000000000ull, grants = 0;
		while (uv_hrtime() < end) {
			r = pair(argv[3], 30000);
			if (r < 0) {
				fprintf(stderr, "lock_cli: handoff: %s (%s)\n", strerror(-r), lock_store_last_error(store));
				rc = 1;
				break;
			}
			grants++;
		}
		if (!rc)
			printf("{\"grants\":%llu,\"seconds\":%llu}\n", (unsigned long long)grants,
			       (unsigned long long)n);
	} else {
		fprintf(stderr, "lock_cli: unknown mode '%s'\n", argv[2]);
		rc = 2;
	}
	fflush(stdout);
	lock_store_close(store);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return rc;
}
