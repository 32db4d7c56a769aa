/*
 * client.c -- the thin client: dsys-raft put|get|del|txn|watch|lease.
 *
 * A shell user's etcdctl, printing JSON lines.  Every subcommand speaks
 * etcd's v3 JSON gateway through lib/store/etcd (the client dsys-lock and
 * dsys-register use), so it works against a dsys-raft cluster and against
 * a real etcd alike; this file only reads the command line, builds the
 * request and prints the answer with plain (decoded) keys and values.
 *
 * Following the leader.  --endpoints lists the members to try.  One
 * attempt of a call (lib/store/etcd) goes to each endpoint in turn while
 * a connection fails or a member answers "unavailable" (no leader, cut
 * off from the quorum); a write sent to a follower is forwarded by the
 * member itself, as etcd does.  When every endpoint failed that way
 * (ETCD_E_UNREACHABLE: none took the request, so resending is safe), the
 * whole round is tried again after a pause, until --timeout has passed
 * since the command started: an election in progress is waited out, a
 * cluster that stays down ends in exit 3, a call that outlived the
 * timeout in exit 4.  A write whose connection broke while it was in
 * flight is not resent (it may have been applied): exit 3, saying so;
 * so is one answered "request timed out" or "leader changed" (it may still
 * commit), while one answered "no leader" was never proposed and goes on.
 *
 * Output.  Lease IDs are printed and read in hexadecimal, as etcdctl
 * does (etcd's IDs are 63-bit: as JSON numbers, jq 1.6 would round them);
 * every other integer is a JSON number.  Field names are documented in
 * dsys-raft(1) and stay fixed.  Keys and values are JSON strings; bytes
 * that are not UTF-8 print as U+FFFD (lib/base/json).
 *
 * txn reads etcdctl's interactive format from stdin: compares, a blank
 * line, the operations run when every compare holds, a blank line, the
 * operations run otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "base/buf.h"
#include "base/json.h"
#include "cli/cli.h"
#include "dsys-raft.h"
#include "store/etcd.h"
#include "store/url.h"

enum {
	OPT_ENDPOINTS = 1, OPT_TIMEOUT, OPT_LEASE, OPT_PREV_KV, OPT_PREFIX, OPT_LIMIT, OPT_REV,
	OPT_KEYS_ONLY, OPT_COUNT_ONLY, OPT_SERIALIZABLE, OPT_COUNT, OPT_KEYS,
};

#define COMMON_OPTIONS \
	{"endpoints", 0, "H:P,...", "DSYS_RAFT_ENDPOINTS", \
	 "members to try, in order (default 127.0.0.1:2379)", OPT_ENDPOINTS}, \
	{"timeout", 0, "DURATION", NULL, "give up after this long, retries included (default 5s)", OPT_TIMEOUT}

static const struct cli_option put_options[] = {
	COMMON_OPTIONS,
	{"lease", 0, "ID", NULL, "attach the key to lease ID (hexadecimal)", OPT_LEASE},
	{"prev-kv", 0, NULL, NULL, "print the key's previous value", OPT_PREV_KV},
	CLI_END
};
static const struct cli_option get_options[] = {
	COMMON_OPTIONS,
	{"prefix", 0, NULL, NULL, "every key that starts with KEY", OPT_PREFIX},
	{"limit", 0, "N", NULL, "at most N keys", OPT_LIMIT},
	{"rev", 0, "R", NULL, "read as of revision R", OPT_REV},
	{"keys-only", 0, NULL, NULL, "keys without values", OPT_KEYS_ONLY},
	{"count-only", 0, NULL, NULL, "only the number of keys", OPT_COUNT_ONLY},
	{"serializable", 0, NULL, NULL, "let any member answer from its own state (may be stale)",
	 OPT_SERIALIZABLE},
	CLI_END
};
static const struct cli_option del_options[] = {
	COMMON_OPTIONS,
	{"prefix", 0, NULL, NULL, "every key that starts with KEY", OPT_PREFIX},
	{"prev-kv", 0, NULL, NULL, "print the deleted keys and values", OPT_PREV_KV},
	CLI_END
};
static const struct cli_option txn_options[] = { COMMON_OPTIONS, CLI_END };
static const struct cli_option watch_options[] = {
	COMMON_OPTIONS,
	{"prefix", 0, NULL, NULL, "every key that starts with KEY", OPT_PREFIX},
	{"rev", 0, "R", NULL, "start at revision R (default: the next one)", OPT_REV},
	{"prev-kv", 0, NULL, NULL, "print each key's previous value too", OPT_PREV_KV},
	{"count", 0, "N", NULL, "exit after N events", OPT_COUNT},
	CLI_END
};
static const struct cli_option lease_options[] = {
	COMMON_OPTIONS,
	{"keys", 0, NULL, NULL, "ttl: list the lease's keys", OPT_KEYS},
	{"count", 0, "N", NULL, "keepalive: exit after N renewals", OPT_COUNT},
	CLI_END
};

static const struct cli_spec put_spec = {
	"dsys-raft put", "KEY [VALUE] [OPTION]...", "Write VALUE (default: all of stdin) under KEY.", put_options,
	"Prints {\"revision\":R} (and \"prev_kv\" with --prev-kv).  See dsys-raft(1).\n",
};
static const struct cli_spec get_spec = {
	"dsys-raft get", "KEY [OPTION]...", "Read KEY, or every key under the prefix KEY.", get_options,
	"Prints one line per key; exits 1 when there is none.  See dsys-raft(1).\n",
};
static const struct cli_spec del_spec = {
	"dsys-raft del", "KEY [OPTION]...", "Delete KEY, or every key under the prefix KEY.", del_options,
	"Prints {\"deleted\":N,\"revision\":R}; exits 1 when nothing was deleted.\n",
};
static const struct cli_spec txn_spec = {
	"dsys-raft txn", "[OPTION]... <SCRIPT", "Run a transaction read from stdin (etcdctl's format).",
	txn_options,
	"stdin: compares, a blank line, operations on success, a blank line, operations on failure:\n"
	"  value(\"k\") = \"v1\"          (targets: value version create mod lease; = != > <)\n"
	"\n"
	"  put k v2                    (put KEY VALUE [--lease ID] [--prev-kv])\n"
	"\n"
	"  get k                       (get KEY [--prefix], del KEY [--prefix] [--prev-kv])\n"
	"Exits 0 when the compares held, 1 when the failure branch ran.\n",
};
static const struct cli_spec watch_spec = {
	"dsys-raft watch", "KEY [OPTION]...", "Print every change to KEY (or the prefix KEY) as it happens.",
	watch_options, "Runs until SIGINT or SIGTERM (exit 0), or --count events.\n",
};
static const struct cli_spec lease_spec = {
	"dsys-raft lease", "grant TTL | revoke ID | keepalive ID | ttl ID | list [OPTION]...",
	"Grant, revoke, renew and inspect leases (IDs in hexadecimal).", lease_options, NULL,
};

struct copts {
	struct store_url url;
	char endpoints[1024];         /* as given, for messages */
	uint64_t timeout_ms;
	int64_t lease, limit, rev;
	uint64_t count;               /* 0: no limit */
	uint64_t started;             /* now_ms() when parsing began: --timeout counts from here */
	bool prev_kv, prefix, keys_only, count_only, serializable, keys;
};

