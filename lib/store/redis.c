/*
 * store/redis.c -- the asynchronous Redis / Redis Cluster client (see redis.h).
 *
 * Shape.  A client is a small fixed table of nodes (one for redis://, up to
 * max_nodes masters for a cluster) and a pool of max_pending command slots.
 * A node owns at most one hiredis async context at a time and a FIFO of the
 * command slots in flight on it, in the order they were written; Redis
 * answers in order, so a reply always belongs to the FIFO's head.
 *
 *     redis_command_argv --encode--> slot --route--> node --hiredis--> socket
 *                                     ^                                  |
 *     cb(ud, reply, err) <--- finish --+---- MOVED/ASK/TRYAGAIN: resend <-+
 *
 * Pipelining.  hiredis appends each command to the context's output buffer
 * and only asks the loop for "writable"; the write happens when the poll
 * fires, in the loop's next poll phase, as one write(2) of the whole buffer.
 * So everything issued during one loop iteration leaves together.  Checked
 * with strace -e write,read,epoll_wait on a client that issues 100 INCRs
 * inside one reply callback: one write(2) of 2400 bytes carries all 100,
 * and one read(2) of 492 bytes brings the 100 answers back.  (The live
 * test checks the same from the server's side: total_reads_processed grows
 * by a handful for a burst of 200.)
 *
 * Node states:
 *     IDLE --connect--> CONNECTING --ok--> UP
 *       ^                   |               |  lost, timed out, AUTH refused
 *       |  (cluster: lazy)  v  refused      v
 *       +-------------- DOWN (backoff) <----+     redis://: DOWN reconnects
 *                                                 by itself when the backoff ends
 * Commands are written while CONNECTING (hiredis buffers them until the
 * socket connects) and UP; while DOWN they fail at once with -ENOTCONN.
 *
 * How a command ends, always exactly once:
 *   - a reply arrives: reply_cb pops the FIFO head and finishes it (or
 *     resends it, for a cluster redirect);
 *   - the context dies: hiredis calls reply_cb with a NULL reply for every
 *     command still queued in it (both when the server goes away and when
 *     we free the context ourselves), and the node's fail_err says why.
 *     We never finish a command that is still inside a hiredis context by
 *     another path, so a slot can never be answered twice or reused while
 *     hiredis still holds it;
 *   - it never got into a context (pool full, node down): it goes to the
 *     deferred-failure ring, drained by a 0 ms timer, so the callback runs
 *     from the loop and not inside redis_command_argv.  The ring holds
 *     only (cb, ud, err) and grows geometrically, so it does not allocate
 *     per command either.
 *
 * Timeouts.  Each slot carries a deadline (loop time + command_timeout_ms).
 * A node has one timer, armed for the earliest thing it waits for: the
 * connect deadline, the reconnect time, or the earliest command deadline.
 * Adding a command only re-arms the timer when its deadline is earlier than
 * the armed one; when the timer fires it walks the FIFO once.  A command
 * past its deadline drops the whole context: the replies still to come
 * could otherwise be taken for the answers of later commands.
 *
 * Cluster.  slot_map[16384] holds a node index per slot (or NODE_NONE);
 * commands for unmapped slots and keyless ones go to any live node and are
 * redirected by MOVED if needed, so nothing waits for the first CLUSTER
 * SLOTS answer.  Map refreshes are one at a time and at least
 * REFRESH_MIN_MS apart, asked for after MOVED, CLUSTERDOWN and any lost
 * node connection, and when a command meets a node that is down.  Only
 * replies that say the command did NOT run (MOVED,
 * ASK, TRYAGAIN, CLUSTERDOWN) lead to a resend: INCRBY must not be
 * applied twice.  redis_command_argv_node pins a command to one node (SCAN
 * on every master); redis_client_ready queues its callers until the first
 * CLUSTER SLOTS answer (or the failure of the attempt to get it).
 *
 * hiredis 0.14.1's adapters/libuv.h returns early when libuv reports a poll
 * error, which leaves a refused connect or a reset socket unnoticed; the
 * small adapter here (ev_*) passes the error to hiredis by letting it read
 * and write, where it sees the error itself.  It also skips uv_poll_start
 * when the wanted events did not change: hiredis asks for "writable" once
 * per command, and each uv_poll_start is an epoll_ctl.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/invariant.h"
#include "store/redis.h"

#define NODE_NONE 0xffff
#define REFRESH_MIN_MS 100
#define CMD_BUF_MIN 128

enum node_state { NODE_IDLE, NODE_CONNECTING, NODE_UP, NODE_DOWN };

struct cmd;

struct node {
	struct redis_client *c;
	char host[STORE_URL_MAX_HOST];
	uint16_t port;
	enum node_state state;
	redisAsyncContext *ac;        /* non-NULL only while CONNECTING or UP */
	int fail_err;                 /* what the dying context's commands get */
	uint64_t drop_at;             /* loop ms when we dropped it ourselves */
	int drop_up;                  /* ... and it was UP then */
	uint64_t up_since;            /* loop ms of the last connect */
	uint64_t connect_deadline;    /* loop ms, while CONNECTING */
	uint64_t reconnect_at;        /* loop ms, while DOWN */
	unsigned backoff_ms;          /* next reconnect delay */
	struct cmd *head, *tail;      /* in flight here, in write order */
	unsigned n_inflight;
	uv_timer_t timer;
	int timer_inited;
	uint64_t timer_due;           /* loop ms the timer is armed for, 0 idle */
};

