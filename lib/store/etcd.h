/*
 * store/etcd.h -- an etcd v3 client, on our libuv loop: its unary calls in
 * gRPC (etcd://), or all of it through etcd's JSON gateway (etcd+json://).
 *
 * etcd 3.4 serves its gRPC API and, beside it on the same port, the same
 * API as JSON over HTTP/1.1 (grpc-gateway): each call a POST of a JSON
 * body to a fixed path, checked against etcd-server 3.4.23 with curl:
 *
 *   /v3/kv/range  /v3/kv/put  /v3/kv/deleterange  /v3/kv/txn
 *   /v3/lease/grant  /v3/kv/lease/revoke  /v3/kv/lease/timetolive
 *   /v3/lease/keepalive (answer wrapped in {"result":..})
 *   /v3/watch (a stream: one {"result":..} object per line)
 *
 * The gateway's conventions, which this module hides: keys and values are
 * base64 in the JSON; int64 fields (revisions, versions, lease ids, TTLs,
 * counts) are JSON strings, which we read with an exact integer parser
 * (never through double: revisions and lease ids above 2^53 stay exact);
 * fields at their zero value (false, 0, empty) are left out; an error is
 * {"error":..,"code":N,"message":..} with N a gRPC status code.
 *
 * Transports.  On etcd:// every unary call (range, put, deleterange, txn,
 * lease grant/revoke/timetolive/leases, and a keepalive: a LeaseKeepAlive
 * stream carrying one request, then END_STREAM) is a gRPC call
 * (/etcdserverpb.KV/Range ...) on one kept-alive h2c connection per
 * endpoint (lib/http/client_h2), its calls multiplexed as streams.  The
 * gateway costs about four times as much per call (HTTP/1.1 and JSON
 * both ends: a put ~2.5 ms against ~0.6 ms, a range of 1000 keys 13-16
 * ms against ~5 ms, measured on etcd 3.4).  The request is still built
 * once, as the gateway's JSON (etcd_req_*, the one builder), and
 * store/etcd_pb translates it to protobuf by field name; the answer is
 * decoded from protobuf straight into struct etcd_resp (etcd_parse_grpc),
 * with the same meaning etcd_parse gives the gateway's.  etcd's errors
 * come as grpc-status (the same code the gateway puts in "code") and
 * grpc-message (its "message").  Watch stays on the gateway's stream on
 * both (/v3/watch), as does every call on etcd+json:// and any other
 * path given to etcd_call (one with no method in store/etcd_pb).
 *
 * Two layers.
 *
 * 1. Requests and answers, pure (no I/O; unit-tested and fuzzed):
 *    etcd_req_* append a call's JSON body to a struct buf; etcd_parse reads
 *    any unary answer into struct etcd_resp; etcd_parse_watch reads one
 *    line of a watch stream; store/etcd_pb.h has the gRPC side
 *    (etcd_grpc_request, etcd_parse_grpc).  Keys and values are byte
 *    strings (any byte, NUL included) given as pointer + length.
 *
 * 2. The client (struct etcd_client), on the caller's libuv loop (uv_tcp_t
 *    connections; no libcurl is loaded).  gRPC calls share one h2c
 *    connection per endpoint, any number at once.  Gateway calls (and
 *    watches) use our own HTTP/1.1 client (answers framed by
 *    lib/http/parse), one call per connection at a time, connections kept
 *    alive and reused, so a CLI's few calls share one TCP connection.
 *    Calls are asynchronous: etcd_call posts a
 *    body and later calls back exactly once, always from the loop, never
 *    from inside etcd_call.  The endpoints come from an etcd://H:P,H:P
 *    URL; the client uses one at a time and moves on to the next when a
 *    connection cannot be made, is refused, times out, or etcd answers
 *    "unavailable" (gRPC code 14, e.g. a member cut off from the
 *    quorum).  A call gives up when
 *    every endpoint failed once (ETCD_E_UNREACHABLE) or its own timeout
 *    passed (ETCD_E_TIMEOUT).  A call whose request may have reached etcd
 *    before the failure (a timeout after connecting) is resent to the next
 *    endpoint only when it is safe to repeat: range, timetolive, keepalive
 *    and a txn made only of compares and ranges; a put, delete, grant,
 *    revoke or writing txn gets ETCD_E_TIMEOUT, or -ECONNRESET when the
 *    connection broke with it in flight: its outcome is unknown, and
 *    resending it could apply it twice.  (On gRPC a call that times out
 *    has its stream reset; the connection stays for the others.  A
 *    stream etcd refused unprocessed -- REFUSED_STREAM, or past a GOAWAY's
 *    last stream -- counts as never sent.)  Killing the etcd *leader* can
 *    also drop a write in flight inside etcd; that shows as
 *    ETCD_E_TIMEOUT, as with etcdctl ("request timed out").  A member
 *    that answers UNAVAILABLE (gRPC code 14) sends a read on to the
 *    next endpoint, but a write only when the message is exactly
 *    "etcdserver: no leader" (never proposed); any other UNAVAILABLE
 *    answer to a write ("leader changed", "request timed out", "server
 *    stopped") may come after a proposal that can still commit, and is
 *    returned as ETCD_E_SERVER (error_code 14), as etcd's own client
 *    does: a write is applied at most once.  dsys-raft answers "no
 *    leader" for a write it can show it never proposed or forwarded.
 *
 *    etcd_sync runs the loop until one call's answer, for CLI programs
 *    whose loop does nothing else.
 *
 *    Watch (etcd_watch_start) is a streaming POST whose lines are parsed
 *    as they arrive.  When the stream breaks (etcd restarted, endpoint
 *    killed), the watch is created again, on the next endpoint, from the
 *    last revision it delivered + 1, so no event is lost or repeated.  If
 *    that revision was compacted away, the callback gets
 *    ETCD_E_COMPACTED with the compact revision and the watch stops.
 *    While no endpoint answers, the watch tries again every
 *    watch_retry_ms, for as long as it runs: the caller decides when an
 *    outage is too long (etcd_client_endpoint says where it is trying).
 *    A silent peer (no FIN, no RST) is found by TCP keepalive (5 s idle,
 *    then probes 2 s apart).
 *
 *    Leases: etcd_req_lease_keepalive + etcd_call refreshes a lease once;
 *    the caller schedules it (every third of the TTL is what etcd's own
 *    client does).  The answer's ttl is 0 when the lease is gone.
 *
 * A call, end to end (a CLI program; a server would use etcd_call and a
 * callback instead of etcd_sync):
 *
 *     struct store_url u;                    // from --store etcd://H:P,H:P
 *     struct etcd_client *c = etcd_client_new(uv_default_loop(), &u, NULL);
 *     struct buf body; buf_init(&body);
 *     struct etcd_compare free_ = { .key = key, .key_len = key_len, .target = ETCD_CREATE };
 *     struct etcd_op put = { .kind = ETCD_OP_PUT, .r = { key, key_len },
 *                            .value = me, .value_len = me_len, .lease = lease };
 *     etcd_req_txn(&body, &free_, 1, &put, 1, NULL, 0);
 *     struct etcd_resp r;
 *     int err = etcd_sync(c, ETCD_PATH_TXN, &body, &r);
 *     if (err == 0 && r.succeeded)
 *         fence = r.revision;                // the key's create revision
 *     else if (err < 0)
 *         warn("%s", err == ETCD_E_SERVER ? r.error_message : etcd_strerror(err));
 *     etcd_resp_free(&r); buf_free(&body); etcd_client_free(c);
 *
 * Tests: tests/unit/test_etcd.c (bodies, parsing, base64, exact int64,
 * UNAVAILABLE answers on the gateway), tests/unit/test_etcd_grpc.c (each
 * call's protobuf request and answer; at-most-once, failover, keep-alive
 * and timeouts against scripted h2c members), tests/fuzz/fuzz_etcd.c and
 * fuzz_etcd_pb.c (the parsers), tests/etcd.bats (real etcd members and
 * etcdctl, through tests/bench/etcd_cli, on both transports).
 *
 * Errors are negative codes: -errno values (-ENOMEM, -EINVAL, -ECANCELED)
 * or ETCD_E_*; etcd_strerror names them.  ETCD_E_SERVER means etcd
 * answered with an error: resp->error_code (gRPC code) and
 * resp->error_message say which.
 *
 * Ownership.  The client owns its endpoints, connections and in-flight
 * calls; struct etcd_resp passed to a callback belongs to the client and
 * is freed after the callback returns (copy what you keep).  A struct
 * etcd_resp filled by etcd_parse or etcd_sync is the caller's, freed with
 * etcd_resp_free.  Bodies given to etcd_call are copied.  A watch belongs
 * to the caller until etcd_watch_stop, which frees it; etcd_client_free
 * fails every in-flight call with -ECANCELED and stops every watch (its
 * callback gets -ECANCELED; the caller must not stop it again).
 * Threads: a client lives on one loop thread.
 */