/* "127.0.0.1:2379,http://h:2380/" -> etcd://127.0.0.1:2379,h:2380: the
 * etcdctl form (with http://) is taken too. */
static int parse_endpoints(struct copts *o, const char *arg)
{
	char url[1100] = "etcd://", err[256];
	size_t n = strlen(url);
	if (strlen(arg) >= sizeof o->endpoints)
		return cli_bad_value(NULL, arg, "too long");
	const char *p = arg;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= 7 && strncmp(p, "http://", 7) == 0)
			p += 7, len -= 7;
		else if (len >= 8 && strncmp(p, "https://", 8) == 0)
			return cli_bad_value(NULL, arg, "https is not supported; give HOST:PORT");
		if (len > 0 && p[len - 1] == '/')
			len--;
		if (len == 0)
			return cli_bad_value(NULL, arg, "empty endpoint; want HOST:PORT,HOST:PORT,...");
		if (n + len + 2 >= sizeof url)
			return cli_bad_value(NULL, arg, "too long");
		memcpy(url + n, p, len);
		n += len;
		if (!end)
			break;
		url[n++] = ',';
		p = end + 1;
	}
	url[n] = '\0';
	if (store_url_parse(url, &o->url, err, sizeof err) < 0)
		return cli_bad_value(NULL, arg, err);
	strcpy(o->endpoints, arg);
	return 0;
}