struct cmd {
	struct cmd *next;             /* free list, node FIFO or retry queue */
	struct redis_client *c;
	struct node *node;            /* where it is in flight */
	redis_reply_fn cb;
	void *ud;
	uint64_t deadline;            /* loop ms; UINT64_MAX without timeout */
	uint64_t retry_at;            /* loop ms, in the retry queue */
	char *buf;                    /* the command in RESP, kept for resends */
	size_t len, cap;
	int slot;                     /* cluster hash slot, -1 for keyless */
	struct node *pin;             /* sent to this node whatever the slot */
	unsigned redirects;
	int internal;                 /* the map refresh, not a caller's command */
};

struct failure {
	redis_reply_fn cb;
	void *ud;
	int err;
};

struct redis_client {
	uv_loop_t *loop;
	struct redis_options opt;
	int cluster;
	char password[256];
	unsigned db;

	struct node *nodes;
	unsigned n_nodes;
	uint16_t *slot_map;           /* cluster only */

	struct cmd *cmds;             /* max_pending + 1 (the refresh) */
	struct cmd *free_cmds;
	unsigned pending;

	struct failure *ring;         /* deferred failures */
	unsigned ring_head, ring_len, ring_cap;
	uv_timer_t defer_timer;

	struct cmd *retry_head, *retry_tail;
	uv_timer_t retry_timer;

	uv_timer_t refresh_timer;
	struct cmd *refresh_cmd;
	struct node *refresh_node;    /* asked, while in flight */
	unsigned refresh_rr;          /* where to start looking for a node to ask */
	int refresh_inflight, refresh_wanted;
	uint64_t refresh_last;
	int map_known;                /* a CLUSTER SLOTS answer was applied */
	struct failure *waiters;      /* redis_client_ready callers */
	unsigned n_waiters, cap_waiters;

	int freeing;
	unsigned closing;             /* uv_close calls not yet completed */

	struct redis_stats st;
	char last_error[512];
};

static void node_arm(struct node *n);
static void node_timer_cb(uv_timer_t *t);
static int cmd_send(struct cmd *k, struct node *n, int asking);
static void refresh_request(struct redis_client *c);

void redis_options_init(struct redis_options *o)
{
	o->connect_timeout_ms = REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
	o->command_timeout_ms = REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
	o->max_pending = REDIS_DEFAULT_MAX_PENDING;
	o->reconnect_min_ms = REDIS_DEFAULT_RECONNECT_MIN_MS;
	o->reconnect_max_ms = REDIS_DEFAULT_RECONNECT_MAX_MS;
	o->max_redirects = REDIS_DEFAULT_MAX_REDIRECTS;
	o->retry_delay_ms = REDIS_DEFAULT_RETRY_DELAY_MS;
	o->max_nodes = REDIS_DEFAULT_MAX_NODES;
}

static uint64_t now_ms(const struct redis_client *c)
{
	return uv_now(c->loop);
}

static void set_error(struct redis_client *c, const struct node *n, const char *what)
{
	if (n)
		snprintf(c->last_error, sizeof c->last_error, "%.255s:%u: %.200s", n->host, (unsigned)n->port, what);
	else
		snprintf(c->last_error, sizeof c->last_error, "%s", what);
}

/* ------------------------------------------------------------ libuv adapter */

/* One per hiredis context, freed by its poll handle's close callback, which
 * may run after the context (and even the client) is gone: it holds
 * nothing else. */
struct ev {
	redisAsyncContext *ac;
	uv_poll_t poll;
	int events;      /* what hiredis wants */
	int polling;     /* what the poll handle watches now */
};

static void ev_poll_cb(uv_poll_t *h, int status, int events)
{
	struct ev *e = h->data;
	if (status < 0)
		events = e->events;   /* hiredis finds the error itself */
	if (e->ac && (events & UV_READABLE))
		redisAsyncHandleRead(e->ac);
	if (e->ac && (events & UV_WRITABLE))
		redisAsyncHandleWrite(e->ac);
	/* libuv stops a poll handle after reporting an error */
	if (status < 0 && e->ac) {
		e->polling = 0;
		if (e->events) {
			uv_poll_start(&e->poll, e->events, ev_poll_cb);
			e->polling = e->events;
		}
	}
}

/* hiredis asks for "writable" once per command; uv_poll_start costs an
 * epoll_ctl each time, so only a change reaches libuv. */
static void ev_update(struct ev *e)
{
	if (e->events == e->polling)
		return;
	if (e->events)
		uv_poll_start(&e->poll, e->events, ev_poll_cb);
	else
		uv_poll_stop(&e->poll);
	e->polling = e->events;
}

static void ev_add_read(void *p) { struct ev *e = p; e->events |= UV_READABLE; ev_update(e); }
static void ev_del_read(void *p) { struct ev *e = p; e->events &= ~UV_READABLE; ev_update(e); }
static void ev_add_write(void *p) { struct ev *e = p; e->events |= UV_WRITABLE; ev_update(e); }
static void ev_del_write(void *p) { struct ev *e = p; e->events &= ~UV_WRITABLE; ev_update(e); }

static void ev_close_cb(uv_handle_t *h)
{
	free(h->data);
}

static void ev_cleanup(void *p)
{
	struct ev *e = p;
	e->ac = NULL;
	uv_close((uv_handle_t *)&e->poll, ev_close_cb);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct ev *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	int r = uv_poll_init(loop, &e->poll, ac->c.fd);
	if (r < 0) {
		free(e);
		return r;
	}
	e->ac = ac;
	e->poll.data = e;
	ac->ev.data = e;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	return 0;
}