#ifndef DSYS_STORE_ETCD_H
#define DSYS_STORE_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/buf.h"
#include "store/url.h"

/* ------------------------------------------------------------ errors */

#define ETCD_E_UNREACHABLE (-20001)   /* no endpoint accepted a connection */
#define ETCD_E_TIMEOUT     (-20002)   /* the call's timeout passed */
#define ETCD_E_SERVER      (-20003)   /* etcd's own error: see error_code */
#define ETCD_E_PROTOCOL    (-20004)   /* an answer we cannot read */
#define ETCD_E_COMPACTED   (-20005)   /* watch: start revision compacted */

const char *etcd_strerror(int err);

/* ------------------------------------------------------------ base64 */

/* Standard base64 with padding.  encode appends 4*ceil(n/3) bytes;
 * decode appends the bytes and returns 0, or -EINVAL on bad input. */
void etcd_b64_encode(struct buf *out, const void *p, size_t n);
int etcd_b64_decode(struct buf *out, const char *s, size_t n);

/* ------------------------------------------------------------ requests */

/* A key range: key alone is one key; with range_end, [key, range_end);
 * prefix=true makes range_end the prefix's successor (etcdctl --prefix;
 * an empty key with prefix means every key). */
struct etcd_range {
	const char *key; size_t key_len;
	const char *end; size_t end_len;     /* NULL: one key (unless prefix) */
	bool prefix;
};