/* Lease IDs: hexadecimal, as etcdctl prints and reads them. */
static int parse_lease_id(const char *s, int64_t *out)
{
	if (!*s || strlen(s) > 16)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0'
		      : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
		      : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int on_option(void *ctx, int id, const char *arg)
{
	struct copts *o = ctx;
	uint64_t v;
	switch (id) {
	case OPT_ENDPOINTS:
		return parse_endpoints(o, arg);
	case OPT_TIMEOUT:
		if (parse_duration_ms(arg, &v) < 0 || v == 0 || v > 86400000)
			return cli_bad_value(NULL, arg, "want a duration from 1ms to 24h, e.g. 500ms or 5s");
		o->timeout_ms = v;
		return 0;
	case OPT_LEASE:
		if (parse_lease_id(arg, &o->lease) < 0 || o->lease == 0)
			return cli_bad_value(NULL, arg, "want a lease ID in hexadecimal, as lease grant prints it");
		return 0;
	case OPT_LIMIT:
	case OPT_REV:
		if (parse_u64(arg, &v) < 0 || v == 0 || v > INT64_MAX)
			return cli_bad_value(NULL, arg, "want a positive integer");
		*(id == OPT_LIMIT ? &o->limit : &o->rev) = (int64_t)v;
		return 0;
	case OPT_COUNT:
		if (parse_u64(arg, &o->count) < 0 || o->count == 0)
			return cli_bad_value(NULL, arg, "want a positive integer");
		return 0;
	case OPT_PREV_KV: o->prev_kv = true; return 0;
	case OPT_PREFIX: o->prefix = true; return 0;
	case OPT_KEYS_ONLY: o->keys_only = true; return 0;
	case OPT_COUNT_ONLY: o->count_only = true; return 0;
	case OPT_SERIALIZABLE: o->serializable = true; return 0;
	case OPT_KEYS: o->keys = true; return 0;
	}
	return -1;
}

static uint64_t now_ms(void);

/* Options, then exactly min..max operands; returns -1 to go on. */
static int parse(const struct cli_spec *spec, int argc, char **argv, struct copts *o, int min, int max,
                 int *first)
{
	memset(o, 0, sizeof *o);
	o->started = now_ms();
	o->timeout_ms = 5000;
	if (parse_endpoints(o, "127.0.0.1:2379") < 0)
		return EXIT_USAGE;
	int r = cli_parse(spec, argc, argv, on_option, o, first);
	if (r >= 0)
		return r;
	int n = argc - *first;
	if (n < min || n > max) {
		if (n < min)
			cli_error("missing operand: usage: %s %s", spec->prog, spec->usage);
		else
			cli_error("unexpected argument '%s'", argv[*first + max]);
		fprintf(stderr, "Try '%s --help' for more information.\n", spec->prog);
		return EXIT_USAGE;
	}
	return -1;
}

/* ------------------------------------------------------------ calls */

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* gRPC status codes etcd answers with, to DESIGN.md's exit codes. */
static int server_exit(int code)
{
	switch (code) {
	case 3: return EXIT_USAGE;        /* INVALID_ARGUMENT: a request etcd refuses as malformed */
	case 4: return EXIT_TIMEOUT;      /* DEADLINE_EXCEEDED */
	case 14: return EXIT_UNREACHABLE; /* UNAVAILABLE */
	default: return EXIT_NO;          /* not found, compacted, no space... */
	}
}

/* Report err (from etcd_sync) on stderr, after what ("" or "grant: ");
 * returns the exit code. */
static int call_error(const struct copts *o, int err, const struct etcd_resp *r, const char *what)
{
	switch (err) {
	case ETCD_E_SERVER:
		cli_error("%s%s", what, r->error_message ? r->error_message : "unknown etcd error");
		return server_exit(r->error_code);
	case ETCD_E_UNREACHABLE:
		cli_error("%scannot reach %s: no member answered", what, o->endpoints);
		return EXIT_UNREACHABLE;
	case ETCD_E_TIMEOUT:
		cli_error("%stimed out after %llums", what, (unsigned long long)o->timeout_ms);
		return EXIT_TIMEOUT;
	case -ECONNRESET:
		cli_error("%sthe connection broke with the request in flight; it may have been applied", what);
		return EXIT_UNREACHABLE;
	case ETCD_E_PROTOCOL:
		cli_error("%san answer that is not etcd's JSON (is %s an etcd or dsys-raft client port?)", what,
		          o->endpoints);
		return EXIT_UNREACHABLE;
	default:
		cli_error("%s%s", what, err < 0 && err > -4096 ? strerror(-err) : etcd_strerror(err));
		return EXIT_NO;
	}
}

/*
 * One call, sent again while no endpoint took it, until the timeout.  A
 * fresh client per round gives each round only the time left.  Returns
 * etcd_sync's result; *resp is the caller's.
 */
static int call(const struct copts *o, const char *path, const struct buf *body, struct etcd_resp *resp,
                uint64_t started)
{
	uv_loop_t *loop = uv_default_loop();
	int last = ETCD_E_TIMEOUT;   /* after a round nobody took: unreachable, not slow */
	memset(resp, 0, sizeof *resp);
	for (;;) {
		uint64_t spent = now_ms() - started;
		if (spent >= o->timeout_ms)
			return last;
		uint64_t left = o->timeout_ms - spent;
		struct etcd_options eo = {
			.timeout_ms = (unsigned)left,
			.connect_timeout_ms = left < 1000 ? (unsigned)left : 1000,
		};
		struct etcd_client *c = etcd_client_new(loop, &o->url, &eo);
		if (!c)
			return -ENOMEM;
		int err = etcd_sync(c, path, body, resp);
		etcd_client_free(c);
		uv_run(loop, UV_RUN_NOWAIT);   /* let its handles close */
		if (err != ETCD_E_UNREACHABLE)
			return err;
		last = err;
		spent = now_ms() - started;
		if (spent + 100 >= o->timeout_ms)
			return err;
		etcd_resp_free(resp);
		usleep(100 * 1000);          /* an election takes a few hundred ms */
	}
}

/* ------------------------------------------------------------ output */

static void lease_hex(char *out, size_t size, int64_t id)
{
	snprintf(out, size, "%llx", (unsigned long long)id);
}

static void kv_fields(struct json_writer *w, const struct etcd_kv *kv, bool with_value)
{
	char hex[24];
	json_kv_strn(w, "key", kv->key ? kv->key : "", kv->key_len);
	if (with_value)
		json_kv_strn(w, "value", kv->value ? kv->value : "", kv->value_len);
	json_kv_i64(w, "create_revision", kv->create_revision);
	json_kv_i64(w, "mod_revision", kv->mod_revision);
	json_kv_i64(w, "version", kv->version);
	lease_hex(hex, sizeof hex, kv->lease);
	json_kv_str(w, "lease", hex);
}

static void kv_object(struct json_writer *w, const char *name, const struct etcd_kv *kv, bool with_value)
{
	if (name)
		json_key(w, name);
	json_obj_begin(w);
	kv_fields(w, kv, with_value);
	json_obj_end(w);
}

static void kv_array(struct json_writer *w, const char *name, const struct etcd_kv *kvs, size_t n,
                     bool with_value)
{
	json_key(w, name);
	json_arr_begin(w);
	for (size_t i = 0; i < n; i++)
		kv_object(w, NULL, &kvs[i], with_value);
	json_arr_end(w);
}

/* Write b as one line; returns 0 or the exit code for a failed write. */
static int emit(struct buf *b)
{
	if (json_emit(b) < 0)
		return cli_write_error(errno) == EXIT_OK ? -EPIPE : EXIT_NO;
	return 0;
}

/* The end of a command: stdout flushed and closed, then its own status. */
static int finish(int rc)
{
	if (rc == -EPIPE)
		return EXIT_OK;   /* the reader left: quietly */
	int wr = cli_stdout_close();
	return wr != EXIT_OK ? wr : rc;
}

/* One JSON object on a line of its own: line_begin, its fields through
 * l.w, then line_end, which writes it. */
struct line {
	struct buf out;
	struct json_writer w;
};

static void line_begin(struct line *l)
{
	l->out = (struct buf)BUF_INIT;
	json_writer_init(&l->w, &l->out);
	json_obj_begin(&l->w);
}

/* Returns rc once the line is written, else emit()'s code. */
static int line_end(struct line *l, int rc)
{
	json_obj_end(&l->w);
	int wr = emit(&l->out);
	buf_free(&l->out);
	return wr ? wr : rc;
}

/* A subcommand's answer: prints etcd's response r and returns the
 * command's status for finish() (0, an exit code, or emit()'s). */
typedef int answer_fn(const struct copts *o, const struct etcd_resp *r, const void *ctx);

/*
 * What every one-request subcommand does once the request is built: call
 * (within --timeout from the command's start), report a failure after
 * what ("" or "grant: ") with its exit code, or print the answer and
 * finish.  Frees body.
 */
static int request(const struct copts *o, const char *path, struct buf *body, const char *what,
                   answer_fn *answer, const void *ctx)
{
	struct etcd_resp resp;
	int err = call(o, path, body, &resp, o->started);
	int r = err < 0 ? call_error(o, err, &resp, what) : finish(answer(o, &resp, ctx));
	etcd_resp_free(&resp);
	buf_free(body);
	return r;
}

/* ------------------------------------------------------------ put get del */

#define PUT_MAX_STDIN (1536u * 1024)   /* etcd's default request limit, 1.5 MiB */

/* All of stdin into in, at most max bytes; 0 or an exit code. */
static int read_stdin(struct buf *in, size_t max, const char *what)
{
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
		if (in->len + n > max) {
			cli_error("the %s on stdin is longer than %zu bytes", what, max);
			return EXIT_USAGE;
		}
		buf_append(in, chunk, n);
	}
	if (ferror(stdin)) {
		cli_error("cannot read the %s on stdin: %s", what, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

static int put_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)ctx;
	struct line l;
	line_begin(&l);
	json_kv_i64(&l.w, "revision", r->revision);
	if (o->prev_kv && r->n_prev_kvs)
		kv_object(&l.w, "prev_kv", &r->prev_kvs[0], true);
	return line_end(&l, EXIT_OK);
}

static int put_run(const struct copts *o, char **args, int n)
{
	struct buf in = BUF_INIT, body = BUF_INIT;
	int r;
	if (n > 1) {
		buf_puts(&in, args[1]);
	} else if ((r = read_stdin(&in, PUT_MAX_STDIN, "value")) != 0) {
		buf_free(&in);
		return r;
	}
	etcd_req_put(&body, args[0], strlen(args[0]), in.data ? in.data : "", in.len, o->lease, o->prev_kv);
	r = request(o, ETCD_PATH_PUT, &body, "", put_answer, NULL);
	buf_free(&in);
	return r;
}

static int get_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)ctx;
	struct line l;
	if (o->count_only) {
		line_begin(&l);
		json_kv_i64(&l.w, "count", r->count);
		json_kv_i64(&l.w, "revision", r->revision);
		return line_end(&l, EXIT_OK);
	}
	for (size_t i = 0; i < r->n_kvs; i++) {
		line_begin(&l);
		kv_fields(&l.w, &r->kvs[i], !o->keys_only);
		int wr = line_end(&l, 0);
		if (wr)
			return wr;
	}
	return r->n_kvs ? EXIT_OK : EXIT_NO;
}