/* ------------------------------------------------------------ command slots */

/* Write v in decimal and CRLF at p; returns the end.  (sprintf costs more
 * than the rest of the encoding on the hot path.) */
static char *put_uint(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0)
		*p++ = tmp[--n];
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* Encode argv as a RESP array into k->buf, growing it only past its
 * largest size so far.  The text is NUL-terminated like hiredis's own
 * formatted commands: redisAsyncFormattedCommand peeks one byte past the
 * first argument to spot SUBSCRIBE and friends. */
static int cmd_encode(struct cmd *k, int argc, const char **argv, const size_t *argvlen)
{
	size_t need = 1 + 20 + 2 + 1;
	for (int i = 0; i < argc; i++)
		need += 1 + 20 + 2 + argvlen[i] + 2;
	if (need > k->cap) {
		size_t cap = k->cap ? k->cap : CMD_BUF_MIN;
		while (cap < need)
			cap *= 2;
		char *b = realloc(k->buf, cap);
		if (!b)
			return -ENOMEM;
		k->buf = b;
		k->cap = cap;
	}
	char *p = k->buf;
	*p++ = '*';
	p = put_uint(p, (uint64_t)argc);
	for (int i = 0; i < argc; i++) {
		*p++ = '$';
		p = put_uint(p, argvlen[i]);
		memcpy(p, argv[i], argvlen[i]);
		p += argvlen[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	k->len = (size_t)(p - k->buf);
	*p = '\0';
	return 0;
}

static void cmd_release(struct redis_client *c, struct cmd *k)
{
	if (k->internal)
		return;
	INVARIANT(c->pending > 0);
	k->node = NULL;
	k->cb = NULL;
	k->next = c->free_cmds;
	c->free_cmds = k;
	c->pending--;
}

/* The one exit of a command that was accepted into a slot. */
static void cmd_finish(struct cmd *k, const redisReply *r, int err)
{
	struct redis_client *c = k->c;
	redis_reply_fn cb = k->cb;
	void *ud = k->ud;
	INVARIANT(cb != NULL);
	if (err) {
		c->st.errors++;
		if (err == -ETIMEDOUT)
			c->st.timeouts++;
	} else {
		c->st.replies++;
	}
	cmd_release(c, k);
	cb(ud, r, err);
}

/* ------------------------------------------------------------ deferred failures */

static void defer_timer_cb(uv_timer_t *t)
{
	struct redis_client *c = t->data;
	/* Only what is in the ring now: callbacks that fail again wait for
	 * the next round, so this loop is bounded. */
	unsigned n = c->ring_len;
	while (n-- > 0 && c->ring_len > 0) {
		struct failure f = c->ring[c->ring_head];
		c->ring_head = (c->ring_head + 1) % c->ring_cap;
		c->ring_len--;
		if (f.err < 0)
			c->st.errors++;
		f.cb(f.ud, NULL, f.err);
	}
	if (c->ring_len > 0 && !c->freeing)
		uv_timer_start(&c->defer_timer, defer_timer_cb, 0, 0);
}

static int defer_fail(struct redis_client *c, redis_reply_fn cb, void *ud, int err)
{
	if (c->ring_len == c->ring_cap) {
		unsigned cap = c->ring_cap ? c->ring_cap * 2 : 64;
		struct failure *r = malloc(cap * sizeof *r);
		if (!r)
			return -ENOMEM;
		for (unsigned i = 0; i < c->ring_len; i++)
			r[i] = c->ring[(c->ring_head + i) % c->ring_cap];
		free(c->ring);
		c->ring = r;
		c->ring_cap = cap;
		c->ring_head = 0;
	}
	c->ring[(c->ring_head + c->ring_len) % c->ring_cap] = (struct failure){ cb, ud, err };
	c->ring_len++;
	if (c->ring_len == 1)
		uv_timer_start(&c->defer_timer, defer_timer_cb, 0, 0);
	return 0;
}

/* ------------------------------------------------------------ nodes */

static void node_timer_start(struct node *n, uint64_t due)
{
	struct redis_client *c = n->c;
	if (c->freeing)
		return;
	if (!n->timer_inited) {
		uv_timer_init(c->loop, &n->timer);
		n->timer.data = n;
		n->timer_inited = 1;
	}
	uint64_t now = now_ms(c);
	n->timer_due = due;
	uv_timer_start(&n->timer, node_timer_cb, due > now ? due - now : 0, 0);
}

/* Arm the node's timer for the earliest thing it waits for. */
static void node_arm(struct node *n)
{
	uint64_t due = UINT64_MAX;
	if (n->state == NODE_DOWN && n->reconnect_at)
		due = n->reconnect_at;
	if (n->state == NODE_CONNECTING && n->connect_deadline < due)
		due = n->connect_deadline;
	for (struct cmd *k = n->head; k; k = k->next)
		if (k->deadline < due)
			due = k->deadline;
	if (due == UINT64_MAX) {
		if (n->timer_inited)
			uv_timer_stop(&n->timer);
		n->timer_due = 0;
		return;
	}
	node_timer_start(n, due);
}

/*
 * The node's context is gone or going (hiredis is freeing it, or we are
 * about to).  Idempotent: the NULL replies, the disconnect callback and our
 * own drop all come here.  From now on commands for the node fail fast
 * until the backoff ends.
 */
static void node_lost(struct node *n, int err)
{
	struct redis_client *c = n->c;
	if (n->state == NODE_DOWN)
		return;
	uint64_t now = now_ms(c);
	int was_up = (n->state == NODE_UP || n->drop_up) &&
	             now - n->up_since >= c->opt.reconnect_max_ms;
	if (!n->fail_err)
		n->fail_err = err;
	if (n->state == NODE_UP)
		c->st.disconnects++;
	n->ac = NULL;
	n->state = NODE_DOWN;
	if (c->freeing)
		return;
	/* A connection that was up for a while (then a server restart, an
	 * idle timeout, a CLIENT KILL) is tried again at the next loop turn;
	 * failed attempts, and connections that die young (maxclients, a
	 * refused AUTH), back off from reconnect_min_ms, doubling up to
	 * reconnect_max_ms. */
	if (was_up) {
		n->backoff_ms = c->opt.reconnect_min_ms;
		n->reconnect_at = now;
	} else {
		n->reconnect_at = now + n->backoff_ms;
		n->backoff_ms = n->backoff_ms * 2 > c->opt.reconnect_max_ms ? c->opt.reconnect_max_ms
		                                                            : n->backoff_ms * 2;
	}
	if (n->reconnect_at == 0)
		n->reconnect_at = 1;   /* 0 means "none pending" */
	node_arm(n);
	if (c->cluster)
		refresh_request(c);
}

/* Drop the node's context on purpose; its commands get err (see reply_cb). */
static void node_drop(struct node *n, int err)
{
	redisAsyncContext *ac = n->ac;
	if (!ac)
		return;
	n->fail_err = err;
	n->drop_at = now_ms(n->c);
	n->drop_up = n->state == NODE_UP;
	if (n->drop_up)
		n->c->st.disconnects++;
	n->state = NODE_CONNECTING;   /* so node_lost does the bookkeeping once */
	node_lost(n, err);
	redisAsyncFree(ac);           /* NULL replies now, or after the running callback */
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	struct node *n = ac->data;
	struct redis_client *c = n->c;
	if (n->ac != ac)
		return;
	if (status != REDIS_OK) {
		int e = errno > 0 ? errno : ECONNREFUSED;
		set_error(c, n, strerror(e));
		n->fail_err = -e;
		node_lost(n, -e);     /* hiredis frees the context after this */
		return;
	}
	n->state = NODE_UP;
	n->up_since = now_ms(c);
	c->st.connects++;
	node_arm(n);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct node *n = ac->data;
	if (n->ac != ac)
		return;
	if (status != REDIS_OK)
		set_error(n->c, n, ac->errstr[0] ? ac->errstr : "connection lost");
	node_lost(n, -ECONNRESET);
}

/* AUTH and SELECT answers: a refusal makes the connection useless. */
static void setup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct node *n = privdata;
	redisReply *r = reply;
	if (!r || n->ac != ac || r->type != REDIS_REPLY_ERROR)
		return;
	char msg[200];
	snprintf(msg, sizeof msg, "%.180s", r->str);
	set_error(n->c, n, msg);
	node_drop(n, -EACCES);
}

static void node_connect(struct node *n)
{
	struct redis_client *c = n->c;
	INVARIANT(n->ac == NULL && n->head == NULL);
	n->fail_err = 0;
	n->drop_at = 0;
	n->drop_up = 0;
	n->reconnect_at = 0;
	if (!n->backoff_ms)
		n->backoff_ms = c->opt.reconnect_min_ms;
	errno = 0;
	redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
	if (!ac || ac->err) {
		int e = errno > 0 ? errno : ECONNREFUSED;
		set_error(c, n, ac && ac->errstr[0] ? ac->errstr : strerror(e));
		if (ac)
			redisAsyncFree(ac);
		n->state = NODE_CONNECTING;
		node_lost(n, -e);
		return;
	}
	int r = ev_attach(ac, c->loop);
	if (r < 0) {
		set_error(c, n, uv_strerror(r));
		redisAsyncFree(ac);
		n->state = NODE_CONNECTING;
		node_lost(n, r);
		return;
	}
	ac->data = n;
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	n->ac = ac;
	n->state = NODE_CONNECTING;
	n->connect_deadline = now_ms(c) + c->opt.connect_timeout_ms;
	if (c->password[0])
		redisAsyncCommand(ac, setup_cb, n, "AUTH %s", c->password);
	if (c->db)
		redisAsyncCommand(ac, setup_cb, n, "SELECT %u", c->db);
	node_arm(n);
}

static void node_timer_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	struct redis_client *c = n->c;
	uint64_t now = now_ms(c);
	n->timer_due = 0;
	if (n->state == NODE_DOWN && n->reconnect_at && now >= n->reconnect_at) {
		n->reconnect_at = 0;
		if (c->cluster)
			n->state = NODE_IDLE;   /* reconnect on next use */
		else
			node_connect(n);
	} else if (n->state == NODE_CONNECTING && now >= n->connect_deadline) {
		set_error(c, n, "connection timed out");
		node_drop(n, -ETIMEDOUT);
	} else {
		for (struct cmd *k = n->head; k; k = k->next)
			if (k->deadline <= now) {
				set_error(c, n, "command timed out");
				node_drop(n, -ETIMEDOUT);
				/* The server answered the connect, it is slow or a
				 * command blocks: connect again at once rather than
				 * failing the next commands during a backoff. */
				if (!c->freeing && n->state == NODE_DOWN) {
					n->reconnect_at = 0;
					if (c->cluster)
						n->state = NODE_IDLE;
					else
						node_connect(n);
				}
				break;
			}
	}
	if (!c->freeing)
		node_arm(n);
}

