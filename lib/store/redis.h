/*
 * store/redis.h -- one asynchronous Redis client for redis:// and redis-cluster://,
 * living on one libuv loop.
 *
 * A program makes one client per loop thread from a parsed store URL
 * (store_url.h) and sends commands with redis_command_argv.  hiredis 0.14.1
 * does the protocol; this module adds what a service needs around it:
 *
 *   - Pipelining for free.  Commands issued during one loop iteration are
 *     appended to the connection's output buffer and leave in ONE write(2)
 *     when the socket next polls writable (checked with strace, see
 *     redis.c).  A server that answers many HTTP requests in one iteration
 *     therefore sends their Redis commands as one pipeline, without waiting.
 *   - Timeouts.  A command not answered within command_timeout_ms gets
 *     -ETIMEDOUT; since the connection's reply stream can no longer be
 *     matched to commands, the connection is dropped (its other in-flight
 *     commands get -ECONNRESET: their outcome is unknown) and re-established
 *     at once.  The timeout counts from the redis_command_argv call (it
 *     refreshes the loop's clock with uv_update_time, so a program that
 *     blocked before the call does not see early timeouts).
 *   - Reconnection.  A lost connection is re-established by itself: at
 *     the next loop turn when it had been up for reconnect_max_ms or more,
 *     else (and after failed attempts) after a backoff of reconnect_min_ms
 *     doubling to reconnect_max_ms.  While a node is down, commands for it
 *     fail at once with -ENOTCONN instead of queueing; while a connection
 *     attempt is in progress they wait in it (bounded by
 *     connect_timeout_ms) and fail with -ECONNREFUSED if it fails.
 *     redis:// reconnects actively; a cluster node reconnects on its next
 *     command.  AUTH (URL password) and SELECT (URL /DB) are sent first on
 *     every new connection.
 *   - A bound.  At most max_pending commands are in flight per client;
 *     beyond that a command fails with -ENOBUFS.
 *   - Redis Cluster (redis-cluster://seed,seed,...).  The slot map comes
 *     from CLUSTER SLOTS; a key's slot is CRC16-XMODEM mod 16384 of the key
 *     or of its {hash tag}; one connection per master, opened on first use.
 *     MOVED updates that slot, resends the command to the new node and
 *     schedules a full map refresh; ASK sends ASKING + the command to the
 *     named node without touching the map; TRYAGAIN and CLUSTERDOWN resend
 *     after retry_delay_ms; each command follows at most max_redirects of
 *     these, then the last error reply is handed to the caller.  A lost
 *     node connection also schedules a map refresh (failover).  A command
 *     whose outcome is unknown (connection lost, timeout) is never resent.
 *
 * Callbacks.  Every command accepted by redis_command_argv (return 0) gets
 * exactly one callback, always from the loop, never from inside
 * redis_command_argv itself, so callers have one code path:
 *   err == 0:  reply is the server's answer.  It may be an error reply
 *              (reply->type == REDIS_REPLY_ERROR, e.g. "WRONGTYPE ..."):
 *              the caller decides what it means.
 *   err < 0:   reply is NULL; -ENOTCONN (node down, reconnect pending),
 *              -ECONNREFUSED (or the errno of a failed connect), -ECONNRESET
 *              (connection lost with the command in flight: it may or may
 *              not have run), -ETIMEDOUT, -ENOBUFS (max_pending reached),
 *              -EACCES (AUTH or SELECT refused), -EHOSTUNREACH (cluster:
 *              a redirect to a node the client cannot track), -ENOMEM,
 *              -ECANCELED (redis_client_free).
 * The reply is owned by hiredis and freed when the callback returns: copy
 * what you keep.  A callback may issue new commands, and may call
 * redis_client_free.  Read replies with <hiredis/hiredis.h>:
 *
 *     static void incr_cb(void *ud, const struct redisReply *r, int err)
 *     {
 *         struct request *q = ud;
 *         if (err < 0)
 *             return answer_503(q, err);          // down, timed out, ...
 *         if (r->type != REDIS_REPLY_INTEGER)
 *             return answer_error(q, r->str);     // e.g. WRONGTYPE
 *         answer_value(q, r->integer);
 *     }
 *     const char *argv[] = { "INCRBY", key, by_text };
 *     size_t len[] = { 6, key_len, by_len };
 *     redis_command_argv(c, key, key_len, 3, argv, len, incr_cb, q);
 *
 * Memory.  The client owns everything it allocates.  Per command there is
 * no allocation of ours: command slots (max_pending of them, each with a
 * reusable buffer for the encoded command, kept for redirects) are made at
 * start and grow only when a larger command than ever before is sent.
 * hiredis itself allocates a small callback record per command and its
 * reply objects.
 *
 * Signals.  hiredis writes to sockets whose peer may be gone: the program
 * must ignore SIGPIPE (STYLE.md), or a dead server kills it.
 *
 * Threads.  A client belongs to its loop's thread; nothing here is
 * thread-safe.  Several threads make several clients (one connection per
 * node per client).
 *
 * A program without a loop of its own (a CLI) makes one, sends its
 * commands and runs uv_run(UV_RUN_DEFAULT); an open connection keeps the
 * loop alive, so the last callback calls redis_client_free (or uv_stop),
 * after which uv_run returns once the handles are closed.
 * tests/redis_helpers.bash starts real servers and clusters for bats.
 *
 * hiredis 0.14.1's adapters/libuv.h ignores a poll error status (so a
 * refused or reset connection would hang until the timeout); redis.c
 * attaches hiredis to libuv with its own small adapter that passes errors
 * on to hiredis.
 */