static int get_run(const struct copts *o, char **args, int n)
{
	(void)n;
	struct buf body = BUF_INIT;
	struct etcd_range rg = { args[0], strlen(args[0]), NULL, 0, o->prefix };
	struct etcd_range_opts ro = { .limit = o->limit, .revision = o->rev, .keys_only = o->keys_only,
	                              .count_only = o->count_only, .serializable = o->serializable };
	etcd_req_range(&body, &rg, &ro);
	return request(o, ETCD_PATH_RANGE, &body, "", get_answer, NULL);
}

static int del_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)ctx;
	struct line l;
	line_begin(&l);
	json_kv_i64(&l.w, "deleted", r->deleted);
	json_kv_i64(&l.w, "revision", r->revision);
	if (o->prev_kv)
		kv_array(&l.w, "prev_kvs", r->prev_kvs, r->n_prev_kvs, true);
	return line_end(&l, r->deleted ? EXIT_OK : EXIT_NO);
}

static int del_run(const struct copts *o, char **args, int n)
{
	(void)n;
	struct buf body = BUF_INIT;
	struct etcd_range rg = { args[0], strlen(args[0]), NULL, 0, o->prefix };
	etcd_req_delete(&body, &rg, o->prev_kv);
	return request(o, ETCD_PATH_DELETE, &body, "", del_answer, NULL);
}

/* ------------------------------------------------------------ txn */

#define TXN_MAX_OPS 128       /* etcd's default --max-txn-ops */
#define TXN_MAX_INPUT (1u << 20)

struct txn {
	struct etcd_compare cmp[TXN_MAX_OPS];
	struct etcd_op ops[2][TXN_MAX_OPS];
	size_t n_cmp, n_ops[2];
};

static void skip_space(char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\r')
		(*p)++;
}

/* One word at *p: "quoted" (with \" \\ \n \t) or bare up to a space or
 * one of stop.  Unquoted in place; returns its start, NULL on a bad quote. */