struct etcd_range_opts {
	int64_t limit;       /* 0: no limit */
	int64_t revision;    /* 0: the newest */
	bool keys_only, count_only;
	bool serializable;   /* any member answers from its own state */
};

enum etcd_target { ETCD_CREATE, ETCD_MOD, ETCD_VERSION, ETCD_VALUE, ETCD_LEASE };
enum etcd_cmp    { ETCD_EQUAL, ETCD_GREATER, ETCD_LESS, ETCD_NOT_EQUAL };

struct etcd_compare {
	const char *key; size_t key_len;
	enum etcd_target target;
	enum etcd_cmp result;
	int64_t number;                     /* for CREATE, MOD, VERSION, LEASE */
	const char *value; size_t value_len; /* for VALUE */
	bool prefix;                        /* every key under key must match
	                                       (etcd's range compare, 3.3+) */
};

enum etcd_op_kind { ETCD_OP_PUT, ETCD_OP_RANGE, ETCD_OP_DELETE };

struct etcd_op {
	enum etcd_op_kind kind;
	struct etcd_range r;                /* put uses r.key only */
	const char *value; size_t value_len; /* put */
	int64_t lease;                      /* put: 0 for none */
	bool prev_kv;                       /* put, delete */
};

/* Each appends one JSON body to out.  Paths: ETCD_PATH_*. */
#define ETCD_PATH_RANGE      "/v3/kv/range"
#define ETCD_PATH_PUT        "/v3/kv/put"
#define ETCD_PATH_DELETE     "/v3/kv/deleterange"
#define ETCD_PATH_TXN        "/v3/kv/txn"
#define ETCD_PATH_GRANT      "/v3/lease/grant"
#define ETCD_PATH_REVOKE     "/v3/kv/lease/revoke"
#define ETCD_PATH_TTL        "/v3/kv/lease/timetolive"
#define ETCD_PATH_KEEPALIVE  "/v3/lease/keepalive"
#define ETCD_PATH_LEASES     "/v3/kv/lease/leases"
#define ETCD_PATH_WATCH      "/v3/watch"