/* The node at host:port, added to the table when new; NULL when full. */
static struct node *node_find(struct redis_client *c, const char *host, size_t hl, unsigned port)
{
	for (unsigned i = 0; i < c->n_nodes; i++) {
		struct node *n = &c->nodes[i];
		if (n->port == port && strlen(n->host) == hl && memcmp(n->host, host, hl) == 0)
			return n;
	}
	if (c->n_nodes == c->opt.max_nodes || hl == 0 || hl >= STORE_URL_MAX_HOST ||
	    port == 0 || port > 65535)
		return NULL;
	struct node *n = &c->nodes[c->n_nodes++];
	n->c = c;
	memcpy(n->host, host, hl);
	n->host[hl] = '\0';
	n->port = (uint16_t)port;
	n->state = NODE_IDLE;
	return n;
}

/* Where a command goes: its slot's master, or any live node. */
static struct node *route(struct redis_client *c, const struct cmd *k)
{
	if (!c->cluster)
		return &c->nodes[0];
	if (k->slot >= 0 && c->slot_map[k->slot] != NODE_NONE)
		return &c->nodes[c->slot_map[k->slot]];
	struct node *best = &c->nodes[0];
	for (unsigned i = 0; i < c->n_nodes; i++) {
		if (c->nodes[i].state == NODE_UP)
			return &c->nodes[i];
		if (c->nodes[i].state != NODE_DOWN && best->state == NODE_DOWN)
			best = &c->nodes[i];
	}
	return best;
}