static char *word(char **p, size_t *len, const char *stop)
{
	skip_space(p);
	char *s = *p, *d = *p;
	if (*s == '"') {
		char *q = s + 1;
		for (; *q && *q != '"'; q++) {
			if (*q == '\\') {
				q++;
				switch (*q) {
				case 'n': *d++ = '\n'; break;
				case 't': *d++ = '\t'; break;
				case '"': case '\\': *d++ = *q; break;
				default: return NULL;
				}
			} else {
				*d++ = *q;
			}
		}
		if (*q != '"')
			return NULL;
		*len = (size_t)(d - s);
		*p = q + 1;
		return s;
	}
	while (**p && **p != ' ' && **p != '\t' && **p != '\r' && !strchr(stop, **p))
		(*p)++;
	*len = (size_t)(*p - s);
	return s;
}

static int txn_bad(unsigned line, const char *what)
{
	cli_error("line %u: %s", line, what);
	return EXIT_USAGE;
}

/* value("k") = "v"  |  version("k") > 3  |  mod("k") < 10  |  lease("k") = 694d.. */
static int txn_compare(struct txn *t, char *p, unsigned line)
{
	static const struct { const char *name; enum etcd_target t; } targets[] = {
		{"value", ETCD_VALUE}, {"val", ETCD_VALUE}, {"version", ETCD_VERSION}, {"ver", ETCD_VERSION},
		{"create", ETCD_CREATE}, {"c", ETCD_CREATE}, {"mod", ETCD_MOD}, {"m", ETCD_MOD},
		{"lease", ETCD_LEASE},
	};
	if (t->n_cmp == TXN_MAX_OPS)
		return txn_bad(line, "more than 128 compares");
	struct etcd_compare *c = &t->cmp[t->n_cmp];
	memset(c, 0, sizeof *c);
	skip_space(&p);
	char *name = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
		p++;
	size_t nl = (size_t)(p - name);
	size_t i = 0;
	for (; i < sizeof targets / sizeof targets[0]; i++)
		if (strlen(targets[i].name) == nl && strncmp(targets[i].name, name, nl) == 0)
			break;
	if (i == sizeof targets / sizeof targets[0]) {
		if (strncmp(name, "put", 3) == 0 || strncmp(name, "get", 3) == 0 || strncmp(name, "del", 3) == 0)
			return txn_bad(line, "an operation among the compares; a txn without compares starts "
			                     "with a blank line");
		return txn_bad(line, "want a compare: value|version|create|mod|lease(\"KEY\") =|!=|>|< VALUE");
	}
	c->target = targets[i].t;
	skip_space(&p);
	if (*p++ != '(')
		return txn_bad(line, "want '(' after the compare's target");
	size_t kl;
	char *k = word(&p, &kl, ")");
	skip_space(&p);
	if (!k || *p++ != ')')
		return txn_bad(line, "want (\"KEY\") after the compare's target");
	skip_space(&p);
	if (p[0] == '!' && p[1] == '=')
		c->result = ETCD_NOT_EQUAL, p += 2;
	else if (p[0] == '=')
		c->result = ETCD_EQUAL, p += p[1] == '=' ? 2 : 1;
	else if (p[0] == '>')
		c->result = ETCD_GREATER, p++;
	else if (p[0] == '<')
		c->result = ETCD_LESS, p++;
	else
		return txn_bad(line, "want one of = != > < after the key");
	size_t vl;
	char *v = word(&p, &vl, "");
	skip_space(&p);
	if (!v || *p)
		return txn_bad(line, "want one value after the operator (quote it if it has spaces)");
	c->key = k;
	c->key_len = kl;
	if (c->target == ETCD_VALUE) {
		c->value = v;
		c->value_len = vl;
	} else {
		v[vl] = '\0';   /* the value is the line's last word */
		int bad = c->target == ETCD_LEASE ? parse_lease_id(v, &c->number)
		                                  : parse_i64(v, &c->number);
		if (bad < 0)
			return txn_bad(line, c->target == ETCD_LEASE ? "a lease compares with a hexadecimal ID"
			                                             : "version, create and mod compare with an integer");
	}
	k[kl] = '\0';
	t->n_cmp++;
	return 0;
}

/* put KEY VALUE [--lease ID] [--prev-kv] | get KEY [--prefix] | del KEY [--prefix] [--prev-kv] */
static int txn_op(struct txn *t, int branch, char *p, unsigned line)
{
	char *w[8];
	size_t wl[8];
	int n = 0;
	for (skip_space(&p); *p; skip_space(&p)) {
		if (n == 8)
			return txn_bad(line, "too many words for one operation");
		if (!(w[n] = word(&p, &wl[n], "")))
			return txn_bad(line, "a quote that does not end");
		n++;
	}
	for (int i = 0; i < n; i++)
		w[i][wl[i]] = '\0';
	if (t->n_ops[branch] == TXN_MAX_OPS)
		return txn_bad(line, "more than 128 operations in one branch");
	struct etcd_op *op = &t->ops[branch][t->n_ops[branch]];
	memset(op, 0, sizeof *op);
	int args;
	if (strcmp(w[0], "put") == 0)
		op->kind = ETCD_OP_PUT, args = 2;
	else if (strcmp(w[0], "get") == 0 || strcmp(w[0], "range") == 0)
		op->kind = ETCD_OP_RANGE, args = 1;
	else if (strcmp(w[0], "del") == 0 || strcmp(w[0], "delete") == 0)
		op->kind = ETCD_OP_DELETE, args = 1;
	else
		return txn_bad(line, "want an operation: put KEY VALUE, get KEY or del KEY");
	int i = 1, operands = 0;
	for (; i < n; i++) {
		if (strcmp(w[i], "--prefix") == 0 && op->kind != ETCD_OP_PUT) {
			op->r.prefix = true;
		} else if (strcmp(w[i], "--prev-kv") == 0 && op->kind != ETCD_OP_RANGE) {
			op->prev_kv = true;
		} else if (strncmp(w[i], "--lease", 7) == 0 && op->kind == ETCD_OP_PUT) {
			const char *id = w[i][7] == '=' ? w[i] + 8 : w[i][7] == '\0' && i + 1 < n ? w[++i] : "";
			if (parse_lease_id(id, &op->lease) < 0 || op->lease == 0)
				return txn_bad(line, "--lease wants a hexadecimal lease ID");
		} else if (operands == 0) {
			op->r.key = w[i], op->r.key_len = wl[i], operands++;
		} else if (operands == 1 && op->kind == ETCD_OP_PUT) {
			op->value = w[i], op->value_len = wl[i], operands++;
		} else {
			return txn_bad(line, op->kind == ETCD_OP_PUT ? "want put KEY VALUE [--lease ID] [--prev-kv]"
			               : op->kind == ETCD_OP_RANGE ? "want get KEY [--prefix]"
			                                           : "want del KEY [--prefix] [--prev-kv]");
		}
	}
	if (operands != args)
		return txn_bad(line, op->kind == ETCD_OP_PUT ? "want put KEY VALUE" : "want a KEY");
	t->n_ops[branch]++;
	return 0;
}