#ifndef DSYS_REDIS_H
#define DSYS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store/url.h"

struct redisReply;   /* <hiredis/hiredis.h> */

#define REDIS_CLUSTER_SLOTS 16384

/* Defaults for struct redis_options (every limit has a flag in the program
 * that exposes it; --backend-timeout sets command_timeout_ms). */
#define REDIS_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define REDIS_DEFAULT_COMMAND_TIMEOUT_MS 2000
#define REDIS_DEFAULT_MAX_PENDING 4096
#define REDIS_DEFAULT_RECONNECT_MIN_MS 50
#define REDIS_DEFAULT_RECONNECT_MAX_MS 1000
#define REDIS_DEFAULT_MAX_REDIRECTS 5
#define REDIS_DEFAULT_RETRY_DELAY_MS 50
#define REDIS_DEFAULT_MAX_NODES 64

struct redis_options {
	unsigned connect_timeout_ms;   /* a connection attempt longer than this fails */
	unsigned command_timeout_ms;   /* 0 = wait forever (not advised) */
	unsigned max_pending;          /* commands in flight per client, >= 1 */
	unsigned reconnect_min_ms;     /* first reconnect delay after a loss */
	unsigned reconnect_max_ms;     /* the delay doubles up to this */
	unsigned max_redirects;        /* cluster: MOVED/ASK/TRYAGAIN/CLUSTERDOWN per command */
	unsigned retry_delay_ms;       /* cluster: wait before resending after TRYAGAIN/CLUSTERDOWN */
	unsigned max_nodes;            /* cluster: masters tracked at most */
};

/* Fill *o with the REDIS_DEFAULT_* values. */
void redis_options_init(struct redis_options *o);

struct redis_client;

typedef void (*redis_reply_fn)(void *ud, const struct redisReply *reply, int err);

/*
 * Make a client for u (kind STORE_REDIS or STORE_REDIS_CLUSTER) on loop.
 * opt NULL means the defaults.  Connecting starts at once (redis://: the
 * one server; cluster: the first seed, which is asked for CLUSTER SLOTS);
 * commands may be sent right away.  Host names are resolved with
 * getaddrinfo, which blocks: prefer addresses on hot paths.
 * Returns 0 and *out, or -EINVAL (another URL kind, an option out of range),
 * -ENOMEM.
 */
int redis_client_new(uv_loop_t *loop, const struct store_url *u,
                     const struct redis_options *opt, struct redis_client **out);