/* ------------------------------------------------------------ sending and replies */

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata);

static int cmd_send(struct cmd *k, struct node *n, int asking)
{
	if (n->state == NODE_IDLE)
		node_connect(n);
	if (n->state == NODE_DOWN || !n->ac) {
		/* In a cluster the slot may have a new master by now. */
		if (k->c->cluster)
			refresh_request(k->c);
		return -ENOTCONN;
	}
	static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";
	if (asking && redisAsyncFormattedCommand(n->ac, NULL, NULL, asking_cmd,
	                                         sizeof asking_cmd - 1) != REDIS_OK)
		return -ENOTCONN;
	if (redisAsyncFormattedCommand(n->ac, reply_cb, k, k->buf, k->len) != REDIS_OK)
		return -ENOTCONN;
	k->node = n;
	k->next = NULL;
	if (n->tail)
		n->tail->next = k;
	else
		n->head = k;
	n->tail = k;
	n->n_inflight++;
	if (k->deadline != UINT64_MAX && (n->timer_due == 0 || k->deadline < n->timer_due))
		node_timer_start(n, k->deadline);
	return 0;
}

/* Resend k to n; when that fails, k ends with the error. */
static void cmd_resend(struct cmd *k, struct node *n, int asking)
{
	int err = cmd_send(k, n, asking);
	if (err)
		cmd_finish(k, NULL, err);
}

static void retry_timer_cb(uv_timer_t *t)
{
	struct redis_client *c = t->data;
	uint64_t now = now_ms(c);
	while (c->retry_head && c->retry_head->retry_at <= now) {
		struct cmd *k = c->retry_head;
		c->retry_head = k->next;
		if (!c->retry_head)
			c->retry_tail = NULL;
		c->st.retries++;
		cmd_resend(k, k->pin ? k->pin : route(c, k), 0);
	}
	if (c->retry_head && !c->freeing)
		uv_timer_start(&c->retry_timer, retry_timer_cb, c->retry_head->retry_at - now, 0);
}

static void retry_later(struct redis_client *c, struct cmd *k)
{
	k->retry_at = now_ms(c) + c->opt.retry_delay_ms;
	k->node = NULL;
	k->next = NULL;
	if (c->retry_tail)
		c->retry_tail->next = k;
	else
		c->retry_head = k;
	c->retry_tail = k;
	if (c->retry_head == k)
		uv_timer_start(&c->retry_timer, retry_timer_cb, c->opt.retry_delay_ms, 0);
}

static int starts_with(const redisReply *r, const char *word)
{
	size_t n = strlen(word);
	return r->len >= n && memcmp(r->str, word, n) == 0 &&
	       (r->len == n || r->str[n] == ' ');
}

/*
 * "MOVED 3999 127.0.0.1:6381" or "ASK ...": parse slot and address.  An
 * empty host (":6381") means the host of the node that answered.  Returns
 * the target node, or NULL.
 */
static struct node *redirect_target(struct redis_client *c, const struct node *from,
                                    const redisReply *r, int *slot)
{
	const char *p = memchr(r->str, ' ', r->len);
	const char *end = r->str + r->len;
	if (!p)
		return NULL;
	p++;
	long s = 0;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9' && s < REDIS_CLUSTER_SLOTS)
		s = s * 10 + (*q++ - '0');
	if (q == p || q >= end || *q != ' ' || s >= REDIS_CLUSTER_SLOTS)
		return NULL;
	const char *addr = q + 1;
	const char *colon = NULL;
	for (const char *x = addr; x < end; x++)
		if (*x == ':')
			colon = x;
	if (!colon)
		return NULL;
	unsigned port = 0;
	const char *d = colon + 1;
	if (d == end)
		return NULL;
	for (; d < end; d++) {
		if (*d < '0' || *d > '9' || port > 65535)
			return NULL;
		port = port * 10 + (unsigned)(*d - '0');
	}
	*slot = (int)s;
	if (colon == addr)
		return node_find(c, from->host, strlen(from->host), port);
	return node_find(c, addr, (size_t)(colon - addr), port);
}