static int txn_parse(struct txn *t, char *text)
{
	int section = 0;   /* compares, success, failure */
	unsigned line = 0;
	for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		line++;
		char *q = p;
		skip_space(&q);
		if (*q == '#')
			continue;
		if (*q == '\0') {
			section++;
			continue;
		}
		if (section > 2)
			return txn_bad(line, "more than three sections (compares, success, failure)");
		int r = section == 0 ? txn_compare(t, q, line) : txn_op(t, section - 1, q, line);
		if (r)
			return r;
	}
	return 0;
}

static void txn_responses(struct json_writer *w, const struct etcd_resp *r, const struct etcd_op *ops,
                          size_t n_ops)
{
	json_key(w, "responses");
	json_arr_begin(w);
	for (size_t i = 0; i < r->n_responses; i++) {
		const struct etcd_resp *s = &r->responses[i];
		json_obj_begin(w);
		switch (r->response_kinds[i]) {
		case ETCD_OP_PUT:
			json_kv_str(w, "op", "put");
			if (i < n_ops && ops[i].prev_kv && s->n_prev_kvs)
				kv_object(w, "prev_kv", &s->prev_kvs[0], true);
			break;
		case ETCD_OP_RANGE:
			json_kv_str(w, "op", "get");
			json_kv_i64(w, "count", s->count);
			kv_array(w, "kvs", s->kvs, s->n_kvs, true);
			break;
		case ETCD_OP_DELETE:
			json_kv_str(w, "op", "del");
			json_kv_i64(w, "deleted", s->deleted);
			if (i < n_ops && ops[i].prev_kv)
				kv_array(w, "prev_kvs", s->prev_kvs, s->n_prev_kvs, true);
			break;
		}
		json_obj_end(w);
	}
	json_arr_end(w);
}

static int txn_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)o;
	const struct txn *t = ctx;
	struct line l;
	line_begin(&l);
	json_kv_bool(&l.w, "succeeded", r->succeeded);
	json_kv_i64(&l.w, "revision", r->revision);
	int br = r->succeeded ? 0 : 1;
	txn_responses(&l.w, r, t->ops[br], t->n_ops[br]);
	return line_end(&l, r->succeeded ? EXIT_OK : EXIT_NO);
}

static int txn_run(const struct copts *o, char **args, int n)
{
	(void)args;
	(void)n;
	struct buf in = BUF_INIT;
	int r;
	if ((r = read_stdin(&in, TXN_MAX_INPUT, "script")) != 0) {
		buf_free(&in);
		return r;
	}
	buf_putc(&in, '\0');
	if (memchr(in.data, '\0', in.len - 1)) {
		cli_error("a NUL byte in the script on stdin");
		buf_free(&in);
		return EXIT_USAGE;
	}
	struct txn *t = calloc(1, sizeof *t);
	if (!t) {
		buf_free(&in);
		return EXIT_NO;
	}
	r = txn_parse(t, in.data);
	if (r == 0) {
		struct buf body = BUF_INIT;
		etcd_req_txn(&body, t->cmp, t->n_cmp, t->ops[0], t->n_ops[0], t->ops[1], t->n_ops[1]);
		r = request(o, ETCD_PATH_TXN, &body, "", txn_answer, t);
	}
	buf_free(&in);
	free(t);
	return r;
}

/* ------------------------------------------------------------ watch */

static volatile bool stopping;
static uv_signal_t sig_int, sig_term;

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	stopping = true;
}

static void signals_start(void)
{
	uv_signal_init(uv_default_loop(), &sig_int);
	uv_signal_init(uv_default_loop(), &sig_term);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
}

struct watch_run {
	const struct copts *o;
	struct etcd_watch *w;
	uint64_t seen;
	bool done;            /* stop now; rc says how */
	bool lib_ended;       /* the client ended the watch (err < 0): not ours to stop */
	int rc;
};

