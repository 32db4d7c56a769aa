/*
 * dsys-serve -- a fast HTTP/1.1 microservice: /hello, /health, /metrics and
 * static routes.
 *
 * The program is wiring only: an option table, a router (lib/http/route)
 * filled with the default routes and the --route ones, a metrics registry,
 * and the server core (lib/http/server), which does all the work.  Bodies
 * of --route 'GET /p=@FILE' are read once at start and served from memory.
 *
 * --delay makes every route answer later instead of at once (a per-thread
 * FIFO and one timer per loop: the delay is the same for every request, so
 * the queue is in due-time order).  It is for trying clients against a slow
 * service, and it exercises the server's "answer later" path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "http/grpc.h"
#include "http/compress.h"
#include "http/route.h"
#include "http/user_service.pb-c.h"
#include "http/server.h"
#include "base/invariant.h"
#include "base/parse.h"
#include "base/json.h"
#include "base/log.h"
#include "obs/metrics.h"
#include "cli/server_cli.h"

#define MAX_STATIC_ROUTES 128
#define MAX_FILE_BYTES (64u << 20)

enum {
	OPT_ROUTE = 1, OPT_TYPE, OPT_DELAY, OPT_NO_DEFAULTS, OPT_COMPRESS, OPT_COMPRESS_MIN,
	OPT_COMPRESS_TYPES,
};

static const struct cli_option options[] = {
	SERVER_CLI_OPTIONS,
	SERVER_CLI_TRACE_OPTION,
	{"route", 'r', "'METHOD /PATH=BODY'", NULL, "serve BODY (or @FILE's contents) at METHOD /PATH (repeatable)", OPT_ROUTE},
	{"type", 'T', "MIME", NULL, "content type of the --route options after it (default: by extension, or text/plain)", OPT_TYPE},
	{"delay", 0, "DURATION", "DSYS_SERVE_DELAY", "answer every request but /health and /metrics DURATION late (default 0)", OPT_DELAY},
	{"no-default-routes", 0, NULL, NULL, "serve only the --route routes (and /health, /metrics)", OPT_NO_DEFAULTS},
	{"compress", 0, "CODINGS", "DSYS_COMPRESS", "content codings offered, by Accept-Encoding: br,gzip (default), br, gzip or none", OPT_COMPRESS},
	{"compress-min", 0, "SIZE", NULL, "compress answers of at least SIZE (default 1k)", OPT_COMPRESS_MIN},
	{"compress-types", 0, "LIST", NULL, "content types to compress, comma-separated, type/* allowed (default: text/*, JSON, XML, SVG, JavaScript, wasm)", OPT_COMPRESS_TYPES},
	CLI_END
};

static const struct cli_spec spec = {
	"dsys-serve", "[OPTION]...",
	"A fast HTTP/1.1 and h2c microservice: GET /hello, /health, /metrics, gRPC health and static routes.",
	options,
	"routes: GET /hello (\"Hello from dsys!\"), GET /health, GET /metrics, and each --route;\n"
	"  --route 'GET /index.html=@public/index.html' serves a file read once at start.\n"
	"prints {\"event\":\"ready\",\"listen\":\"HOST:PORT\",\"pid\":N,\"threads\":N} when it accepts;\n"
	"SIGTERM or SIGINT drains and exits 0.\n",
};

struct static_route {
	char *method, *path, *ctype;
	char *body;
	size_t len;
};

struct config {
	struct server_cli server;     /* --listen, --threads, limits, timeouts */
	const char *type;             /* --type in force */
	struct static_route routes[MAX_STATIC_ROUTES];
	size_t nroutes;
	uint64_t delay_ms;
	bool no_defaults;
	struct http_compress_config compress;  /* --compress* */
	struct http_compress_static *compressed[MAX_STATIC_ROUTES];  /* per route, or NULL */
};

/* ------------------------------------------------------------ --delay */

struct delayed {
	struct delayed *next;
	struct http_exchange *ex;
	http_handler_fn fn;
	void *arg;
	uint64_t due;                 /* loop ms */
};

struct delay_queue {
	uv_timer_t timer;
	struct delayed *head, *tail, *free;
	uint64_t delay_ms;
	struct http_router *router;
};

static void delay_fire(uv_timer_t *h)
{
	struct delay_queue *q = h->data;
	uint64_t now = uv_now(h->loop);
	while (q->head && q->head->due <= now) {
		struct delayed *d = q->head;
		q->head = d->next;
		if (!q->head)
			q->tail = NULL;
		http_router_handle(d->ex, q->router);
		d->next = q->free;
		q->free = d;
	}
	if (q->head)
		uv_timer_start(&q->timer, delay_fire, q->head->due - now, 0);
}