/* A cluster error reply that says the command did not run: follow it.
 * Returns 1 when k was taken care of. */
static int follow_redirect(struct redis_client *c, struct node *from, struct cmd *k,
                           const redisReply *r)
{
	int moved = starts_with(r, "MOVED"), ask = starts_with(r, "ASK");
	int again = starts_with(r, "TRYAGAIN"), down = starts_with(r, "CLUSTERDOWN");
	if (!(moved || ask || again || down) || k->redirects >= c->opt.max_redirects)
		return 0;
	k->redirects++;
	if (again || down) {
		if (down)
			refresh_request(c);
		retry_later(c, k);
		return 1;
	}
	int slot;
	struct node *to = redirect_target(c, from, r, &slot);
	if (!to) {
		set_error(c, from, "cannot follow a cluster redirect");
		cmd_finish(k, NULL, -EHOSTUNREACH);
		return 1;
	}
	c->st.redirects++;
	if (moved) {
		c->slot_map[slot] = (uint16_t)(to - c->nodes);
		refresh_request(c);
	}
	cmd_resend(k, to, ask);
	return 1;
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cmd *k = privdata;
	struct node *n = k->node;
	struct redis_client *c = k->c;
	redisReply *r = reply;
	INVARIANT(n != NULL && n->head == k);
	n->head = k->next;
	if (!n->head)
		n->tail = NULL;
	n->n_inflight--;
	k->next = NULL;
	if (!r) {
		/* The context is being freed with k still in it. */
		if (n->state != NODE_DOWN && ac->errstr[0])
			set_error(c, n, ac->errstr);
		node_lost(n, -ECONNRESET);
		int err = n->fail_err ? n->fail_err : -ECONNRESET;
		if (err == -ETIMEDOUT && n->drop_up && k->deadline > n->drop_at)
			err = -ECONNRESET;   /* not late itself: lost with the connection */
		cmd_finish(k, NULL, err);
		return;
	}
	if (c->cluster && !k->internal && r->type == REDIS_REPLY_ERROR && !c->freeing &&
	    follow_redirect(c, n, k, r))
		return;
	cmd_finish(k, r, 0);
}

/* ------------------------------------------------------------ cluster map */

static void refresh_timer_cb(uv_timer_t *t);

static void refresh_request(struct redis_client *c)
{
	if (!c->cluster || c->freeing)
		return;
	c->refresh_wanted = 1;
	if (c->refresh_inflight || uv_is_active((uv_handle_t *)&c->refresh_timer))
		return;
	uint64_t now = now_ms(c), due = c->refresh_last + REFRESH_MIN_MS;
	uv_timer_start(&c->refresh_timer, refresh_timer_cb,
	               c->refresh_last && due > now ? due - now : 0, 0);
}

static int reply_int(const redisReply *r, long long *v)
{
	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return 0;
	}
	return -1;
}

/* Apply a CLUSTER SLOTS answer: [[start, end, [host, port, id...], replicas...]...]. */
static int refresh_apply(struct redis_client *c, const struct node *from, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		long long lo, hi, port;
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    reply_int(e->element[0], &lo) < 0 || reply_int(e->element[1], &hi) < 0 ||
		    lo < 0 || hi >= REDIS_CLUSTER_SLOTS || lo > hi)
			return -EPROTO;
		const redisReply *m = e->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    m->element[0]->type != REDIS_REPLY_STRING ||
		    reply_int(m->element[1], &port) < 0 || port <= 0 || port > 65535)
			return -EPROTO;
	}
	/* Valid: now change the map. */
	for (unsigned s = 0; s < REDIS_CLUSTER_SLOTS; s++)
		c->slot_map[s] = NODE_NONE;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		const redisReply *m = e->element[2];
		const char *host = m->element[0]->str;
		size_t hl = m->element[0]->len;
		if (hl == 0 || (hl == 1 && host[0] == '?')) {
			host = from->host;
			hl = strlen(from->host);
		}
		struct node *n = node_find(c, host, hl, (unsigned)m->element[1]->integer);
		if (!n) {
			set_error(c, from, "too many cluster nodes (max_nodes)");
			continue;
		}
		for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
			c->slot_map[s] = (uint16_t)(n - c->nodes);
	}
	c->st.map_refreshes++;
	return 0;
}

/* Answer every redis_client_ready caller with err (0: the map is here). */
static void waiters_done(struct redis_client *c, int err)
{
	/* Take the list: a callback may wait again (a new list). */
	struct failure *list = c->waiters;
	unsigned n = c->n_waiters;
	c->waiters = NULL;
	c->n_waiters = c->cap_waiters = 0;
	for (unsigned i = 0; i < n; i++) {
		if (err < 0)
			c->st.errors++;
		list[i].cb(list[i].ud, NULL, err);
	}
	free(list);
}

static void refresh_cb(void *ud, const struct redisReply *r, int err)
{
	struct redis_client *c = ud;
	c->refresh_inflight = 0;
	if (c->freeing)
		return;
	c->refresh_last = now_ms(c);
	int bad = err ? err : r->type == REDIS_REPLY_ERROR ? -EPROTO
	                                                  : refresh_apply(c, c->refresh_node, r);
	if (bad) {
		if (!err && r->type == REDIS_REPLY_ERROR)
			set_error(c, c->refresh_node, r->str);
		c->refresh_rr++;
		c->refresh_wanted = 1;
	} else {
		c->map_known = 1;
	}
	c->refresh_node = NULL;
	if (c->refresh_wanted)
		refresh_request(c);
	if (c->n_waiters)
		waiters_done(c, bad);
}