void etcd_req_range(struct buf *out, const struct etcd_range *r, const struct etcd_range_opts *o);
void etcd_req_put(struct buf *out, const char *key, size_t key_len, const char *value,
                  size_t value_len, int64_t lease, bool prev_kv);
void etcd_req_delete(struct buf *out, const struct etcd_range *r, bool prev_kv);
void etcd_req_txn(struct buf *out, const struct etcd_compare *cmp, size_t n_cmp,
                  const struct etcd_op *success, size_t n_success,
                  const struct etcd_op *failure, size_t n_failure);
void etcd_req_lease_grant(struct buf *out, int64_t ttl_s, int64_t id);   /* id 0: etcd picks */
void etcd_req_lease_revoke(struct buf *out, int64_t id);
void etcd_req_lease_timetolive(struct buf *out, int64_t id, bool keys);
void etcd_req_lease_keepalive(struct buf *out, int64_t id);
/* ETCD_PATH_LEASES takes the body "{}". */
/* start_revision 0: from now; prev_kv: DELETE events carry the old kv. */
void etcd_req_watch(struct buf *out, const struct etcd_range *r, int64_t start_revision,
                    bool prev_kv);

/* ------------------------------------------------------------ answers */

/* A kv's key and value belong to the struct etcd_resp (or watch message)
 * that holds it, and live as long as it does: read them, copy what you
 * keep, never free, realloc or keep them.  Each is its own allocation,
 * except the kvs of a gRPC range answer, which all lie in its kv_block. */
struct etcd_kv {
	char *key; size_t key_len;          /* decoded, NUL-terminated too */
	char *value; size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
};

struct etcd_resp {
	int64_t revision;                   /* header.revision */
	/* range (kvs), put (prev_kvs: at most one), deleterange (prev_kvs) */
	struct etcd_kv *kvs; size_t n_kvs;
	char *kv_block;                     /* when set: every key and value of
	                                       kvs, one allocation (etcd_parse_grpc
	                                       of a range); NULL: each its own */
	struct etcd_kv *prev_kvs; size_t n_prev_kvs;
	int64_t count;                      /* range: keys in range */
	bool more;                          /* range: limit cut it */
	int64_t deleted;                    /* deleterange */
	/* txn: which branch ran, and one answer per op of it, in order */
	bool succeeded;
	struct etcd_resp *responses; size_t n_responses;
	enum etcd_op_kind *response_kinds;
	/* lease grant / timetolive / keepalive; keys for timetolive */
	int64_t lease_id, ttl, granted_ttl;
	struct etcd_kv *lease_keys; size_t n_lease_keys;  /* only key set */
	int64_t *leases; size_t n_leases;   /* lease list: every lease's ID */
	/* etcd's error (ETCD_E_SERVER) */
	int error_code;
	char *error_message;
};

/*
 * Read one unary answer (any call's; a keepalive's {"result":..} wrapper
 * is unwrapped).  Returns 0 with *resp filled, ETCD_E_SERVER with
 * error_code/error_message filled, or ETCD_E_PROTOCOL (not JSON, a field
 * of the wrong type, bad base64, an integer out of range).  *resp is the
 * caller's in every case: etcd_resp_free it.
 */