/* The server's handler with --delay: queue now, route when due. */
static void delay_handle(struct http_exchange *ex, void *arg)
{
	struct delay_queue *q = ex->thread_data;
	(void)arg;
	/* health checks and scrapes are not part of the simulated latency */
	const struct http_request *req = &ex->req;
	if ((req->path_len == 7 && !memcmp(req->path, "/health", 7)) ||
	    (req->path_len == 8 && !memcmp(req->path, "/metrics", 8))) {
		http_router_handle(ex, q->router);
		return;
	}
	struct delayed *d = q->free;
	if (d)
		q->free = d->next;
	else
		d = malloc(sizeof *d);  /* grows to the peak in flight, then reused */
	INVARIANT(d != NULL);
	d->next = NULL;
	d->ex = ex;
	d->due = uv_now(ex->loop) + q->delay_ms;
	if (q->tail)
		q->tail->next = d;
	else
		q->head = d;
	q->tail = d;
	if (q->head == d)
		uv_timer_start(&q->timer, delay_fire, q->delay_ms, 0);
}

static int delay_thread_init(struct http_thread *t, void *arg)
{
	struct config *cfg = arg;
	struct delay_queue *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->delay_ms = cfg->delay_ms;
	q->router = cfg->server.cfg.handler_arg;
	uv_timer_init(http_thread_loop(t), &q->timer);
	q->timer.data = q;
	http_thread_set_data(t, q);
	return 0;
}

static void delay_closed(uv_handle_t *h)
{
	struct delay_queue *q = h->data;
	while (q->free) {
		struct delayed *d = q->free;
		q->free = d->next;
		free(d);
	}
	free(q);
}

static void delay_thread_fini(struct http_thread *t, void *arg)
{
	struct delay_queue *q = http_thread_data(t);
	(void)arg;
	/* answer what is still queued (their clients are gone: dropped) */
	while (q->head) {
		struct delayed *d = q->head;
		q->head = d->next;
		http_router_handle(d->ex, q->router);
		d->next = q->free;
		q->free = d;
	}
	q->tail = NULL;
	uv_close((uv_handle_t *)&q->timer, delay_closed);
}

/* ------------------------------------------------------------ options */