static void refresh_timer_cb(uv_timer_t *t)
{
	struct redis_client *c = t->data;
	if (c->refresh_inflight || c->freeing)
		return;
	/* Ask a node that is up; else one we can try to connect to. */
	struct node *pick = NULL;
	for (unsigned pass = 0; pass < 2 && !pick; pass++)
		for (unsigned j = 0; j < c->n_nodes && !pick; j++) {
			struct node *n = &c->nodes[(c->refresh_rr + j) % c->n_nodes];
			if (n->state == NODE_UP || (pass == 1 && n->state != NODE_DOWN))
				pick = n;
		}
	c->refresh_wanted = 0;
	if (!pick) {
		/* All down: try again when the first backoff may have ended. */
		c->refresh_wanted = 1;
		uv_timer_start(&c->refresh_timer, refresh_timer_cb, c->opt.reconnect_min_ms, 0);
		if (c->n_waiters)
			waiters_done(c, -ENOTCONN);
		return;
	}
	struct cmd *k = c->refresh_cmd;
	k->deadline = c->opt.command_timeout_ms ? now_ms(c) + c->opt.command_timeout_ms : UINT64_MAX;
	k->cb = refresh_cb;
	k->ud = c;
	c->refresh_inflight = 1;
	c->refresh_node = pick;
	int err = cmd_send(k, pick, 0);
	if (err) {
		c->refresh_inflight = 0;
		c->refresh_node = NULL;
		c->refresh_rr++;
		c->refresh_wanted = 1;
		c->refresh_last = now_ms(c);
		refresh_request(c);
		if (c->n_waiters)
			waiters_done(c, err);
	}
}

/* ------------------------------------------------------------ the API */

