/*
 * status.c -- the one table between counter errors and HTTP (and gRPC) statuses.
 *
 * The service answers a failed operation with a status and a body
 * {"key":..,"error":TEXT}, TEXT being counter_strerror(err); the CLI with
 * --server turns the answer back into the error, so that `--server` and
 * `--store` print the same line and exit the same way.  Both directions
 * read this table.  A status alone is not enough to go back (400 is an
 * overflow and also a malformed request; 503 is unreachable and also
 * timed out), so the way back matches the error text first and the
 * status only as a fallback.
 */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "dsys-counter.h"
#include "http/grpc.h"

/* The gRPC column is for the gRPC API (dsys.counter.v1.Counter): what a
 * client may retry (UNAVAILABLE) is the same set as HTTP's 503. */
static const struct {
	int err;
	int status;
	int grpc;
} table[] = {
	{0, 200, GRPC_OK},
	{-ENOENT, 404, GRPC_NOT_FOUND},
	{-EOVERFLOW, 400, GRPC_OUT_OF_RANGE},
	{-EINVAL, 409, GRPC_FAILED_PRECONDITION},   /* the stored value is not an integer */
	{-ENOSPC, 507, GRPC_RESOURCE_EXHAUSTED},
	{-EIO, 500, GRPC_INTERNAL},
	{-ENOMEM, 500, GRPC_RESOURCE_EXHAUSTED},
	{-ETIMEDOUT, 503, GRPC_UNAVAILABLE},
	{-ENOBUFS, 503, GRPC_UNAVAILABLE},
	{-EACCES, 503, GRPC_UNAVAILABLE},
	{-EPROTO, 503, GRPC_UNAVAILABLE},
	{-EDOM, 503, GRPC_UNAVAILABLE},             /* the store URL names what is not there */
	{-EOPNOTSUPP, 503, GRPC_UNAVAILABLE},
	{-ENOTCONN, 503, GRPC_UNAVAILABLE},         /* and every other "unreachable" */
};
#define TABLE_N (sizeof table / sizeof table[0])

int counter_http_status(int err)
{
	for (size_t i = 0; i < TABLE_N; i++)
		if (table[i].err == err)
			return table[i].status;
	return 503;
}

int counter_grpc_status(int err)
{
	for (size_t i = 0; i < TABLE_N; i++)
		if (table[i].err == err)
			return table[i].grpc;
	return GRPC_UNAVAILABLE;
}

int counter_err_from_answer(long status, const char *error, size_t error_len)
{
	for (size_t i = 0; error && i < TABLE_N; i++) {
		const char *t = counter_strerror(table[i].err);
		if ((status == 0 || table[i].status == status) && strlen(t) == error_len && !memcmp(t, error, error_len))
			return table[i].err;
	}
	switch (status) {
	case 200:
		return 0;
	case 400:
		return -EBADMSG;    /* the service refused the request itself */
	case 503:
		return -ENOTCONN;
	default:
		return -EPROTO;     /* no counter service answers this */
	}
}

int counter_open_exit(int err)
{
	switch (err) {
	case -EPROTONOSUPPORT:
	case -EINVAL:
	case -EDOM:
	case -EOPNOTSUPP:
		return EXIT_USAGE;
	case -EBUSY:
		return EXIT_NO;      /* held by another process: a definite no, as flock -w says */
	default:
		return EXIT_UNREACHABLE;
	}
}

struct check_wait {
	bool done;
	int err;
};

static void check_cb(void *ud, int err, int64_t value)
{
	struct check_wait *w = ud;
	w->done = true;
	w->err = err;
}

int counter_check_wait(struct counter *c, uv_loop_t *loop)
{
	struct check_wait w = {false, 0};
	int r = counter_check(c, check_cb, &w);
	if (r < 0)
		return r;
	while (!w.done)
		uv_run(loop, UV_RUN_ONCE);
	return w.err;
}