static const char *type_by_extension(const char *path)
{
	static const char *const table[][2] = {
		{".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
		{".txt", "text/plain; charset=utf-8"}, {".json", "application/json"},
		{".css", "text/css; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"}, {".svg", "image/svg+xml"},
		{".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
		{".gif", "image/gif"}, {".webp", "image/webp"}, {".ico", "image/x-icon"},
		{".xml", "application/xml"}, {".pdf", "application/pdf"},
		{".wasm", "application/wasm"}, {".csv", "text/csv; charset=utf-8"},
		{".md", "text/markdown; charset=utf-8"}, {".jsonl", "application/jsonl"},
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
			if (!strcasecmp(dot, table[i][0]))
				return table[i][1];
	return "application/octet-stream";
}

/* Read a whole file (at most MAX_FILE_BYTES) into *out. */
/* A --route @FILE's contents, read once at start; an empty file is an
 * empty body, never NULL. */
static int read_file(const char *path, char **out, size_t *len)
{
	struct buf b = BUF_INIT;
	int e = buf_read_file(&b, path, MAX_FILE_BYTES);
	if (e < 0) {
		buf_free(&b);
		return e;
	}
	*out = b.data ? b.data : calloc(1, 1);
	*len = b.len;
	return 0;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

/* 'METHOD /path=BODY' or 'METHOD /path=@FILE' */
static int parse_route(struct config *cfg, const char *arg)
{
	if (cfg->nroutes == MAX_STATIC_ROUTES)
		return cli_bad_value(NULL, arg, "too many routes");
	const char *sp = strchr(arg, ' ');
	const char *eq = sp ? strchr(sp, '=') : NULL;
	if (!sp || !eq || sp[1] != '/')
		return cli_bad_value(NULL, arg, "expected 'METHOD /PATH=BODY' or 'METHOD /PATH=@FILE'");
	if (!is_token(arg, (size_t)(sp - arg)))
		return cli_bad_value(NULL, arg, "the method is not a token");
	for (const char *p = sp + 1; p < eq; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f)
			return cli_bad_value(NULL, arg, "the path holds a space, '?', '#' or a control character");
	struct static_route *r = &cfg->routes[cfg->nroutes];
	r->method = strndup(arg, (size_t)(sp - arg));
	r->path = strndup(sp + 1, (size_t)(eq - sp - 1));
	INVARIANT(r->method && r->path);
	const char *body = eq + 1;
	if (body[0] == '@') {
		int e = read_file(body + 1, &r->body, &r->len);
		if (e < 0) {
			cli_error("cannot read '%s': %s", body + 1, strerror(-e));
			free(r->method);
			free(r->path);
			return -1;
		}
		r->ctype = strdup(cfg->type ? cfg->type : type_by_extension(body + 1));
	} else {
		r->body = strdup(body);
		r->len = strlen(body);
		r->ctype = strdup(cfg->type ? cfg->type : "text/plain");
	}
	INVARIANT(r->body && r->ctype);
	cfg->nroutes++;
	return 0;
}

static int on_option(void *ctx, int id, const char *arg)
{
	struct config *cfg = ctx;
	int r = server_cli_option(&cfg->server, id, arg);
	if (r <= 0)
		return r;
	switch (id) {
	case OPT_ROUTE:
		return parse_route(cfg, arg);
	case OPT_TYPE:
		if (!*arg || strpbrk(arg, "\r\n"))
			return cli_bad_value(NULL, arg, "expected a media type like text/html");
		cfg->type = arg;
		return 0;
	case OPT_DELAY:
		return server_cli_duration(arg, &cfg->delay_ms);
	case OPT_NO_DEFAULTS:
		cfg->no_defaults = true;
		return 0;
	case OPT_COMPRESS:
		if (http_codings_parse(arg, &cfg->compress.codings) < 0)
			return cli_bad_value(NULL, arg, "expected br,gzip, br, gzip or none");
		return 0;
	case OPT_COMPRESS_MIN: {
		uint64_t v;
		if (server_cli_size(arg, 0, 1ull << 32, &v) < 0)
			return -1;
		cfg->compress.min_bytes = v;
		return 0;
	}
	case OPT_COMPRESS_TYPES:
		if (http_compress_types_parse(&cfg->compress, arg) < 0)
			return cli_bad_value(NULL, arg, "expected media types like text/html,application/json or text/*");
		return 0;
	}
	INVARIANT(0);
	return -1;
}

static const char hello_body[] = "Hello from dsys!";

/*
 * The tutorial's UserService over gRPC (lib/http/user_service.proto):
 * GetUser answers for user ids 1..1000000 with a made-up but stable user
 * ("user-N", 18 + N % 60 years), NOT_FOUND for other numbers and
 * INVALID_ARGUMENT for an id that is not a number or a malformed message.
 * A worked example of a gRPC route, not a directory.
 */
static void user_get(struct http_exchange *ex, void *arg)
{
	(void)arg;
	const uint8_t *msg;
	size_t len;
	int st = grpc_unary_message(ex, &msg, &len);
	if (st) {
		grpc_answer(ex, NULL, 0, st, "malformed UserRequest");
		return;
	}
	UserRequest *req = user_request__unpack(NULL, len, msg);
	if (!req) {
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, "malformed UserRequest");
		return;
	}
	uint64_t id = 0;
	int e = parse_u64(req->user_id, &id);
	user_request__free_unpacked(req, NULL);
	if (e < 0) {
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, "user_id is not a number");
		return;
	}
	if (id < 1 || id > 1000000) {
		grpc_answer(ex, NULL, 0, GRPC_NOT_FOUND, "no such user");
		return;
	}
	char name[32];
	snprintf(name, sizeof name, "user-%llu", (unsigned long long)id);
	UserResponse resp = USER_RESPONSE__INIT;
	resp.name = name;
	resp.age = (int32_t)(18 + id % 60);
	uint8_t out[64];
	size_t n = user_response__get_packed_size(&resp);
	INVARIANT(n <= sizeof out);
	user_response__pack(&resp, out);
	grpc_answer_message(ex, out, n);
}

/* ListUsers: count users (at most 10000) from first, streamed one message
 * each; the ids past 1000000 end the list early. */
static void user_list(struct http_exchange *ex, void *arg)
{
	(void)arg;
	const uint8_t *msg;
	size_t len;
	int st = grpc_unary_message(ex, &msg, &len);
	UserListRequest *req = st ? NULL : user_list_request__unpack(NULL, len, msg);
	if (!req) {
		grpc_answer(ex, NULL, 0, st ? st : GRPC_INVALID_ARGUMENT, "malformed UserListRequest");
		return;
	}
	uint64_t first = req->first ? req->first : 1, count = req->count;
	user_list_request__free_unpacked(req, NULL);
	if (count > 10000) {
		grpc_answer(ex, NULL, 0, GRPC_OUT_OF_RANGE, "count is over 10000");
		return;
	}
	grpc_stream_begin(ex);
	for (uint64_t id = first; id < first + count && id <= 1000000; id++) {
		char name[32];
		snprintf(name, sizeof name, "user-%llu", (unsigned long long)id);
		UserResponse resp = USER_RESPONSE__INIT;
		resp.name = name;
		resp.age = (int32_t)(18 + id % 60);
		uint8_t out[64];
		size_t n = user_response__get_packed_size(&resp);
		INVARIANT(n <= sizeof out);
		user_response__pack(&resp, out);
		if (grpc_stream_send(ex, out, n) < 0)
			break;   /* the client is gone */
	}
	grpc_stream_end(ex, GRPC_OK, NULL);
}

static void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].method);
		free(cfg->routes[i].path);
		free(cfg->routes[i].ctype);
		free(cfg->routes[i].body);
		http_compress_static_free(cfg->compressed[i]);
		cfg->compressed[i] = NULL;
	}
	cfg->nroutes = 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	struct metrics *reg = NULL;
	struct http_router *router = NULL;
	struct http_server *srv = NULL;
	int status = EXIT_OK;

	cli_init("dsys-serve");
	if (log_init("dsys-serve") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	server_cli_init(&cfg.server);
	http_compress_config_init(&cfg.compress);
	int first;
	int r = cli_parse(&spec, argc, argv, on_option, &cfg, &first);
	if (r >= 0) {
		status = r;
		goto out;
	}
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		fprintf(stderr, "Try 'dsys-serve --help' for more information.\n");
		status = EXIT_USAGE;
		goto out;
	}

	reg = metrics_new();
	metrics_process_register(reg);
	router = http_router_new(reg);
	for (size_t i = 0; i < cfg.nroutes; i++) {
		struct static_route *sr = &cfg.routes[i];
		int e;
		if (http_compress_wanted(&cfg.compress, sr->ctype, sr->len)) {
			/* compressed once, here, with each variant's ETag */
			cfg.compressed[i] = http_compress_static_new(&cfg.compress, sr->ctype, sr->body, sr->len);
			e = http_route_add(router, sr->method, sr->path, http_compress_static_handle,
			                   cfg.compressed[i]);
		} else {
			e = http_route_add_static(router, sr->method, sr->path, sr->ctype, sr->body, sr->len);
		}
		if (e < 0) {
			if (e == -EEXIST)
				cli_error("route '%s %s' given twice", sr->method, sr->path);
			else
				cli_error("invalid route '%s %s': %s", sr->method, sr->path, strerror(-e));
			status = EXIT_USAGE;
			goto out;
		}
	}
	/* defaults after the user's routes, so a --route can replace them */
	if (!cfg.no_defaults) {
		http_route_add_static(router, "GET", "/hello", "text/plain", hello_body,
		                      sizeof hello_body - 1);
		http_route_add(router, "POST", "/UserService/GetUser", user_get, NULL);
		http_route_add(router, "POST", "/UserService/ListUsers", user_list, NULL);
	}
	http_route_add_health(router);
	http_route_add_metrics(router, reg);

	cfg.server.cfg.metrics = reg;
	if (cfg.compress.codings) {
		cfg.server.cfg.encode = http_compress_encode;
		cfg.server.cfg.encode_arg = &cfg.compress;
	}
	cfg.server.cfg.handler = http_router_handle;
	cfg.server.cfg.handler_arg = router;
	if (cfg.delay_ms) {
		cfg.server.cfg.handler = delay_handle;
		cfg.server.cfg.thread_init = delay_thread_init;
		cfg.server.cfg.thread_fini = delay_thread_fini;
		cfg.server.cfg.thread_arg = &cfg;
	}
	status = server_cli_listen(&cfg.server, &srv);
	if (status == EXIT_OK) {
		status = server_cli_ready(srv, NULL, NULL);
		if (status == EXIT_OK)
			status = server_cli_run(srv);
	}
out:
	http_server_free(srv);
	http_router_free(router);
	metrics_free(reg);
	config_free(&cfg);
	return status;
}
