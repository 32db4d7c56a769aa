/*
 * dsys-raft.h -- what the parts of dsys-raft share: the node (node.c)
 * and its client API (api.c, every HTTP handler in one file), the
 * cluster launcher (cluster.c), and main.c's dispatch.
 */
#ifndef DSYS_RAFT_PROG_H
#define DSYS_RAFT_PROG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "raft/kv.h"

struct node;
struct http_router;
struct metrics;

/* Requests beyond kv's: they need the leader's clock, not the log. */
enum node_op {
	NODE_OP_KEEPALIVE = KV_OP_MAX + 1,
	NODE_OP_TIMETOLIVE,
	/* etcd's Cluster service (node.c "membership"): on the leader */
	NODE_OP_MEMBER_ADD,
	NODE_OP_MEMBER_REMOVE,
	NODE_OP_MEMBER_UPDATE,
	NODE_OP_MEMBER_PROMOTE,
	NODE_OP_MEMBER_PUBLISH, /* a member's own name and client URL, sent by it */
	NODE_OP_MAX = NODE_OP_MEMBER_PUBLISH
};

/*
 * Start a client request (op: enum kv_op or enum node_op; body: the JSON,
 * copied).  The node answers it exactly once through api_answer(origin,
 * ...), later, on the loop thread: after the write is applied, the read
 * barrier passed, the leader answered a forwarded request, or the request
 * timed out.  serializable: a range answered from this member's state at
 * once, without a barrier.
 */
void node_request(struct node *n, void *origin, int op, const char *body, size_t len, bool serializable);

/* The same, answered exactly once through fn(origin, ...) instead of
 * api_answer (fn is the node_watch_fn type below): for the gRPC
 * LeaseKeepAlive stream, whose many requests share one exchange that may
 * end -- and be reused for another call -- while some are still with the
 * node; its origin is the stream's own state, which outlives them. */
typedef void (*node_watch_fn)(void *origin, int status, const char *body, size_t len);
void node_request_call(struct node *n, node_watch_fn fn, void *origin, int op, const char *body, size_t len);

/* A gateway watch (body: etcd's create_request): ex is answered with a
 * stream of etcd's {"result":...} lines, created at once, then events as
 * this member applies them, until the client goes, the node stops or
 * compaction cancels it; see node.c. */
struct http_exchange;
void node_watch(struct node *n, struct http_exchange *ex, const char *body, size_t len);
/* A poll of the same watch, answered once through fn(origin, ...), when
 * events past its start revision exist on this member or after a poll
 * time with none (the gRPC Watch stream's many watches, each its own
 * origin, a chain of polls); node_watch_drop forgets origin's poll
 * unanswered (never from inside fn). */
void node_watch_call(struct node *n, node_watch_fn fn, void *origin, const char *body, size_t len);
void node_watch_drop(struct node *n, void *origin);

/* Defined by api.c: hand an answer to whoever asked. */
void api_answer(void *origin, int status, const char *body, size_t len);

/* api.c: a v3 request (gateway JSON body) from either front end, checked
 * and handed to the node; its answer comes back through api_answer. */
struct http_exchange;
void api_v3(struct node *n, struct http_exchange *ex, int op, const char *body, size_t len);

/* grpc.c: etcd's gRPC services on the client port, and the translation of
 * a gRPC call's JSON answer into its protobuf response. */
void grpc_routes(struct http_router *r, struct node *n);
void grpc_api_answer(struct http_exchange *ex, int status, const char *body, size_t len);

/* For /health, /v3/maintenance/status and /v3/cluster/member/list: JSON
 * appended to out; node_health returns false without a known leader. */
bool node_health(struct node *n, struct buf *out);
void node_status_json(struct node *n, struct buf *out);
void node_members_json(struct node *n, struct buf *out);
void node_alarms_json(struct node *n, struct buf *out);
int node_hashkv(struct node *n, int64_t rev, struct buf *out);

/* api.c: the routes of the client port. */
void api_routes(struct http_router *r, struct node *n, struct metrics *reg);

/* snap.c: DIR/snap, the store as of one log index.  snap_write replaces
 * it atomically and durably (0 or -errno); snap_read returns 0 with data
 * malloc'd (the caller frees), -ENOENT when there is none, -EBADMSG when
 * it is damaged (err says so), or another -errno. */
struct raft_snapshot_meta;
int snap_write(const char *dir, const struct raft_snapshot_meta *m, const void *data, size_t len);
int snap_read(const char *dir, struct raft_snapshot_meta *m, uint8_t **data, size_t *len, char *err,
              size_t err_size);

int node_main(int argc, char **argv);
int cluster_main(int argc, char **argv);
/* put get del txn watch lease (client.c): cmd is argv[0] */
int client_main(const char *cmd, int argc, char **argv);
int member_main(int argc, char **argv);   /* member_cli.c */

#endif