int etcd_parse(const char *text, size_t len, struct etcd_resp *resp);
void etcd_resp_free(struct etcd_resp *resp);   /* zeroes it; safe twice */

struct etcd_event {
	bool is_delete;                     /* "type":"DELETE"; else a put */
	struct etcd_kv kv;                  /* a delete has key and mod_revision */
	struct etcd_kv prev_kv;             /* with prev_kv; key NULL otherwise */
	bool has_prev;
};

struct etcd_watch_msg {
	int64_t revision;                   /* header.revision */
	bool created, canceled;
	int64_t watch_id, compact_revision;
	struct etcd_event *events; size_t n_events;
	int error_code; char *error_message;
};

/* One line of a watch stream: {"result":{..}} or {"error":..}.  Returns 0,
 * ETCD_E_SERVER, ETCD_E_COMPACTED (compact_revision set) or
 * ETCD_E_PROTOCOL; *m is the caller's (etcd_watch_msg_free). */
int etcd_parse_watch(const char *text, size_t len, struct etcd_watch_msg *m);
void etcd_watch_msg_free(struct etcd_watch_msg *m);

/* ------------------------------------------------------------ client */

struct etcd_options {
	unsigned timeout_ms;          /* per call, every attempt included; default 5000 */
	unsigned connect_timeout_ms;  /* per endpoint attempt; default 1000 */
	unsigned max_pending;         /* calls in flight; default 1024, then -ENOBUFS */
	unsigned watch_retry_ms;      /* pause before re-creating a broken watch; default 100 */
};

struct etcd_client;

/* err 0: resp is etcd's answer (the call succeeded).  err ETCD_E_SERVER:
 * resp->error_code/error_message.  Other err: resp is NULL. */
typedef void (*etcd_cb)(void *ud, int err, const struct etcd_resp *resp);

/* u must be an etcd:// URL (gRPC) or etcd+json:// (u->etcd_json: the
 * gateway).  opts NULL: defaults.  Returns NULL on -ENOMEM
 * or when u has no hosts. */
struct etcd_client *etcd_client_new(uv_loop_t *loop, const struct store_url *u,
                                    const struct etcd_options *opts);
void etcd_client_free(struct etcd_client *c);   /* NULL is a no-op */

/* "127.0.0.1:2379": the endpoint calls go to now (borrowed). */
const char *etcd_client_endpoint(const struct etcd_client *c);

/* Post body[0..len) to path (an ETCD_PATH_*): the gateway's JSON, which
 * on gRPC is translated to the method's protobuf request.  Returns 0 (cb
 * will be called once) or a negative code (cb will not be called;
 * -EINVAL: on gRPC, a body that is not that call's JSON). */
int etcd_call(struct etcd_client *c, const char *path, const char *body, size_t len,
              etcd_cb cb, void *ud);

/* Run c's loop until the answer of one call.  Returns 0, ETCD_E_SERVER
 * (resp has the error) or another negative code; *resp is the caller's. */
int etcd_sync(struct etcd_client *c, const char *path, const struct buf *body,
              struct etcd_resp *resp);

struct etcd_watch;

/* Each message that carries events, in revision order.  err < 0 ends the
 * watch (ETCD_E_COMPACTED, ETCD_E_SERVER, -ECANCELED): the caller must
 * then not call etcd_watch_stop.  Messages are freed after the callback. */
typedef void (*etcd_watch_cb)(void *ud, int err, const struct etcd_watch_msg *m);

/* Watch r from start_revision (0: now).  Returns NULL on -ENOMEM. */
struct etcd_watch *etcd_watch_start(struct etcd_client *c, const struct etcd_range *r,
                                    int64_t start_revision, bool prev_kv,
                                    etcd_watch_cb cb, void *ud);
/* The last revision delivered (events), or start_revision - 1. */
int64_t etcd_watch_revision(const struct etcd_watch *w);
void etcd_watch_stop(struct etcd_watch *w);   /* frees w; no more callbacks */

#endif