static void on_watch(void *ud, int err, const struct etcd_watch_msg *m)
{
	struct watch_run *wr = ud;
	if (err < 0)
		wr->lib_ended = true;
	if (wr->done)
		return;
	wr->done = true;
	wr->rc = EXIT_NO;
	if (err == ETCD_E_COMPACTED) {
		/* the start revision, or where a re-opened stream went on from */
		cli_error("revision %lld has been compacted; the oldest left is %lld",
		          (long long)etcd_watch_revision(wr->w) + 1, (long long)m->compact_revision);
		return;
	}
	if (err == ETCD_E_SERVER) {
		cli_error("%s", m && m->error_message ? m->error_message : "canceled by the server");
		return;
	}
	if (err < 0) {
		cli_error("%s", etcd_strerror(err));
		return;
	}
	wr->done = false;
	for (size_t i = 0; i < m->n_events && !wr->done; i++) {
		const struct etcd_event *e = &m->events[i];
		struct line l;
		line_begin(&l);
		json_kv_str(&l.w, "type", e->is_delete ? "DELETE" : "PUT");
		kv_fields(&l.w, &e->kv, true);
		if (wr->o->prev_kv && e->has_prev)
			kv_object(&l.w, "prev_kv", &e->prev_kv, true);
		int rc = line_end(&l, 0);
		if (rc) {
			wr->done = true;
			wr->rc = rc;
		} else if (wr->o->count && ++wr->seen == wr->o->count) {
			wr->done = true;
			wr->rc = EXIT_OK;
		}
	}
}

static int watch_run(const struct copts *o, char **args, int n)
{
	(void)n;
	int r;
	struct etcd_range rg = { args[0], strlen(args[0]), NULL, 0, o->prefix };
	signals_start();   /* a SIGTERM during the first read still ends it with 0 */
	/* "from now" is the revision a first read sees: it also proves the
	 * cluster answers, where a watch alone would retry forever */
	struct buf body = BUF_INIT;
	struct etcd_range_opts ro = { .count_only = true };
	etcd_req_range(&body, &rg, &ro);
	struct etcd_resp resp;
	int err = call(o, ETCD_PATH_RANGE, &body, &resp, o->started);
	buf_free(&body);
	if (err < 0) {
		r = call_error(o, err, &resp, "");
		etcd_resp_free(&resp);
		return r;
	}
	int64_t from = o->rev ? o->rev : resp.revision + 1;
	etcd_resp_free(&resp);
	if (stopping)
		return finish(EXIT_OK);
	uv_loop_t *loop = uv_default_loop();
	/* the stream itself has no end: the timeout is the retries' business */
	struct etcd_options eo = { .timeout_ms = (unsigned)o->timeout_ms,
	                           .connect_timeout_ms = o->timeout_ms < 1000 ? (unsigned)o->timeout_ms : 1000 };
	struct etcd_client *c = etcd_client_new(loop, &o->url, &eo);
	struct watch_run wr = { .o = o };
	struct etcd_watch *w = c ? etcd_watch_start(c, &rg, from, o->prev_kv, on_watch, &wr) : NULL;
	wr.w = w;
	if (!w) {
		cli_error("out of memory");
		return EXIT_NO;
	}
	while (!wr.done && !stopping)
		uv_run(loop, UV_RUN_ONCE);
	if (!wr.lib_ended)
		etcd_watch_stop(w);
	etcd_client_free(c);
	uv_run(loop, UV_RUN_NOWAIT);
	return finish(wr.done ? wr.rc : EXIT_OK);
}

/* ------------------------------------------------------------ lease */

static int lease_line(int64_t id, const char *k1, int64_t v1)
{
	char hex[24];
	lease_hex(hex, sizeof hex, id);
	struct line l;
	line_begin(&l);
	json_kv_str(&l.w, "id", hex);
	if (k1)
		json_kv_i64(&l.w, k1, v1);
	return line_end(&l, 0);
}

static int grant_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)o;
	(void)ctx;
	return lease_line(r->lease_id, "ttl", r->ttl);
}

static int lease_grant(const struct copts *o, const char *arg)
{
	uint64_t ms;
	if (parse_duration_ms(arg, &ms) < 0 || ms == 0 || ms > 9000000000000ULL) {
		cli_error("grant: invalid TTL '%s': want seconds (10) or a duration (10s, 1m)", arg);
		return EXIT_USAGE;
	}
	struct buf body = BUF_INIT;
	etcd_req_lease_grant(&body, (int64_t)((ms + 999) / 1000), 0);
	return request(o, ETCD_PATH_GRANT, &body, "grant: ", grant_answer, NULL);
}

static int revoke_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)o;
	char hex[24];
	lease_hex(hex, sizeof hex, *(const int64_t *)ctx);
	struct line l;
	line_begin(&l);
	json_kv_str(&l.w, "id", hex);
	json_kv_bool(&l.w, "revoked", true);
	json_kv_i64(&l.w, "revision", r->revision);
	return line_end(&l, EXIT_OK);
}

static int lease_revoke(const struct copts *o, int64_t id)
{
	struct buf body = BUF_INIT;
	etcd_req_lease_revoke(&body, id);
	return request(o, ETCD_PATH_REVOKE, &body, "revoke: ", revoke_answer, &id);
}

static int ttl_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	char hex[24];
	lease_hex(hex, sizeof hex, *(const int64_t *)ctx);
	if (r->ttl < 0) {
		cli_error("ttl: lease %s not found (expired or revoked)", hex);
		return EXIT_NO;
	}
	struct line l;
	line_begin(&l);
	json_kv_str(&l.w, "id", hex);
	json_kv_i64(&l.w, "ttl", r->ttl);
	json_kv_i64(&l.w, "granted_ttl", r->granted_ttl);
	if (o->keys) {
		json_key(&l.w, "keys");
		json_arr_begin(&l.w);
		for (size_t i = 0; i < r->n_lease_keys; i++)
			json_strn(&l.w, r->lease_keys[i].key ? r->lease_keys[i].key : "", r->lease_keys[i].key_len);
		json_arr_end(&l.w);
	}
	return line_end(&l, EXIT_OK);
}