/*
 * Send one command: argv[0..argc) with lengths argvlen (binary safe).
 * key/key_len route it in cluster mode (the key the command touches; all
 * keys of one command must share a slot, as Redis Cluster requires) and
 * are ignored for redis://.  key may be NULL for keyless commands (sent to
 * any master).  The arguments are copied before this returns.
 * Returns 0: cb(ud, reply, err) will be called exactly once, later, from
 * the loop.  Returns -EINVAL (argc < 1, cb NULL), -ECANCELED (the client
 * is being freed: only possible inside a callback that got -ECANCELED) or
 * -ENOMEM (out of memory even for the failure record) without calling cb.
 */
int redis_command_argv(struct redis_client *c, const char *key, size_t key_len,
                       int argc, const char **argv, const size_t *argvlen,
                       redis_reply_fn cb, void *ud);

/*
 * Send one command to one node, whatever its keys: for commands that must
 * reach every master of a cluster (SCAN, DBSIZE, FLUSHALL, INFO).  node is
 * an id from redis_client_masters.  Same contract as redis_command_argv;
 * TRYAGAIN/CLUSTERDOWN are retried at the same node, MOVED/ASK followed.
 */
int redis_command_argv_node(struct redis_client *c, unsigned node,
                            int argc, const char **argv, const size_t *argvlen,
                            redis_reply_fn cb, void *ud);

/*
 * cb(ud, NULL, 0) once the client knows where keys live: at once (from the
 * loop) for redis:// and when a cluster's slot map has arrived; or
 * cb(ud, NULL, err < 0) when the next attempt to fetch the map fails
 * (-ENOTCONN with every seed down, or that attempt's error).  Exactly one
 * callback, never from inside this call.  Returns 0, or -EINVAL, -ENOMEM,
 * -ECANCELED without calling cb.  Keyed commands need no waiting (they
 * follow MOVED); this is for redis_client_masters.
 */
int redis_client_ready(struct redis_client *c, redis_reply_fn cb, void *ud);

/*
 * The masters that own slots in the current map (redis://: the one
 * server, id 0): fills ids[0..min(n, max)) and returns n; 0 for a cluster
 * whose map has not arrived yet (see redis_client_ready).  Ids are stable
 * for the client's life.
 */
int redis_client_masters(const struct redis_client *c, unsigned *ids, unsigned max);

/* "HOST:PORT" of a node id, for diagnostics.  0 or -EINVAL. */
int redis_client_node_addr(const struct redis_client *c, unsigned node, char *out, size_t size);

/*
 * Free the client.  NULL is a no-op.  Synchronous for the caller: every
 * pending command's callback is called with -ECANCELED before this returns
 * (when called from inside a reply callback, the commands of that reply's
 * connection get theirs right after the running callback returns).  The
 * client's libuv handles are closed; the memory is released by their close
 * callbacks, so the loop must run once more (uv_run) after this, as after
 * any uv_close; a loop with nothing else to do then ends.  Do not touch c
 * after this call.
 */
void redis_client_free(struct redis_client *c);

/* What a client is doing, for /metrics and diagnostics. */
struct redis_stats {
	uint64_t commands;       /* accepted by redis_command_argv */
	uint64_t replies;        /* callbacks with err == 0 */
	uint64_t errors;         /* callbacks with err < 0 */
	uint64_t timeouts;       /* -ETIMEDOUT */
	uint64_t redirects;      /* MOVED + ASK followed */
	uint64_t retries;        /* TRYAGAIN/CLUSTERDOWN resends */
	uint64_t connects;       /* connections established */
	uint64_t disconnects;    /* connections lost or dropped */
	uint64_t map_refreshes;  /* CLUSTER SLOTS answers applied */
	unsigned pending;        /* commands in flight now */
	unsigned nodes_up;       /* connections up now */
};
void redis_client_stats(const struct redis_client *c, struct redis_stats *s);

/* The last connection or protocol problem, as text for a diagnostic
 * ("127.0.0.1:6379: Connection refused"); "" when none yet. */
const char *redis_client_last_error(const struct redis_client *c);

/* Redis Cluster key hashing, exposed for tests and for programs that group
 * keys by slot. */
uint16_t redis_crc16(const void *buf, size_t len);          /* CRC16-XMODEM */
unsigned redis_key_slot(const char *key, size_t len);       /* 0..16383, honours {tag} */

#endif