int redis_client_new(uv_loop_t *loop, const struct store_url *u,
                     const struct redis_options *opt, struct redis_client **out)
{
	struct redis_options o;
	if (opt)
		o = *opt;
	else
		redis_options_init(&o);
	*out = NULL;
	if (!loop || !u || (u->kind != STORE_REDIS && u->kind != STORE_REDIS_CLUSTER) ||
	    u->n_hosts < 1 || o.max_pending < 1 || o.max_pending > (1u << 24) ||
	    o.connect_timeout_ms < 1 || o.reconnect_min_ms < 1 ||
	    o.reconnect_max_ms < o.reconnect_min_ms || o.max_nodes < 1 ||
	    o.max_nodes >= NODE_NONE)
		return -EINVAL;
	int cluster = u->kind == STORE_REDIS_CLUSTER;
	if (!cluster)
		o.max_nodes = 1;
	else if (o.max_nodes < u->n_hosts)
		o.max_nodes = u->n_hosts;
	struct redis_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->opt = o;
	c->cluster = cluster;
	snprintf(c->password, sizeof c->password, "%s", u->password);
	c->db = u->db;
	c->nodes = calloc(o.max_nodes, sizeof *c->nodes);
	c->cmds = calloc(o.max_pending + 1, sizeof *c->cmds);
	if (cluster)
		c->slot_map = malloc(REDIS_CLUSTER_SLOTS * sizeof *c->slot_map);
	if (!c->nodes || !c->cmds || (cluster && !c->slot_map)) {
		free(c->nodes);
		free(c->cmds);
		free(c->slot_map);
		free(c);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o.max_pending + 1; i++)
		c->cmds[i].c = c;
	for (unsigned i = o.max_pending; i-- > 0;) {
		c->cmds[i].next = c->free_cmds;
		c->free_cmds = &c->cmds[i];
	}
	c->refresh_cmd = &c->cmds[o.max_pending];
	c->refresh_cmd->internal = 1;
	if (cluster) {
		for (unsigned s = 0; s < REDIS_CLUSTER_SLOTS; s++)
			c->slot_map[s] = NODE_NONE;
		static const char *av[] = { "CLUSTER", "SLOTS" };
		static const size_t al[] = { 7, 5 };
		if (cmd_encode(c->refresh_cmd, 2, av, al) < 0) {
			free(c->nodes);
			free(c->cmds);
			free(c->slot_map);
			free(c);
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < u->n_hosts && c->n_nodes < o.max_nodes; i++)
		node_find(c, u->hosts[i].host, strlen(u->hosts[i].host), u->hosts[i].port);
	uv_timer_init(loop, &c->defer_timer);
	uv_timer_init(loop, &c->retry_timer);
	uv_timer_init(loop, &c->refresh_timer);
	c->defer_timer.data = c->retry_timer.data = c->refresh_timer.data = c;
	uv_update_time(loop);
	if (cluster)
		refresh_request(c);
	else
		node_connect(&c->nodes[0]);
	*out = c;
	return 0;
}

/* Both ways in: routed by key's slot, or pinned to one node. */
static int command(struct redis_client *c, const char *key, size_t key_len, struct node *pin,
                   int argc, const char **argv, const size_t *argvlen,
                   redis_reply_fn cb, void *ud)
{
	if (!c || argc < 1 || !argv || !argvlen || !cb)
		return -EINVAL;
	if (c->freeing)
		return -ECANCELED;
	/* The deadline counts from now, even when the loop's cached time is
	 * old (a program that did blocking work before this call). */
	uv_update_time(c->loop);
	c->st.commands++;
	struct cmd *k = c->free_cmds;
	if (!k)
		return defer_fail(c, cb, ud, -ENOBUFS);
	int err = cmd_encode(k, argc, argv, argvlen);
	if (err < 0)
		return defer_fail(c, cb, ud, err);
	c->free_cmds = k->next;
	c->pending++;
	k->next = NULL;
	k->cb = cb;
	k->ud = ud;
	k->redirects = 0;
	k->slot = c->cluster && key ? (int)redis_key_slot(key, key_len) : -1;
	k->pin = pin;
	k->deadline = c->opt.command_timeout_ms ? now_ms(c) + c->opt.command_timeout_ms
	                                        : UINT64_MAX;
	err = cmd_send(k, pin ? pin : route(c, k), 0);
	if (err) {
		cmd_release(c, k);
		return defer_fail(c, cb, ud, err);
	}
	return 0;
}

int redis_command_argv(struct redis_client *c, const char *key, size_t key_len,
                       int argc, const char **argv, const size_t *argvlen,
                       redis_reply_fn cb, void *ud)
{
	return command(c, key, key_len, NULL, argc, argv, argvlen, cb, ud);
}

int redis_command_argv_node(struct redis_client *c, unsigned node,
                            int argc, const char **argv, const size_t *argvlen,
                            redis_reply_fn cb, void *ud)
{
	if (!c || node >= c->n_nodes)
		return -EINVAL;
	return command(c, NULL, 0, &c->nodes[node], argc, argv, argvlen, cb, ud);
}

int redis_client_ready(struct redis_client *c, redis_reply_fn cb, void *ud)
{
	if (!c || !cb)
		return -EINVAL;
	if (c->freeing)
		return -ECANCELED;
	if (!c->cluster || c->map_known)
		return defer_fail(c, cb, ud, 0);
	if (c->n_waiters == c->cap_waiters) {
		unsigned cap = c->cap_waiters ? c->cap_waiters * 2 : 8;
		struct failure *w = realloc(c->waiters, cap * sizeof *w);
		if (!w)
			return -ENOMEM;
		c->waiters = w;
		c->cap_waiters = cap;
	}
	c->waiters[c->n_waiters++] = (struct failure){ cb, ud, 0 };
	if (!c->refresh_inflight)
		refresh_request(c);
	return 0;
}

int redis_client_masters(const struct redis_client *c, unsigned *ids, unsigned max)
{
	if (!c->cluster) {
		if (max > 0)
			ids[0] = 0;
		return 1;
	}
	if (!c->map_known)
		return 0;
	/* Nodes that own at least one slot, in node order. */
	unsigned char owns[REDIS_DEFAULT_MAX_NODES * 4] = { 0 };
	unsigned char *mark = c->n_nodes <= sizeof owns ? owns : calloc(c->n_nodes, 1);
	if (!mark)
		return -ENOMEM;
	for (unsigned s = 0; s < REDIS_CLUSTER_SLOTS; s++)
		if (c->slot_map[s] != NODE_NONE)
			mark[c->slot_map[s]] = 1;
	unsigned n = 0;
	for (unsigned i = 0; i < c->n_nodes; i++)
		if (mark[i]) {
			if (n < max)
				ids[n] = i;
			n++;
		}
	if (mark != owns)
		free(mark);
	return (int)n;
}

int redis_client_node_addr(const struct redis_client *c, unsigned node, char *out, size_t size)
{
	if (node >= c->n_nodes)
		return -EINVAL;
	const struct node *n = &c->nodes[node];
	snprintf(out, size, strchr(n->host, ':') ? "[%s]:%u" : "%s:%u", n->host, (unsigned)n->port);
	return 0;
}

static void client_close_cb(uv_handle_t *h)
{
	struct redis_client *c = h->data;
	INVARIANT(c->closing > 0);
	if (--c->closing > 0)
		return;
	for (unsigned i = 0; i < c->opt.max_pending + 1; i++)
		free(c->cmds[i].buf);
	free(c->cmds);
	free(c->nodes);
	free(c->slot_map);
	free(c->ring);
	free(c->waiters);
	free(c);
}

static void close_handle(struct redis_client *c, uv_handle_t *h)
{
	h->data = c;
	c->closing++;
	uv_close(h, client_close_cb);
}

void redis_client_free(struct redis_client *c)
{
	if (!c || c->freeing)
		return;
	c->freeing = 1;
	for (unsigned i = 0; i < c->n_nodes; i++) {
		struct node *n = &c->nodes[i];
		node_drop(n, -ECANCELED);
	}
	while (c->retry_head) {
		struct cmd *k = c->retry_head;
		c->retry_head = k->next;
		cmd_finish(k, NULL, -ECANCELED);
	}
	c->retry_tail = NULL;
	while (c->ring_len > 0) {
		struct failure f = c->ring[c->ring_head];
		c->ring_head = (c->ring_head + 1) % c->ring_cap;
		c->ring_len--;
		c->st.errors++;
		f.cb(f.ud, NULL, -ECANCELED);
	}
	waiters_done(c, -ECANCELED);
	close_handle(c, (uv_handle_t *)&c->defer_timer);
	close_handle(c, (uv_handle_t *)&c->retry_timer);
	close_handle(c, (uv_handle_t *)&c->refresh_timer);
	for (unsigned i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].timer_inited)
			close_handle(c, (uv_handle_t *)&c->nodes[i].timer);
}

void redis_client_stats(const struct redis_client *c, struct redis_stats *s)
{
	*s = c->st;
	s->pending = c->pending;
	s->nodes_up = 0;
	for (unsigned i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == NODE_UP)
			s->nodes_up++;
}

const char *redis_client_last_error(const struct redis_client *c)
{
	return c->last_error;
}