static int lease_ttl(const struct copts *o, int64_t id)
{
	struct buf body = BUF_INIT;
	etcd_req_lease_timetolive(&body, id, o->keys);
	return request(o, ETCD_PATH_TTL, &body, "ttl: ", ttl_answer, &id);
}

static int list_answer(const struct copts *o, const struct etcd_resp *r, const void *ctx)
{
	(void)o;
	(void)ctx;
	int rc = 0;
	for (size_t i = 0; i < r->n_leases && rc == 0; i++)
		rc = lease_line(r->leases[i], NULL, 0);
	return rc;
}

static int lease_list(const struct copts *o)
{
	struct buf body = BUF_INIT;
	buf_puts(&body, "{}");
	return request(o, ETCD_PATH_LEASES, &body, "list: ", list_answer, NULL);
}

static void timer_fire_cb(uv_timer_t *t) { *(bool *)t->data = true; }

/* Renew every third of the TTL (etcd's clients do the same) until a
 * signal or --count; a failed renewal is tried again every 500ms until
 * the lease would have expired: then it is lost (exit 5). */
static int lease_keepalive(const struct copts *o, int64_t id)
{
	uv_loop_t *loop = uv_default_loop();
	signals_start();
	uv_timer_t timer;
	bool fired = false;
	uv_timer_init(loop, &timer);
	timer.data = &fired;
	char hex[24];
	lease_hex(hex, sizeof hex, id);
	uint64_t seen = 0, expires = 0;
	int r = -1;
	struct buf body = BUF_INIT;
	etcd_req_lease_keepalive(&body, id);
	while (r < 0 && !stopping) {
		struct etcd_resp resp;
		uint64_t t0 = now_ms(), wait = 500;
		int err = call(o, ETCD_PATH_KEEPALIVE, &body, &resp, t0);
		if (err == 0 && resp.ttl <= 0) {
			cli_error("keepalive: lease %s expired or was revoked", hex);
			r = seen ? EXIT_LOST : EXIT_NO;
		} else if (err == 0) {
			expires = now_ms() + (uint64_t)resp.ttl * 1000;
			seen++;
			int wr = lease_line(id, "ttl", resp.ttl);
			if (wr)
				r = wr;
			else if (o->count && seen >= o->count)
				r = EXIT_OK;
			wait = (uint64_t)resp.ttl * 1000 / 3;
		} else if (err == ETCD_E_SERVER || !seen || now_ms() >= expires) {
			r = call_error(o, err, &resp, "keepalive: ");
			if (seen && err != ETCD_E_SERVER) {
				cli_error("keepalive: lease %s lost: not renewed before its TTL ran out", hex);
				r = EXIT_LOST;
			}
		}
		etcd_resp_free(&resp);
		if (r >= 0)
			break;
		fired = false;
		uv_timer_start(&timer, timer_fire_cb, wait ? wait : 1, 0);
		while (!fired && !stopping)
			uv_run(loop, UV_RUN_ONCE);
		uv_timer_stop(&timer);
	}
	buf_free(&body);
	return finish(r < 0 ? EXIT_OK : r);
}

static int lease_run(const struct copts *o, char **args, int n)
{
	const char *sub = args[0];
	const char *arg = n > 1 ? args[1] : NULL;
	static const char *const subs[] = {"grant", "revoke", "keepalive", "ttl", "list"};
	int s = 0;
	for (; s < 5 && strcmp(sub, subs[s]) != 0; s++)
		;
	if (s == 5) {
		cli_error("unknown lease command '%s'; want grant, revoke, keepalive, ttl or list", sub);
		return EXIT_USAGE;
	}
	if ((s == 4) != (arg == NULL)) {
		cli_error(s == 4 ? "lease list takes no argument" : s == 0 ? "lease grant wants a TTL"
		                                                          : "lease %s wants a lease ID", sub);
		return EXIT_USAGE;
	}
	int64_t id = 0;
	if (s >= 1 && s <= 3 && (parse_lease_id(arg, &id) < 0 || id == 0)) {
		cli_error("%s: invalid lease ID '%s': want hexadecimal, as lease grant prints it", sub, arg);
		return EXIT_USAGE;
	}
	switch (s) {
	case 0: return lease_grant(o, arg);
	case 1: return lease_revoke(o, id);
	case 2: return lease_keepalive(o, id);
	case 3: return lease_ttl(o, id);
	default: return lease_list(o);
	}
}

/* The subcommands: each one's options and operands (min..max), then what
 * it does with them, once parse() took the command line. */
static const struct subcommand {
	const char *name;
	const struct cli_spec *spec;
	int min, max;
	int (*run)(const struct copts *o, char **args, int n);
} subcommands[] = {
	{"put", &put_spec, 1, 2, put_run},
	{"get", &get_spec, 1, 1, get_run},
	{"del", &del_spec, 1, 1, del_run},
	{"txn", &txn_spec, 0, 0, txn_run},
	{"watch", &watch_spec, 1, 1, watch_run},
	{"lease", &lease_spec, 1, 2, lease_run},   /* last: what any other name runs */
};

int client_main(const char *cmd, int argc, char **argv)
{
	size_t last = sizeof subcommands / sizeof subcommands[0] - 1, i = 0;
	while (i < last && strcmp(cmd, subcommands[i].name) != 0)
		i++;
	const struct subcommand *sc = &subcommands[i];
	struct copts o;
	int first;
	int r = parse(sc->spec, argc, argv, &o, sc->min, sc->max, &first);
	if (r >= 0)
		return r;
	return sc->run(&o, argv + first, argc - first);
}
