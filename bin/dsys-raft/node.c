/*
 * node.c -- dsys-raft node: lib/raft on a network and a disk.
 *
 * One libuv loop runs everything but the disk: the client port (lib/http
 * server, one thread), the peer port, the Raft tick, the state machine
 * (lib/raft/kv).  The write-ahead log (lib/store/wal) writes and
 * fdatasyncs on its own thread, group-committing whatever was appended
 * meanwhile, and wakes the loop (uv_async) when a group is durable.
 *
 * The Ready cycle (raft.h's contract), asynchronously:
 *   raft_ready -> append entries and hard state to the WAL -> send the
 *   leader's messages, apply the committed entries already on disk, serve
 *   reads (ready_early) -> [loop goes on serving; the sync thread fsyncs]
 *   -> durable -> send the rest (acknowledgements, votes), apply the rest
 *   -> raft_advance.
 * The core allows no input between raft_ready and raft_advance, so while
 * a write is in flight the node defers its inputs: peer frames are copied
 * to a queue, ticks are counted, proposals wait, and all are fed in order
 * right after raft_advance (forwarded requests and answers, read batches
 * and serializable reads need no Raft input and go on).  The loop thread
 * never blocks on the disk; what a slow fsync does delay is this node's
 * Raft clock (a leader's tick heartbeats wait for its own fsync; its
 * appends go out before it, thesis 10.2.1).  Except for a leader's Ready
 * marked async (see aw_report): it is advanced at once and the core takes
 * input while the write is synced.
 *
 * Peers: each node dials every other (one outbound TCP connection per
 * peer, HELLO first) and only writes to it; it reads from the connections
 * others dialled.  Frames to one peer produced during one loop turn are
 * written with one uv_write in a uv_prepare callback (batched per peer per
 * turn).  A lost connection is dialled again every reconnect interval;
 * frames for an unconnected peer are dropped -- Raft retries.  A peer
 * whose unsent bytes pass a bound loses frames too (flow control proper
 * is lib/raft's inflight limits).
 *
 * Client requests: writes go through the log.  A follower forwards them to
 * the leader in a FWD_REQ frame (lib/raft has no MsgProp) and relays the
 * FWD_RESP.  The member that proposed an entry answers when it applies it
 * at the index and term it was proposed at (another entry there, a new
 * leader's no-op or write: the entry was lost in a leader change, and the
 * write is proposed again through the new leader (entry_lost) -- or, past
 * its deadline or for a membership change, "etcdserver: leader changed";
 * one whose index a snapshot from the leader covered has an unknown
 * outcome, "etcdserver: request timed out" at once).  A write
 * that may have been proposed and is not answered by --request-timeout is
 * "etcdserver: request timed out"; one that provably never was (no leader
 * known, or its FWD_REQ dropped unsent with the peer's connection) waits
 * for the next leader and, if none comes in time, is "etcdserver: no
 * leader", which a client may take to another member.  Reads are
 * linearizable through ReadIndex (raft_read_index, which followers pass
 * to the leader), and answered once this member applied that index;
 * serializable reads are answered at once.  Lease keepalive and
 * timetolive go to the leader, whose clock holds the deadlines; expired
 * leases are revoked by the leader through the log; a new leader restarts
 * every lease's TTL (etcd's rule, so a leader change never expires one).
 *
 * Storage records (each a WAL record): 'E' term index type data (an entry;
 * one at index i drops any stored at or after i; a normal entry's data is
 * a command, op u8 | aux u64 | body, the body gateway JSON, or for a
 * put from gRPC lib/raft/kv's binary put form, told apart by its first
 * byte: kv.h, kv_put_encode), 'H' term vote commit,
 * and 'S' index term (DIR/snap holds the store up to index; everything
 * stored before is gone).  The node compacts the log itself after each
 * snapshot (wal_rewrite), so the WAL's own compaction is off
 * (compact_bytes 0); see "snapshots" below.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "base/parse.h"
#include "cli/cli.h"
#include "cli/server_cli.h"
#include "dsys-raft.h"
#include "http/route.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "raft/kv.h"
#include "raft/msg.h"
#include "raft/raft.h"
#include "store/wal.h"

#define MAX_PEERS 16
#define AW_MAX 256                     /* asynchronous leader writes awaiting their fsync */
#define PEER_MAX_PENDING (64u << 20)   /* unsent bytes to one peer before frames are dropped */
#define RECONNECT_MS 200
#define CMD_HEAD 9                     /* op byte + aux u64 */
#define SNAP_CHUNK (1u << 20)          /* InstallSnapshot slice per CHUNK frame */
#define SNAP_COMPACT_STEP 4096         /* log entries a snapshot drops from Raft per loop pass */
#define SNAP_WINDOW (4u << 20)         /* unsent bytes to a peer before the next slice waits */
#define SNAP_IN_MAX (1ull << 32)       /* largest snapshot taken from a peer (its u32 length) */

/* ------------------------------------------------------------ types */

struct node;

struct peer {
	struct node *n;
	uint32_t id;
	char name[64];
	char host[64];
	uint16_t port;
	bool known;         /* has an address: from --initial-cluster, a join, or the log */
	char client[256];   /* its client URL, once it published it ("" for others at first) */
	uv_tcp_t tcp;
	uv_connect_t creq;
	bool open;          /* tcp initialised (must be closed) */
	bool connected;
	struct buf out;     /* frames of this turn */
	uint64_t out_gen;   /* names what out holds now (0: not named yet); a
	                     * new one once it is handed to the socket or dropped */
	/* InstallSnapshot to this peer, streamed in CHUNK frames as the
	 * connection drains: one at a time per peer (a newer one replaces it) */
	struct buf snap_out;
	size_t snap_off;
	/* ... and from this peer, being reassembled */
	struct buf snap_in;
	uint64_t snap_in_total;
};

struct inconn {
	struct node *n;
	uv_tcp_t tcp;
	struct buf rbuf;
	uint32_t from;      /* after HELLO */
	struct inconn *prev, *next;
};

/*
 * A client request on its way.  Its owner is the node's list of every
 * request (n->reqs, by deadline: the tick's timeouts take its head); it is
 * also on the one list of what it waits for (wl), so each event finds the
 * requests it settles without walking the others -- with hundreds of
 * clients in flight a walk of all of them per applied entry was the
 * leader's largest cost after the store itself:
 *   W_START   n->starting, oldest first: drive starts them again
 *   W_APPLY   n->applying, by term (a member's term never falls, so in the
 *             order proposed), and in n->by_index by its index: the entry
 *             applied at an index finds its proposals at once, and those
 *             of an older term are the list's head
 *   W_READ    n->reads_open (ctx read_open), n->reads_asked (ctx
 *             read_asked), then n->reads_ready by read_index
 *   W_LEADER  n->forwarded, oldest first, and in n->by_ctx by its FWD_REQ id
 */
struct req_list {
	struct req *head, *tail;
};

/* A request is on two lists at once, through two pairs of links. */
struct req_links {
	struct req *prev, *next;
};
enum { L_ALL, L_WAIT };

/* Requests by a 64-bit key (a log index, a FWD_REQ id: both counted up
 * one at a time, so key & mask spreads them evenly), chained through
 * hnext; grows to keep one request a bucket or fewer. */
struct req_tab {
	struct req **b;
	size_t mask, n;
};

struct req {
	struct req_links link[2];  /* [L_ALL]: on n->reqs; [L_WAIT]: on *wl */
	struct req_list *wl;       /* the list it waits on; NULL: none (being settled) */
	struct req_tab *tab;       /* the table it is in under hkey; NULL: none */
	struct req *hnext;
	uint64_t hkey;
	bool linked;               /* on n->reqs */
	int op;
	uint64_t aux;
	char *body;
	size_t len;
	bool serializable;
	/* where the answer goes: fn(origin) when fn is set, else an HTTP
	 * exchange (origin), or a peer's FWD_REQ */
	void *origin;
	node_watch_fn fn;
	uint32_t fwd_from;
	uint64_t fwd_id;
	/* what it waits for */
	enum { W_START, W_APPLY, W_READ, W_LEADER } wait;
	uint64_t index, term;     /* W_APPLY: the entry proposed */
	uint64_t ctx;             /* W_READ: the barrier's ctx; W_LEADER: the FWD_REQ id */
	uint32_t fwd_to;          /* W_LEADER: the member it went to ... */
	uint64_t fwd_gen;         /* ... in that peer's out of this generation */
	uint64_t read_index;      /* W_READ: 0 until confirmed */
	uint64_t deadline_ms;
};

/* A watch: a gateway stream (fn NULL: origin is its HTTP exchange,
 * streaming), or a gRPC watch's poll waiting for its first events. */
struct watcher {
	struct watcher *next;
	void *origin;
	node_watch_fn fn;          /* a poll: answers origin once, through fn */
	struct kv_watch w;
	uint64_t deadline_ms;      /* a poll: answered with no events at this time; a
	                              stream: its next progress line (0: none asked) */
};

/* An input that arrived while a Ready was in flight (len 0: a HELLO, a
 * peer that started afresh). */
struct deferred {
	struct deferred *next;
	uint32_t from;
	size_t len;
	uint8_t data[];
};

struct replay {
	struct raft_hard_state hs;
	uint64_t base, base_term;       /* an 'S' record: the log starts after base */
	struct raft_entry *ents;        /* ents[i] is index base + 1 + i */
	size_t n, cap;
};

struct node {
	struct replay rp;               /* what the log held at start */
	_Atomic bool async_ready;       /* the loop can be woken */
	uint64_t drain_deadline_ms;
	/* configuration */
	char name[64];
	char data_dir[4096];
	uint32_t id;
	uint32_t n_peers;               /* highest id with an address, self included */
	struct peer peers[RAFT_MAX_ID + 1]; /* by id; [id] is self */
	uint32_t max_id;                /* highest id ever given: a new member gets the next */
	uint64_t boot_voters;           /* the first cluster's voters: the configuration at index 0 */
	bool was_member;                /* a configuration has held this member */
	uint64_t removed_ms;            /* when it applied its own removal: it stops soon after */
	uint64_t publish_ms;            /* last time it sent its name and client URL */
	uint64_t cluster_id;
	uint64_t tick_ms;
	uint32_t election_tick;
	uint64_t request_timeout_ms;
	char client_addr[300];
	char peer_addr[300];
	int peer_fd;                    /* the peer listener, bound before the ready line */

	/* Raft and storage */
	struct raft *r;
	struct wal *wal;
	struct kv *kv;
	struct raft_ready rd;
	bool inflight;                  /* a Ready is being persisted */
	bool in_ready;                  /* between raft_ready and raft_advance: no raft input */
	bool early;                     /* this Ready's early part is done (ready_early) */
	size_t n_applied;               /* of this Ready's committed entries, applied so far */
	uint64_t applied;               /* applied to the store, ahead of Raft's count within a Ready */
	uint64_t wait_seq;              /* ... up to this WAL sequence number */
	uint64_t persist_start_ns;
	/* a leader's asynchronous writes (rd.async) not yet reported durable:
	 * a ring of (WAL sequence, last index, its term, start time) */
	struct aw { uint64_t seq, index, term, start_ns; } aw[AW_MAX];
	uint32_t aw_head, aw_len;
	bool aw_stalled;                /* the oldest is stuck: no Raft input (inflight set too) */
	uint32_t pending_ticks;
	uint64_t hb_term;               /* leader in this term when the last Ready was done; else 0 */
	uint64_t disk_ns;               /* when the log last finished a write (or a Ready began) */
	struct deferred *dq, **dq_tail;
	uint64_t last_lead;
	bool was_leader;
	bool abstain;                   /* the log lost a cut tail: no votes until caught up */
	struct raft_hard_state hs;      /* as last persisted, for wal_rewrite */
	uint64_t snap_count;            /* applied entries between snapshots; 0: never */
	uint64_t snap_slice;            /* bytes of the store serialized per loop pass */
	uint64_t snap_index;            /* of DIR/snap, 0: none */
	uint64_t snap_bytes;
	uint64_t snap_bytes_written;    /* of the snapshot whose log is being rewritten */
	struct buf snap_buf;            /* the snapshot being serialized, then written (its thread) */
	struct raft_snapshot_meta snap_meta;
	struct kv_snap *snap_kv;        /* SNAP_SLICING: the store's part, a slice each loop pass */
	uv_idle_t snap_idle;            /* runs the slices while SNAP_SLICING */
	uint64_t snap_t0, snap_pause_max, snap_cpu_max; /* ns: since it began; the longest slice, its CPU */
	pthread_t snap_thread;
	int snap_rc;
	_Atomic bool snap_done;         /* the writer thread is through (the tick looks) */
	struct buf snap_recs;           /* SNAP_LOGGING: the log's rewrite, built a slice at a time */
	size_t snap_recs_head;          /* its 'S' and 'H' records */
	uint64_t snap_rec_next, snap_rec_term; /* the next entry to copy; the term of the one before */
	enum { SNAP_IDLE, SNAP_SLICING, SNAP_WRITING, SNAP_LOGGING } snap_state;

	/* loop */
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t tick;
	uv_timer_t reconnect;
	uv_async_t synced;
	uv_prepare_t flush;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	struct inconn *conns;
	struct http_server *srv;
	bool stopping;

	/* requests (see struct req) */
	struct req_list reqs;           /* every one, by deadline */
	struct req_list starting, applying, forwarded;
	struct req_list reads_open, reads_asked, reads_ready;
	struct req_tab by_index, by_ctx;
	struct watcher *watchers;
	uint64_t nwatchers;             /* in watchers: the raft_watchers gauge */
	uint64_t watch_progress_ms;     /* --experimental-watch-progress-notify-interval */
	uint64_t next_ctx;
	uint64_t out_gens;              /* the last peer out generation given */
	uint64_t rng;
	bool kick;                      /* a request gave Raft input: drive before this turn's flush */
	/* linearizable reads share barriers (see "Reads" at serve_reads) */
	uint64_t read_open;             /* ctx of the batch collecting reads, not asked yet; 0: none */
	uint64_t read_asked;            /* ctx of the barrier asked and not yet confirmed; 0: none */
	uint64_t read_asked_ms;

	/* metrics */
	struct metrics_counter *leader_changes, *proposals_failed, *proposals_committed;
	struct metrics_histogram *fsync_h, *apply_h, *snap_pause_h;
	struct metrics_counter *snap_slices;
	struct buf scratch;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This thread's CPU time: beside a wall-clock pause in the log, what of
 * it was work (members sharing a CPU wait for each other too). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* etcd's member ids are 64-bit; ours are Raft's 1..63, shown hashed with
 * the cluster id so two clusters' members do not share ids. */
static uint64_t member_id(const struct node *n, uint32_t id)
{
	return id ? fnv64(&id, sizeof id, n->cluster_id) : 0;
}

static uint64_t next_rand(struct node *n)
{
	/* splitmix64: lease ids only need to be distinct, not secret */
	uint64_t z = (n->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void drive(struct node *n);
static void maybe_snapshot(struct node *n);
static void snap_slicing_stop(struct node *n);
static void snap_idle_cb(uv_idle_t *h);
static void drain_stop(struct node *n);
static void member_local(struct node *n, struct req *q);
static void entry_lost(struct node *n, struct req *q);
static void req_wait(struct node *n, struct req *q, int w);

/* ------------------------------------------------------------ peers: out */

static void peer_closed_cb(uv_handle_t *h)
{
	struct peer *p = h->data;
	p->open = false;
	p->connected = false;
}

/*
 * What p->out holds is dropped, unsent: a write forwarded in it never left
 * this member, so no leader can have proposed it, and it waits for a
 * leader again (W_START) -- the next one it learns, or the same one once
 * reconnected; if none comes before its deadline it is answered
 * "etcdserver: no leader", which tells a client that another member may
 * be asked.  Only bytes never handed to the socket count: a frame handed
 * to uv_write may be partly or wholly written before the connection broke
 * (out_gen moved on at the hand-over), so its write stays W_LEADER and
 * times out as "request timed out", its outcome unknown.
 */
static void peer_out_lost(struct peer *p)
{
	if (p->out_gen) {
		for (struct req *q = p->n->forwarded.head, *next; q; q = next) {
			next = q->link[L_WAIT].next;
			if (q->fwd_to == p->id && q->fwd_gen == p->out_gen) {
				log_debug("a write forwarded to %u never left: it waits for a leader again", p->id);
				req_wait(p->n, q, W_START);
			}
		}
		p->out_gen = ++p->n->out_gens;
	}
	buf_reset(&p->out);
}

static void peer_drop(struct peer *p)
{
	if (p->open && !uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
	p->connected = false;
	peer_out_lost(p);
	buf_free(&p->snap_out); /* the leader sends it again after its snapshot timeout */
	p->snap_off = 0;
}

static void peer_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	/* we never expect data on a connection we dialled: EOF or error ends it */
	free(b->base);
	if (nread < 0)
		peer_drop(s->data);
}

static void alloc_cb(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(sugg);
	b->len = b->base ? sugg : 0;
}

static void peer_connect_cb(uv_connect_t *c, int status)
{
	struct peer *p = c->data;
	if (status < 0 || p->n->stopping) {
		peer_drop(p);
		return;
	}
	p->connected = true;
	uv_tcp_nodelay(&p->tcp, 1);
	uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, peer_read_cb);
	struct buf hello = BUF_INIT;
	raft_frame_put_hello(&hello, p->n->id, p->n->cluster_id);
	/* the HELLO goes first: prepend it to what waits */
	buf_append(&hello, p->out.data, p->out.len);
	buf_free(&p->out);
	p->out = hello;
}

static void peer_dial(struct peer *p)
{
	if (p->open || p->n->stopping)
		return;
	struct sockaddr_storage sa;
	if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&sa) < 0 &&
	    uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&sa) < 0)
		return;
	uv_tcp_init(p->n->loop, &p->tcp);
	p->tcp.data = p;
	p->creq.data = p;
	p->open = true;
	if (uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&sa, peer_connect_cb) < 0)
		peer_drop(p);
}

static void reconnect_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	struct raft_status st;
	raft_status(n->r, &st);
	uint64_t members = st.conf.voters | st.conf.learners;
	for (uint32_t i = 1; i <= n->n_peers; i++)
		if (i != n->id && !n->peers[i].open && n->peers[i].known && (members >> i & 1))
			peer_dial(&n->peers[i]);
}

struct wreq {
	uv_write_t req;
	struct buf data;
};

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *q = (struct wreq *)w;
	if (status < 0)
		peer_drop(w->handle->data);
	buf_free(&q->data);
	free(q);
}

/* The next slices of a snapshot being streamed to p, while what is
 * queued to it stays under SNAP_WINDOW: a follower's snapshot costs the
 * leader one encoded copy and a window, not a copy per retry in a queue. */
static void snap_feed(struct peer *p)
{
	size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) + p->out.len;
	while (p->snap_off < p->snap_out.len && queued < SNAP_WINDOW) {
		size_t k = p->snap_out.len - p->snap_off;
		if (k > SNAP_CHUNK)
			k = SNAP_CHUNK;
		raft_frame_put_chunk(&p->out, p->snap_out.len, p->snap_off, p->snap_out.data + p->snap_off, k);
		p->snap_off += k;
		queued += k;
	}
	if (p->snap_off >= p->snap_out.len && p->snap_out.len) {
		log_info("snapshot of %zu bytes sent to %u in %zu chunks", p->snap_out.len, p->id,
		         (p->snap_out.len + SNAP_CHUNK - 1) / SNAP_CHUNK);
		buf_free(&p->snap_out);
		p->snap_off = 0;
	}
}

/* Once per loop turn: every peer's frames of this turn in one write. */
static void flush_cb(uv_prepare_t *h)
{
	struct node *n = h->data;
	if (n->kick) {
		/* the Raft input that this turn's client requests gave (proposals,
		 * read barriers) becomes one Ready, and its messages leave below */
		n->kick = false;
		drive(n);
	}
	for (uint32_t i = 1; i <= n->n_peers; i++) {
		struct peer *p = &n->peers[i];
		if (i != n->id && p->connected && p->snap_out.len)
			snap_feed(p);
		if (i == n->id || p->out.len == 0 || !p->connected)
			continue;
		if (uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) > PEER_MAX_PENDING) {
			peer_out_lost(p); /* a peer that does not read loses frames, not our memory */
			continue;
		}
		struct wreq *q = calloc(1, sizeof *q);
		INVARIANT(q != NULL);
		q->data = p->out;
		buf_init(&p->out);
		if (p->out_gen)
			p->out_gen = ++n->out_gens; /* handed over: its writes may reach the leader */
		uv_buf_t b = uv_buf_init(q->data.data, (unsigned)q->data.len);
		if (uv_write(&q->req, (uv_stream_t *)&p->tcp, &b, 1, write_cb) < 0) {
			buf_free(&q->data);
			free(q);
			peer_drop(p);
		}
	}
}

static struct buf *peer_out(struct node *n, uint32_t to)
{
	if (to == 0 || to > RAFT_MAX_ID || to == n->id || !n->peers[to].known)
		return NULL;
	struct peer *p = &n->peers[to];
	if (!p->open) {
		peer_dial(p);
		return NULL;
	}
	return &p->out;
}

/* ------------------------------------------------------------ answering */

static void req_free(struct req *q)
{
	free(q->body);
	free(q);
}

/* q goes on l, through its links k, after at (NULL: at its head). */
static void rl_insert(struct req_list *l, int k, struct req *at, struct req *q)
{
	struct req_links *x = &q->link[k];
	x->prev = at;
	x->next = at ? at->link[k].next : l->head;
	*(at ? &at->link[k].next : &l->head) = q;
	*(x->next ? &x->next->link[k].prev : &l->tail) = q;
}

static void rl_remove(struct req_list *l, int k, struct req *q)
{
	struct req_links *x = &q->link[k];
	*(x->prev ? &x->prev->link[k].next : &l->head) = x->next;
	*(x->next ? &x->next->link[k].prev : &l->tail) = x->prev;
	x->prev = x->next = NULL;
}

/* q goes on the wait list l after at (NULL: at its head). */
static void wl_insert(struct req_list *l, struct req *at, struct req *q)
{
	INVARIANT(q->wl == NULL);
	q->wl = l;
	rl_insert(l, L_WAIT, at, q);
}

static void wl_push(struct req_list *l, struct req *q)
{
	wl_insert(l, l->tail, q);
}

static void wl_remove(struct req *q)
{
	if (!q->wl)
		return;
	rl_remove(q->wl, L_WAIT, q);
	q->wl = NULL;
}

static void tab_put(struct req_tab *t, struct req *q, uint64_t key)
{
	INVARIANT(q->tab == NULL);
	if (t->n >= (t->b ? t->mask + 1 : 0)) {
		size_t size = t->b ? 2 * (t->mask + 1) : 64;
		struct req **b = calloc(size, sizeof *b);
		INVARIANT(b != NULL);
		for (size_t i = 0; t->b && i <= t->mask; i++)
			for (struct req *r = t->b[i], *next; r; r = next) {
				next = r->hnext;
				r->hnext = b[r->hkey & (size - 1)];
				b[r->hkey & (size - 1)] = r;
			}
		free(t->b);
		t->b = b;
		t->mask = size - 1;
	}
	q->tab = t;
	q->hkey = key;
	q->hnext = t->b[key & t->mask];
	t->b[key & t->mask] = q;
	t->n++;
}

static void tab_del(struct req *q)
{
	struct req_tab *t = q->tab;
	if (!t)
		return;
	for (struct req **pp = &t->b[q->hkey & t->mask]; *pp; pp = &(*pp)->hnext)
		if (*pp == q) {
			*pp = q->hnext;
			break;
		}
	q->tab = NULL;
	q->hnext = NULL;
	t->n--;
}

/* The first request in t under key (NULL: none). */
static struct req *tab_get(const struct req_tab *t, uint64_t key)
{
	if (!t->b)
		return NULL;
	for (struct req *q = t->b[key & t->mask]; q; q = q->hnext)
		if (q->hkey == key)
			return q;
	return NULL;
}

/* q waits for nothing now (it is being settled, or moves on). */
static void req_unwait(struct req *q)
{
	tab_del(q);
	wl_remove(q);
}

/*
 * q waits for w from now on: onto w's list (and table).  Set before: for
 * W_APPLY index and term, for W_LEADER ctx, for W_READ ctx (read_open).
 * A request waiting to start that still cannot keeps its place.
 */
static void req_wait(struct node *n, struct req *q, int w)
{
	if (w == W_START && q->wl == &n->starting)
		return;
	req_unwait(q);
	q->wait = w;
	switch (w) {
	case W_START:
		wl_push(&n->starting, q);
		break;
	case W_APPLY: {
		/* by term: from the tail, where a leader's proposals go */
		struct req *at = n->applying.tail;
		while (at && at->term > q->term)
			at = at->link[L_WAIT].prev;
		wl_insert(&n->applying, at, q);
		tab_put(&n->by_index, q, q->index);
		break;
	}
	case W_READ:
		INVARIANT(q->ctx == n->read_open);
		wl_push(&n->reads_open, q);
		break;
	case W_LEADER:
		wl_push(&n->forwarded, q);
		tab_put(&n->by_ctx, q, q->ctx);
		break;
	}
}

/* A new request on n->reqs, by deadline (from the tail: each is the
 * request timeout from its arrival, so new ones go last). */
static void req_link(struct node *n, struct req *q)
{
	struct req *at = n->reqs.tail;
	while (at && at->deadline_ms > q->deadline_ms)
		at = at->link[L_ALL].prev;
	rl_insert(&n->reqs, L_ALL, at, q);
	q->linked = true;
}

/* Off every list: it is answered now.  Unlinking twice is a no-op. */
static void req_unlink(struct node *n, struct req *q)
{
	req_unwait(q);
	if (!q->linked)
		return;
	rl_remove(&n->reqs, L_ALL, q);
	q->linked = false;
}

/* Answer q, unlinking it, and free it. */
static void req_answer(struct node *n, struct req *q, int status, const char *body, size_t len)
{
	req_unlink(n, q);
	log_debug("answer req %p origin %p op %d wait %d status %d body %.*s", (void *)q, q->origin, q->op, q->wait,
	          status, (int)(len > 200 ? 200 : len), body);
	if (q->fn) {
		q->fn(q->origin, status, body, len);
	} else if (q->origin) {
		api_answer(q->origin, status, body, len);
	} else if (q->fwd_from) {
		struct buf *b = peer_out(n, q->fwd_from);
		if (b)
			raft_frame_put_fwd_resp(b, q->fwd_id, (uint16_t)status, body, len);
	}
	req_free(q);
}

static void req_fail(struct node *n, struct req *q, int code, const char *msg)
{
	struct buf b = BUF_INIT;
	int status = kv_put_error(&b, code, msg);
	req_answer(n, q, status, b.data, b.len);
	buf_free(&b);
}

static struct kv_header header(const struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	return (struct kv_header){n->cluster_id, member_id(n, n->id), st.term};
}

/* ------------------------------------------------------------ requests */

static bool is_leader(const struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	return st.role == RAFT_LEADER;
}

static uint32_t leader_of(const struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	return st.lead;
}

/* Keepalive and timetolive, on the leader (its clock holds the deadlines). */
static void lease_local(struct node *n, struct req *q)
{
	int64_t id = 0;
	struct buf b = BUF_INIT;
	if (kv_json_i64(q->body, q->len, "ID", &id) == -EINVAL) {
		int st = kv_put_error(&b, KV_CODE_INVALID, "bad lease request: ID");
		req_answer(n, q, st, b.data, b.len);
		buf_free(&b);
		return;
	}
	struct kv_header h = header(n);
	struct kv_lease *l = kv_lease_get(n->kv, id);
	uint64_t now = now_ms();
	if (q->op == NODE_OP_KEEPALIVE) {
		buf_puts(&b, "{\"result\":{");
		kv_put_header(&b, n->kv, &h, true);
		buf_printf(&b, ",\"ID\":\"%lld\"", (long long)id);
		if (l) {
			l->deadline_ms = now + (uint64_t)l->ttl * 1000;
			buf_printf(&b, ",\"TTL\":\"%lld\"", (long long)l->ttl);
		}
		buf_puts(&b, "}}");
	} else {
		buf_putc(&b, '{');
		kv_put_header(&b, n->kv, &h, true);
		buf_printf(&b, ",\"ID\":\"%lld\"", (long long)id);
		if (!l) {
			buf_puts(&b, ",\"TTL\":\"-1\"");
		} else {
			int64_t left = l->ttl;
			if (l->deadline_ms)
				left = l->deadline_ms > now ? (int64_t)((l->deadline_ms - now) / 1000) : 0;
			buf_printf(&b, ",\"TTL\":\"%lld\",\"grantedTTL\":\"%lld\"", (long long)left, (long long)l->ttl);
			if (kv_json_bool(q->body, q->len, "keys")) {
				struct buf k = BUF_INIT;
				kv_lease_keys_json(n->kv, id, &k);
				if (k.len) {
					buf_puts(&b, ",\"keys\":[");
					buf_append(&b, k.data, k.len);
					buf_putc(&b, ']');
				}
				buf_free(&k);
			}
		}
		buf_putc(&b, '}');
	}
	req_answer(n, q, 200, b.data, b.len);
	buf_free(&b);
}

/* Try to move q forward; returns true when it is answered (freed) or
 * handed on, false when it must wait (still linked, wait set). */
static void req_start(struct node *n, struct req *q)
{
	/* Only Raft input waits for raft_advance (a proposal, a lease request
	 * on the leader); joining a read batch, a serializable read of the
	 * applied store and forwarding to the leader go on while this
	 * member's fsync runs, so a follower's clients do not wait for its
	 * disk. */
	bool writes = q->op <= KV_OP_MAX && kv_op_writes((enum kv_op)q->op);
	bool member_op = q->op >= NODE_OP_MEMBER_ADD && q->op <= NODE_OP_MEMBER_PUBLISH;
	bool leader_only = q->op == NODE_OP_KEEPALIVE || q->op == NODE_OP_TIMETOLIVE || member_op;
	if (!writes && !leader_only) {
		if (q->serializable) {
			struct kv_header h = header(n);
			struct buf b = BUF_INIT;
			int st = kv_exec(n->kv, (enum kv_op)q->op, 0, q->body, q->len, &h, &b);
			req_unlink(n, q);
			req_answer(n, q, st, b.data, b.len);
			buf_free(&b);
			return;
		}
		/* joins the batch that the next barrier confirms (reads_ask) */
		if (n->read_open == 0)
			n->read_open = ++n->next_ctx;
		q->ctx = n->read_open;
		q->read_index = 0;
		req_wait(n, q, W_READ);
		return;
	}
	uint32_t lead = leader_of(n);
	if (lead == n->id && (n->inflight || n->in_ready)) {
		req_wait(n, q, W_START); /* no Raft input before raft_advance: it waits its turn */
		return;
	}
	if (lead == n->id) {
		if (member_op) {
			member_local(n, q);
			return;
		}
		if (leader_only) {
			req_unlink(n, q);
			lease_local(n, q);
			return;
		}
		/* the proposer picks a grant's id, so every replica agrees on it */
		if (q->op == KV_OP_LEASE_GRANT && q->aux == 0)
			q->aux = next_rand(n) & 0x7fffffffffffffffull;
		size_t len = CMD_HEAD + q->len;
		uint8_t *cmd = malloc(len);
		INVARIANT(cmd != NULL);
		cmd[0] = (uint8_t)q->op;
		for (int i = 0; i < 8; i++)
			cmd[1 + i] = (uint8_t)(q->aux >> (8 * i));
		memcpy(cmd + CMD_HEAD, q->body, q->len);
		int64_t idx = raft_propose(n->r, cmd, len);
		free(cmd);
		if (idx > 0) {
			struct raft_status st;
			raft_status(n->r, &st);
			q->index = (uint64_t)idx;
			q->term = st.term;
			req_wait(n, q, W_APPLY);
			return;
		}
		if (idx == -EAGAIN || idx == -EPERM || idx == -EBUSY) {
			req_wait(n, q, W_START); /* a new leader's first entry is not committed yet: next tick */
			return;
		}
		metrics_counter_inc(n->proposals_failed);
		req_unlink(n, q);
		req_fail(n, q, idx == -EMSGSIZE ? KV_CODE_INVALID : KV_CODE_RESOURCE,
		         idx == -EMSGSIZE ? "etcdserver: request is too large" : "etcdserver: too many requests");
		return;
	}
	if (lead == 0) {
		req_wait(n, q, W_START); /* an election is on: next tick */
		return;
	}
	struct buf *b = peer_out(n, lead);
	if (!b) {
		req_wait(n, q, W_START);
		return;
	}
	struct peer *p = &n->peers[lead];
	if (p->out_gen == 0)
		p->out_gen = ++n->out_gens;
	q->ctx = ++n->next_ctx;
	q->fwd_to = lead;
	q->fwd_gen = p->out_gen;
	req_wait(n, q, W_LEADER);
	raft_frame_put_fwd_req(b, q->ctx, (uint8_t)q->op, q->aux, q->body, q->len);
}

static void request_new(struct node *n, node_watch_fn fn, void *origin, int op, const char *body, size_t len,
                        bool serializable)
{
	struct req *q = calloc(1, sizeof *q);
	INVARIANT(q != NULL);
	q->fn = fn;
	q->op = op;
	q->body = malloc(len ? len : 1);
	INVARIANT(q->body != NULL);
	memcpy(q->body, body, len);
	q->len = len;
	q->origin = origin;
	q->serializable = serializable;
	q->deadline_ms = now_ms() + n->request_timeout_ms;
	req_link(n, q);
	log_debug("new req %p origin %p op %d body %.*s", (void *)q, origin, op, (int)(len > 200 ? 200 : len), body);
	if (n->stopping) {
		req_unlink(n, q);
		req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: server stopped");
		return;
	}
	req_start(n, q);
	n->kick = true;
}

void node_request(struct node *n, void *origin, int op, const char *body, size_t len, bool serializable)
{
	request_new(n, NULL, origin, op, body, len, serializable);
}

void node_request_call(struct node *n, node_watch_fn fn, void *origin, int op, const char *body, size_t len)
{
	request_new(n, fn, origin, op, body, len, false);
}

/* A forwarded request from a follower: handled as if a client sent it here. */
static void fwd_request(struct node *n, uint32_t from, const struct raft_frame *f)
{
	if (f->op < KV_OP_RANGE || f->op > NODE_OP_MAX)
		return;
	struct req *q = calloc(1, sizeof *q);
	INVARIANT(q != NULL);
	q->op = f->op;
	q->aux = f->aux;
	q->body = malloc(f->body_len ? f->body_len : 1);
	INVARIANT(q->body != NULL);
	memcpy(q->body, f->body, f->body_len);
	q->len = f->body_len;
	q->fwd_from = from;
	q->fwd_id = f->req_id;
	q->deadline_ms = now_ms() + n->request_timeout_ms;
	req_link(n, q);
	req_start(n, q);
}

/* The leader wrote its own member_id into the answer's header; etcd's
 * header names the member the client spoke to, so the relay puts ours in
 * (the header's is the body's first member_id). */
static void relay(struct node *n, struct req *q, int status, const char *body, size_t len)
{
	static const char tag[] = "\"member_id\":\"";
	const char *at = memmem(body, len, tag, sizeof tag - 1);
	const char *end = at ? memchr(at + sizeof tag - 1, '"', len - (size_t)(at + sizeof tag - 1 - body)) : NULL;
	if (!end) {
		req_answer(n, q, status, body, len);
		return;
	}
	struct buf b = BUF_INIT;
	buf_append(&b, body, (size_t)(at - body) + sizeof tag - 1);
	buf_put_u64(&b, member_id(n, n->id));
	buf_append(&b, end, len - (size_t)(end - body));
	req_answer(n, q, status, b.data, b.len);
	buf_free(&b);
}

static void fwd_response(struct node *n, const struct raft_frame *f)
{
	if (f->req_id == 0 && f->status == 410 && !n->removed_ms) {
		log_info("the leader says this member was removed from the cluster: stopping");
		n->removed_ms = now_ms();
		return;
	}
	struct req *q = tab_get(&n->by_ctx, f->req_id);
	if (q) {
		INVARIANT(q->wait == W_LEADER);
		req_unlink(n, q);
		relay(n, q, f->status, (const char *)f->body, f->body_len);
	}
}

/*
 * Reads.  A linearizable read needs a barrier: a ReadIndex confirmed by a
 * heartbeat round a majority answered after the read arrived (lib/raft;
 * a follower's barrier goes to the leader and back).  Every read that
 * arrives while a barrier is out joins one batch, and the batch asks for
 * the next barrier when that one is confirmed: one barrier (one heartbeat
 * round, one message each way from a follower) at a time per member, as
 * etcd's read loop does, however many reads wait.  Sharing is safe: each
 * read in a batch arrived before its barrier was asked, so the index the
 * barrier confirms is at least the commit index at each read's arrival,
 * and the read is answered once this member applied that index.  No log
 * entry, no fsync per read.  A barrier not confirmed within an election
 * timeout (lost with the leader it went to) is given up and its reads
 * join the next batch: a barrier is safe to ask again.
 */
static void reads_ask(struct node *n)
{
	if (n->read_open == 0 || n->read_asked || n->inflight || n->in_ready)
		return;
	if (raft_read_index(n->r, n->read_open) < 0)
		return; /* no leader, or one that has not committed in its term: next drive or tick */
	n->read_asked = n->read_open;
	n->read_asked_ms = now_ms();
	n->read_open = 0;
	INVARIANT(n->reads_asked.head == NULL);
	for (struct req *q; (q = n->reads_open.head);) {
		wl_remove(q);
		wl_push(&n->reads_asked, q);
	}
}

/* A barrier is confirmed at index: its reads may be served from there. */
static void reads_confirmed(struct node *n, uint64_t ctx, uint64_t index)
{
	/* the reads not yet confirmed are those of read_open and of read_asked */
	struct req_list *l = ctx == 0 ? NULL
	                     : ctx == n->read_asked ? &n->reads_asked
	                     : ctx == n->read_open ? &n->reads_open : NULL;
	if (ctx == n->read_asked)
		n->read_asked = 0;
	if (!l)
		return;
	/* to reads_ready, kept by read_index: a later barrier confirms a
	 * later index, so a batch goes at the tail but for a leader change */
	uint64_t at_index = index ? index : 1;
	struct req *at = n->reads_ready.tail;
	while (at && at->read_index > at_index)
		at = at->link[L_WAIT].prev;
	for (struct req *q; (q = l->head);) {
		wl_remove(q);
		q->read_index = at_index;
		wl_insert(&n->reads_ready, at, q);
		at = q;
	}
}

/* Reads whose barrier this member has applied past. */
static void serve_reads(struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	uint64_t applied = st.applied > n->applied ? st.applied : n->applied;
	for (struct req *q; (q = n->reads_ready.head) && applied >= q->read_index;) {
		req_unlink(n, q);
		struct kv_header h = {n->cluster_id, member_id(n, n->id), st.term};
		buf_reset(&n->scratch);
		int status = kv_exec(n->kv, (enum kv_op)q->op, 0, q->body, q->len, &h, &n->scratch);
		req_answer(n, q, status, n->scratch.data, n->scratch.len);
	}
}

/* Each tick: time out what waited too long (drive restarts what waits
 * for a leader: W_START goes to a new one as soon as it is known), and
 * ask again for a read barrier that went unanswered for an
 * election timeout (it was lost with the leader it went to; a barrier is
 * safe to repeat, a write is not, so forwarded writes only time out). */
static void reqs_tick(struct node *n)
{
	uint64_t now = now_ms();
	/* n->reqs is by deadline: the expired are its head, set apart on dead
	 * (each keeps its wait, which names its answer) */
	struct req_list dead = {NULL, NULL};
	for (struct req *q = n->reqs.head; q && now >= q->deadline_ms; q = q->link[L_ALL].next) {
		req_unwait(q);
		wl_push(&dead, q);
	}
	if (n->read_asked && now - n->read_asked_ms >= n->election_tick * n->tick_ms) {
		/* the barrier was lost: its reads join the open batch */
		if (n->read_open == 0)
			n->read_open = ++n->next_ctx;
		for (struct req *q; (q = n->reads_asked.head);) {
			wl_remove(q);
			q->ctx = n->read_open;
			wl_push(&n->reads_open, q);
		}
		n->read_asked = 0;
	}
	/* answered after the walk: an answer may bring a new request (the
	 * next one pipelined on its connection), which goes on n->reqs */
	for (struct req *q; (q = dead.head);) {
		if (q->wait == W_APPLY || q->wait == W_LEADER)
			metrics_counter_inc(n->proposals_failed);
		/* a write still waiting to start was never proposed, here or
		 * through a leader: etcd's answer when it has none, which a
		 * client may safely take to another member; one that may have
		 * been proposed is "request timed out", its outcome unknown */
		if (q->wait == W_START)
			req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: no leader");
		else
			req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: request timed out");
	}
}

/* ------------------------------------------------------------ watch */

/*
 * Watch.  etcd streams a watch: a "created" line, then a line per batch of
 * events, for as long as the client stays; so does the gateway here
 * (node_watch): the created line at once, then each batch of events as
 * this member applies them (after each apply and on each tick), a
 * progress line ({"result":{"header":...}} with no events) every
 * --experimental-watch-progress-notify-interval while idle when the
 * create asked for progress_notify, and the canceled line with
 * compact_revision when compaction passes its start, which ends the
 * stream (etcd's stays open, saying nothing more; a gateway stream here
 * carries one watch, so an open one would only hold the connection).
 * The watcher goes when its client does (http_exchange_gone, checked on
 * every tick, so a silent watch notices too) and when the node stops (the
 * stream ends, so the drain is not held up by it).  A client that reads
 * slower than events come is dropped by lib/http once 8 MiB of its stream
 * wait unsent; it resumes from its last revision, as etcd's clients do.
 *
 * The gRPC front end (node_watch_call, grpc.c) chains polls instead: each
 * answered once, with the same lines, once events at or after its start
 * revision exist (or after WATCH_POLL_MS with none: just the created
 * line); grpc.c asks again from the last revision + 1.
 *
 * Events come from this member's applied state, so they are in log order
 * but may trail the leader's.  A batch is at most WATCH_MAX_EVENTS events
 * (cut at a revision boundary); a stream sends as many batches as are due.
 */

#define WATCH_MAX_EVENTS 1000
#define WATCH_POLL_MS 10000        /* a gRPC poll with no events is answered after this */

/* The line of w's next events, or of its cancel (compacted past), to b;
 * returns how many events (then w moves past them), or < 0 for a cancel. */
static long watch_line(struct node *n, struct watcher *wt, const struct kv_header *h, struct buf *b)
{
	struct buf ev = BUF_INIT;
	int64_t next;
	long k = kv_watch_events(n->kv, &wt->w, WATCH_MAX_EVENTS, &ev, &next);
	if (k < 0) {
		buf_puts(b, "{\"result\":{");
		kv_put_header(b, n->kv, h, false); /* etcd's cancel carries no revision */
		buf_printf(b, ",\"canceled\":true,\"compact_revision\":\"%lld\"}}\n",
		           (long long)kv_compact_revision(n->kv));
	} else if (k > 0) {
		buf_puts(b, "{\"result\":{");
		kv_put_header(b, n->kv, h, true);
		buf_puts(b, ",\"events\":[");
		buf_append(b, ev.data, ev.len);
		buf_puts(b, "]}}\n");
		wt->w.from = next;
	}
	buf_free(&ev);
	return k;
}

static void watch_created(struct node *n, const struct kv_header *h, struct buf *b)
{
	buf_puts(b, "{\"result\":{");
	kv_put_header(b, n->kv, h, true);
	buf_puts(b, ",\"created\":true}}\n");
}

/* A poll (fn set): answer it if it has events (or force: its poll time
 * passed); true if answered. */
static bool watch_try(struct node *n, struct watcher *wt, bool force)
{
	struct kv_header h = header(n);
	struct buf lines = BUF_INIT;
	long k = watch_line(n, wt, &h, &lines);
	if (k == 0 && !force) {
		buf_free(&lines);
		return false;
	}
	struct buf b = BUF_INIT;
	watch_created(n, &h, &b);
	buf_append(&b, lines.data, lines.len);
	wt->fn(wt->origin, 200, b.data, b.len);
	buf_free(&b);
	buf_free(&lines);
	return true;
}

/* A stream: send what is due (events, a cancel, a progress line); true
 * when it ended (its client gone, canceled, or end: the node stops). */
static bool watch_stream(struct node *n, struct watcher *wt, bool end, uint64_t now)
{
	struct http_exchange *ex = wt->origin;
	if (http_exchange_gone(ex)) {
		http_stream_end(ex, NULL, 0);
		return true;
	}
	struct kv_header h = header(n);
	struct buf b = BUF_INIT;
	long k;
	bool sent = false;
	while ((k = watch_line(n, wt, &h, &b)) > 0) {
		sent = true;
		if (http_stream_write(ex, b.data, b.len) < 0)
			break;
		buf_reset(&b);
	}
	if (k < 0) {
		http_stream_write(ex, b.data, b.len);
		end = true;
	} else if (!sent && wt->deadline_ms && now >= wt->deadline_ms) {
		/* etcd's progress notification: the header alone, its revision
		 * the store's (everything up to it has been sent) */
		buf_puts(&b, "{\"result\":{");
		kv_put_header(&b, n->kv, &h, true);
		buf_puts(&b, "}}\n");
		http_stream_write(ex, b.data, b.len);
	}
	if (wt->deadline_ms && (sent || now >= wt->deadline_ms))
		wt->deadline_ms = now + n->watch_progress_ms;
	buf_free(&b);
	if (end || http_exchange_gone(ex)) {
		http_stream_end(ex, NULL, 0);
		return true;
	}
	return false;
}

static void watcher_free(struct node *n, struct watcher *wt)
{
	INVARIANT(n->nwatchers > 0);
	n->nwatchers--;
	kv_watch_free(&wt->w);
	free(wt);
}

static void watch_start(struct node *n, node_watch_fn fn, void *origin, const char *body, size_t len)
{
	struct watcher *wt = calloc(1, sizeof *wt);
	INVARIANT(wt != NULL);
	wt->fn = fn;
	struct buf err = BUF_INIT;
	int st = kv_watch_parse(body, len, &wt->w, &err);
	if (st) {
		if (fn)
			fn(origin, st, err.data, err.len);
		else
			api_answer(origin, st, err.data, err.len);
		buf_free(&err);
		free(wt);
		return;
	}
	/* "from now" is pinned at creation, as etcd's created revision */
	if (wt->w.from == 0)
		wt->w.from = kv_revision(n->kv) + 1;
	wt->origin = origin;
	n->nwatchers++;
	uint64_t now = now_ms();
	if (fn) {
		wt->deadline_ms = now + WATCH_POLL_MS;
		if (n->stopping || watch_try(n, wt, n->stopping)) {
			watcher_free(n, wt);
			return;
		}
	} else {
		/* etcd sends "created" at once, before any event */
		struct http_answer head = {.status = 200, .content_type = "application/json"};
		http_stream_begin(origin, &head);
		struct kv_header h = header(n);
		struct buf b = BUF_INIT;
		watch_created(n, &h, &b);
		http_stream_write(origin, b.data, b.len);
		buf_free(&b);
		if (wt->w.progress_notify)
			wt->deadline_ms = now + n->watch_progress_ms;
		if (watch_stream(n, wt, n->stopping, now)) {
			watcher_free(n, wt);
			return;
		}
	}
	wt->next = n->watchers;
	n->watchers = wt;
}

void node_watch(struct node *n, struct http_exchange *ex, const char *body, size_t len)
{
	watch_start(n, NULL, ex, body, len);
}

void node_watch_call(struct node *n, node_watch_fn fn, void *origin, const char *body, size_t len)
{
	INVARIANT(fn != NULL);
	watch_start(n, fn, origin, body, len);
}

/* A watch whose asker is gone (a gRPC watch canceled or its stream
 * ended): never answered.  Not called from inside a watch's answer. */
void node_watch_drop(struct node *n, void *origin)
{
	for (struct watcher **pp = &n->watchers; *pp;) {
		struct watcher *wt = *pp;
		if (wt->origin == origin) {
			*pp = wt->next;
			watcher_free(n, wt);
			continue;
		}
		pp = &wt->next;
	}
}

/* After entries are applied, and each tick; all: the node stops (polls
 * answered, streams ended). */
static void watchers_check(struct node *n, bool all)
{
	uint64_t now = now_ms();
	struct watcher *done = NULL;
	for (struct watcher **pp = &n->watchers; *pp;) {
		struct watcher *wt = *pp;
		bool over = wt->fn ? watch_try(n, wt, all || now >= wt->deadline_ms)
		                   : watch_stream(n, wt, all, now);
		if (over) {
			*pp = wt->next;
			wt->next = done;
			done = wt;
			continue;
		}
		pp = &wt->next;
	}
	while (done) {
		struct watcher *wt = done;
		done = wt->next;
		watcher_free(n, wt);
	}
}

/* ------------------------------------------------------------ leases */

static void leases_tick(struct node *n)
{
	uint64_t now = now_ms();
	bool leader = is_leader(n);
	if (leader && !n->was_leader) {
		/* a new leader renews every lease: the old leader's clock is gone */
		for (size_t i = 0; i < kv_lease_count(n->kv); i++) {
			struct kv_lease *l = kv_lease_at(n->kv, i);
			l->deadline_ms = now + (uint64_t)l->ttl * 1000;
		}
	}
	n->was_leader = leader;
	if (!leader)
		return;
	for (size_t i = 0; i < kv_lease_count(n->kv); i++) {
		struct kv_lease *l = kv_lease_at(n->kv, i);
		if (l->deadline_ms == 0)
			l->deadline_ms = now + (uint64_t)l->ttl * 1000;
		if (l->deadline_ms > now)
			continue;
		char body[64];
		int len = snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", (long long)l->id);
		uint8_t cmd[CMD_HEAD + 64] = {KV_OP_LEASE_REVOKE};
		memcpy(cmd + CMD_HEAD, body, (size_t)len);
		if (raft_propose(n->r, cmd, CMD_HEAD + (size_t)len) > 0)
			log_info("lease %lld expired: revoking", (long long)l->id);
		l->deadline_ms = now + 1000; /* once a second until the revoke applies */
	}
}

/* ------------------------------------------------------------ membership */

/*
 * Membership, as etcd's users change it: member add (as a learner or a
 * voter), promote, remove, update, list -- on the leader, one change at a
 * time.  Who is a member is Raft's configuration (a CONF entry, in effect
 * once in a log); where a member is (its peer URL, and the name and client
 * URL it publishes when it starts) is a member record, a NORMAL entry of
 * its own kind (NODE_REC_MEMBER: aux the Raft id, body JSON) that every
 * member applies.  An add proposes the CONF entry, then the record: the
 * leader dials the new member at once (it knows the address), the others
 * learn it when they apply the record, and a member that becomes leader
 * before that has the record in its log, committed by its first term.
 * The table (id, name, addresses; ids are never given twice) is kept in
 * DIR/member at the first start and in every snapshot, so it survives a
 * restart and reaches a member caught up by InstallSnapshot.
 *
 * Joining (--initial-cluster-state existing, an empty data dir): the new
 * member does not know its Raft id nor the cluster's id.  It asks the
 * members in --initial-cluster over their peer port, as etcd's joining
 * member asks its peers for the member list: a FWD_REQ of op NODE_JOIN
 * (instead of a HELLO) carrying its peer URL, answered by a FWD_RESP with
 * the table, in which it finds itself by that URL.  Its configuration
 * starts empty; it learns it from the leader's log or snapshot, and it
 * votes only once caught up (it abstains: see abstain_check).
 */

#define NODE_REC_MEMBER 0x80 /* entry op byte: a member record */
#define NODE_JOIN 0x81       /* FWD_REQ op: "which member am I?", from a member joining */
#define JOIN_WAIT_MS 30000   /* a joining member asks this long, then gives up */
#define PUBLISH_EVERY_MS 2000

static uint64_t conf_members(const struct node *n, struct raft_conf *c)
{
	struct raft_status st;
	raft_status(n->r, &st);
	if (c)
		*c = st.conf;
	return st.conf.voters | st.conf.learners;
}

/* "http://HOST:PORT" (or HOST:PORT) with a port; https is not served. */
static int url_hostport(const char *url, char *host, size_t hs, uint16_t *port)
{
	if (strncmp(url, "http://", 7) == 0)
		url += 7;
	else if (strstr(url, "://"))
		return -EINVAL;
	char tmp[300];
	size_t l = strlen(url);
	if (l == 0 || l >= sizeof tmp)
		return -EINVAL;
	memcpy(tmp, url, l + 1);
	if (tmp[l - 1] == '/')
		tmp[l - 1] = 0;
	if (parse_hostport(tmp, host, hs, port) < 0 || *port == 0)
		return -EINVAL;
	return 0;
}

/* A name or URL from the log or a peer: printable, no quote or backslash
 * (they are written into JSON answers as they are). */
static bool text_ok(const char *s, size_t max)
{
	size_t l = strlen(s);
	if (l >= max)
		return false;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

static void peer_set_addr(struct node *n, uint32_t id, const char *host, uint16_t port)
{
	struct peer *p = &n->peers[id];
	bool moved = p->known && (strcmp(p->host, host) != 0 || p->port != port);
	p->n = n;
	p->id = id;
	snprintf(p->host, sizeof p->host, "%s", host);
	p->port = port;
	p->known = true;
	if (id > n->n_peers)
		n->n_peers = id;
	if (id > n->max_id)
		n->max_id = id;
	if (moved && id != n->id)
		peer_drop(p); /* dialled again at its new address */
}

/* Apply a member record's fields (each one there replaces). */
static void member_fields(struct node *n, uint32_t id, const cJSON *j)
{
	if (id == 0 || id > RAFT_MAX_ID || !cJSON_IsObject(j))
		return;
	struct peer *p = &n->peers[id];
	p->n = n;
	p->id = id;
	if (id > n->max_id)
		n->max_id = id;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
	if (cJSON_IsString(name) && text_ok(name->valuestring, sizeof p->name))
		strcpy(p->name, name->valuestring);
	const cJSON *peer = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "peerURLs"), 0);
	char host[64];
	uint16_t port;
	if (cJSON_IsString(peer) && url_hostport(peer->valuestring, host, sizeof host, &port) == 0)
		peer_set_addr(n, id, host, port);
	const cJSON *client = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "clientURLs"), 0);
	if (cJSON_IsString(client) && text_ok(client->valuestring, sizeof p->client))
		strcpy(p->client, client->valuestring);
}

/* The table as JSON: {"cluster_id":"C","id":ID,"max_id":M,"members":[{"id","name","peerURLs","clientURLs"}]}
 * (id: whom it is for, 0 for none); DIR/member, snapshots and join answers. */
static void member_table_json(const struct node *n, uint32_t id, struct buf *out)
{
	buf_printf(out, "{\"cluster_id\":\"%llu\",\"id\":%u,\"max_id\":%u,\"boot\":\"%llu\",\"members\":[",
	           (unsigned long long)n->cluster_id, id, n->max_id, (unsigned long long)n->boot_voters);
	bool first = true;
	for (uint32_t i = 1; i <= n->n_peers; i++) {
		const struct peer *p = &n->peers[i];
		if (!p->known && !p->name[0])
			continue;
		buf_printf(out, "%s{\"id\":%u,\"name\":", first ? "" : ",", i);
		json_escape(out, p->name, strlen(p->name));
		if (p->known)
			buf_printf(out, ",\"peerURLs\":[\"http://%s:%u\"]", p->host, p->port);
		if (p->client[0]) {
			buf_puts(out, ",\"clientURLs\":[");
			json_escape(out, p->client, strlen(p->client));
			buf_putc(out, ']');
		}
		buf_putc(out, '}');
		first = false;
	}
	buf_puts(out, "]}");
}

/* Load a table (replacing the addresses it names).  with_ids: also take
 * the cluster id and this member's id from it (DIR/member, a join). */
static int member_table_load(struct node *n, const char *text, size_t len, bool with_ids)
{
	cJSON *j = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EBADMSG;
	}
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "cluster_id");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	const cJSON *max = cJSON_GetObjectItemCaseSensitive(j, "max_id");
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "members");
	if (with_ids && (!cJSON_IsString(cid) || !cJSON_IsNumber(id) || id->valueint < 1 || id->valueint > RAFT_MAX_ID)) {
		cJSON_Delete(j);
		return -EBADMSG;
	}
	if (with_ids) {
		const cJSON *boot = cJSON_GetObjectItemCaseSensitive(j, "boot");
		n->cluster_id = strtoull(cid->valuestring, NULL, 10);
		n->id = (uint32_t)id->valueint;
		n->boot_voters = cJSON_IsString(boot) ? strtoull(boot->valuestring, NULL, 10) : 0;
	}
	const cJSON *m;
	cJSON_ArrayForEach(m, ms) {
		const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
		if (cJSON_IsNumber(mid) && mid->valueint >= 1 && mid->valueint <= RAFT_MAX_ID)
			member_fields(n, (uint32_t)mid->valueint, m);
	}
	if (cJSON_IsNumber(max) && max->valueint > (int)n->max_id && max->valueint <= RAFT_MAX_ID)
		n->max_id = (uint32_t)max->valueint;
	cJSON_Delete(j);
	return 0;
}

/* DIR/member: this member's id, the cluster's, and the table at its first
 * start (later changes are in the log and the snapshots).  Written once,
 * durably: a restart never derives them again from flags. */
static int member_file_write(struct node *n)
{
	char path[4200], tmp[4210];
	snprintf(path, sizeof path, "%.4000s/member", n->data_dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	struct buf b = BUF_INIT;
	member_table_json(n, n->id, &b);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -errno : 0;
	if (rc == 0 && (write(fd, b.data, b.len) != (ssize_t)b.len || fdatasync(fd) < 0))
		rc = -errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0) {
		int dfd = open(n->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	buf_free(&b);
	return rc;
}

/* 1: loaded, 0: none, <0: damaged. */
static int member_file_read(struct node *n)
{
	char path[4200];
	snprintf(path, sizeof path, "%.4000s/member", n->data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	char text[65536];
	ssize_t k = read(fd, text, sizeof text);
	close(fd);
	if (k <= 0 || k == (ssize_t)sizeof text)
		return -EBADMSG;
	for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
		n->peers[i] = (struct peer){.n = n, .id = i};
	n->n_peers = n->max_id = 0;
	return member_table_load(n, text, (size_t)k, true) < 0 ? -EBADMSG : 1;
}

/* Snapshots carry the table in front of the store: "DSYSMEM1" u32 len table, then kv's. */
#define SNAP_MEMBERS_MAGIC "DSYSMEM1"

static void snap_members_put(const struct node *n, struct buf *b)
{
	struct buf t = BUF_INIT;
	member_table_json(n, 0, &t);
	buf_append(b, SNAP_MEMBERS_MAGIC, 8);
	for (int k = 0; k < 4; k++)
		buf_putc(b, (char)(t.len >> (8 * k)));
	buf_append(b, t.data, t.len);
	buf_free(&t);
}

/* The store's part of a snapshot, and the table (NULL, 0 when it has none). */
static void snap_members_split(const uint8_t *d, size_t len, const uint8_t **kv, size_t *kvlen, const char **tbl,
                               size_t *tlen)
{
	*kv = d;
	*kvlen = len;
	*tbl = NULL;
	*tlen = 0;
	if (len < 12 || memcmp(d, SNAP_MEMBERS_MAGIC, 8) != 0)
		return;
	size_t t = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
	if (t > len - 12)
		return; /* kv_restore refuses it then */
	*tbl = (const char *)d + 12;
	*tlen = t;
	*kv = d + 12 + t;
	*kvlen = len - 12 - t;
}

/* One member in etcd's gateway shape. */
static void member_json(const struct node *n, struct buf *out, uint32_t i, bool learner)
{
	const struct peer *p = &n->peers[i];
	buf_printf(out, "{\"ID\":\"%llu\"", (unsigned long long)member_id(n, i));
	if (p->name[0]) {
		buf_puts(out, ",\"name\":");
		json_escape(out, p->name, strlen(p->name));
	}
	if (p->known)
		buf_printf(out, ",\"peerURLs\":[\"http://%s:%u\"]", p->host, p->port);
	if (i == n->id && n->client_addr[0])
		buf_printf(out, ",\"clientURLs\":[\"http://%s\"]", n->client_addr);
	else if (p->client[0])
		buf_printf(out, ",\"clientURLs\":[\"%s\"]", p->client);
	if (learner)
		buf_puts(out, ",\"isLearner\":true");
	buf_putc(out, '}');
}

static void members_array(const struct node *n, struct buf *out)
{
	struct raft_conf c;
	uint64_t all = conf_members(n, &c);
	buf_puts(out, "\"members\":[");
	bool first = true;
	for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
		if (all >> i & 1) {
			if (!first)
				buf_putc(out, ',');
			member_json(n, out, i, (c.learners >> i & 1) != 0);
			first = false;
		}
	buf_putc(out, ']');
}

void node_members_json(struct node *n, struct buf *out)
{
	struct raft_status st;
	raft_status(n->r, &st);
	buf_printf(out, "{\"header\":{\"cluster_id\":\"%llu\",\"member_id\":\"%llu\",\"raft_term\":\"%llu\"},",
	           (unsigned long long)n->cluster_id, (unsigned long long)member_id(n, n->id),
	           (unsigned long long)st.term);
	members_array(n, out);
	buf_putc(out, '}');
}

/* The answer to an applied change: etcd's header (no revision), the added
 * member for an add, and the members after it. */
static void member_answer(struct node *n, struct req *q)
{
	struct kv_header h = header(n);
	struct buf b = BUF_INIT;
	buf_putc(&b, '{');
	kv_put_header(&b, n->kv, &h, false);
	if (q->op == NODE_OP_MEMBER_ADD) {
		struct raft_conf c;
		conf_members(n, &c);
		buf_puts(&b, ",\"member\":");
		member_json(n, &b, (uint32_t)q->aux, (c.learners >> q->aux & 1) != 0);
	}
	buf_putc(&b, ',');
	members_array(n, &b);
	buf_putc(&b, '}');
	req_answer(n, q, 200, b.data, b.len);
	buf_free(&b);
}

static int64_t member_record_propose(struct node *n, uint32_t id, const char *json, size_t len)
{
	uint8_t *cmd = malloc(CMD_HEAD + len);
	INVARIANT(cmd != NULL);
	cmd[0] = NODE_REC_MEMBER;
	for (int i = 0; i < 8; i++)
		cmd[1 + i] = (uint8_t)((uint64_t)id >> (8 * i));
	memcpy(cmd + CMD_HEAD, json, len);
	int64_t idx = raft_propose(n->r, cmd, CMD_HEAD + len);
	free(cmd);
	return idx;
}

/* The member a request names by etcd's 64-bit ID ("ID", a decimal string
 * in gateway JSON, or a number); 0 if none. */
static uint32_t member_by_id(const struct node *n, const cJSON *j, uint64_t members)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "ID");
	uint64_t want = 0;
	if (cJSON_IsString(v))
		want = strtoull(v->valuestring, NULL, 10);
	else if (cJSON_IsNumber(v) && v->valuedouble >= 0)
		want = (uint64_t)v->valuedouble;
	for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
		if ((members >> i & 1) && want && member_id(n, i) == want)
			return i;
	return 0;
}

/* The first of a request's peerURLs, checked; -EINVAL when missing or bad. */
static int member_url(const cJSON *j, char *host, size_t hs, uint16_t *port)
{
	const cJSON *urls = cJSON_GetObjectItemCaseSensitive(j, "peerURLs");
	const cJSON *u;
	if (!cJSON_IsArray(urls) || cJSON_GetArraySize(urls) == 0)
		return -EINVAL;
	cJSON_ArrayForEach(u, urls) if (!cJSON_IsString(u) || url_hostport(u->valuestring, host, hs, port) < 0) return -EINVAL;
	u = cJSON_GetArrayItem(urls, 0);
	return url_hostport(u->valuestring, host, hs, port);
}

/* Another member (not skip) already at host:port? */
static bool url_taken(const struct node *n, uint64_t members, uint32_t skip, const char *host, uint16_t port)
{
	for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
		if ((members >> i & 1) && i != skip && n->peers[i].known && n->peers[i].port == port &&
		    strcmp(n->peers[i].host, host) == 0)
			return true;
	return false;
}

/* A leader asked to remove itself hands leadership first to the voter
 * whose log is furthest along (etcd moves the leader too), so no election
 * timeout passes without a leader; true if a transfer started.  If it
 * fails, the removal goes ahead on the next try and the leader steps down
 * once it commits. */
static bool member_handover(struct node *n, const struct raft_status *st)
{
	uint32_t best = 0;
	uint64_t best_match = 0;
	for (uint32_t i = 1; i <= RAFT_MAX_ID; i++) {
		uint64_t m = 0;
		if (i != n->id && (st->conf.voters >> i & 1) && n->peers[i].connected && raft_progress(n->r, i, &m) == 0 &&
		    m > best_match) {
			best = i;
			best_match = m;
		}
	}
	if (!best || raft_transfer_leader(n->r, best) < 0)
		return false;
	log_info("member remove of this leader: handing leadership to %u first", best);
	return true;
}

/* A membership request on the leader.  q stays linked while it waits for
 * its entry (W_APPLY) or for a retry (W_START); answered, it is unlinked. */
static void member_local(struct node *n, struct req *q)
{
	struct raft_status st;
	raft_status(n->r, &st);
	uint64_t members = st.conf.voters | st.conf.learners;
	bool pending = st.conf_index > st.commit;
	cJSON *j = cJSON_ParseWithLength(q->body, q->len);
	int code = 0;
	const char *msg = NULL;
	char host[64], rec[400];
	uint16_t port = 0;
	uint32_t id = 0;
	int64_t idx = 0;
	if (!cJSON_IsObject(j)) {
		code = KV_CODE_INVALID, msg = "etcdserver: bad member request";
		goto out;
	}
	switch (q->op) {
	case NODE_OP_MEMBER_ADD: {
		bool learner = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "isLearner"));
		if (member_url(j, host, sizeof host, &port) < 0) {
			code = KV_CODE_INVALID, msg = "etcdserver: given member URLs are invalid";
		} else if (url_taken(n, members, 0, host, port)) {
			code = KV_CODE_PRECONDITION, msg = "etcdserver: Peer URLs already exists";
		} else if (learner && st.conf.learners) {
			code = KV_CODE_PRECONDITION, msg = "etcdserver: too many learner members in cluster";
		} else if (pending) {
			code = KV_CODE_UNAVAILABLE, msg = "etcdserver: unhealthy cluster";
		} else {
			id = n->max_id + 1;
			for (uint32_t i = id; i <= RAFT_MAX_ID; i++)
				if (members >> i & 1)
					id = i + 1;
			if (id > RAFT_MAX_ID) {
				code = KV_CODE_RESOURCE, msg = "dsys-raft: no member ids left (63 ever)";
				break;
			}
			idx = raft_propose_conf(n->r, learner ? RAFT_CONF_ADD_LEARNER : RAFT_CONF_ADD_VOTER, id);
			if (idx > 0) {
				peer_set_addr(n, id, host, port);
				int k = snprintf(rec, sizeof rec, "{\"peerURLs\":[\"http://%s:%u\"]}", host, port);
				int64_t ri = member_record_propose(n, id, rec, (size_t)k);
				if (ri > 0)
					idx = ri; /* answered once its address is applied too */
				q->aux = id;
				log_info("member add: id %u at http://%s:%u%s (index %lld)", id, host, port,
				         learner ? " as a learner" : "", (long long)idx);
			}
		}
		break;
	}
	case NODE_OP_MEMBER_REMOVE:
		id = member_by_id(n, j, members);
		if (!id) {
			code = KV_CODE_NOT_FOUND, msg = "etcdserver: member not found";
		} else if (pending) {
			code = KV_CODE_UNAVAILABLE, msg = "etcdserver: unhealthy cluster";
		} else if (id == n->id && q->aux == 0 && member_handover(n, &st)) {
			/* the removal waits: once another leads, this member hands
			 * it on as a follower, and the cluster had no election gap */
			q->aux = 1;
			idx = -EBUSY;
		} else {
			idx = raft_propose_conf(n->r, RAFT_CONF_REMOVE, id);
			if (idx == -EINVAL)
				code = KV_CODE_PRECONDITION, msg = "etcdserver: re-configuration failed due to not enough started members";
			else if (idx > 0)
				log_info("member remove: id %u (index %lld)%s", id, (long long)idx,
				         id == n->id ? "; this leader steps down once it commits" : "");
		}
		break;
	case NODE_OP_MEMBER_PROMOTE: {
		id = member_by_id(n, j, members);
		uint64_t match = 0;
		if (!id) {
			code = KV_CODE_NOT_FOUND, msg = "etcdserver: member not found";
		} else if (!(st.conf.learners >> id & 1)) {
			code = KV_CODE_PRECONDITION, msg = "etcdserver: can only promote a learner member";
		} else if (raft_progress(n->r, id, &match) < 0 || match == 0 || match * 10 < st.last_index * 9) {
			/* etcd's rule: within 90% of the leader's log */
			code = KV_CODE_PRECONDITION, msg = "etcdserver: can only promote a learner member which is in sync with leader";
		} else if (pending) {
			code = KV_CODE_UNAVAILABLE, msg = "etcdserver: unhealthy cluster";
		} else {
			idx = raft_propose_conf(n->r, RAFT_CONF_ADD_VOTER, id);
			if (idx > 0)
				log_info("member promote: id %u (match %llu of %llu)", id, (unsigned long long)match,
				         (unsigned long long)st.last_index);
		}
		break;
	}
	case NODE_OP_MEMBER_UPDATE:
		id = member_by_id(n, j, members);
		if (!id) {
			code = KV_CODE_NOT_FOUND, msg = "etcdserver: member not found";
		} else if (member_url(j, host, sizeof host, &port) < 0) {
			code = KV_CODE_INVALID, msg = "etcdserver: given member URLs are invalid";
		} else if (url_taken(n, members, id, host, port)) {
			code = KV_CODE_PRECONDITION, msg = "etcdserver: Peer URLs already exists";
		} else {
			int k = snprintf(rec, sizeof rec, "{\"peerURLs\":[\"http://%s:%u\"]}", host, port);
			idx = member_record_propose(n, id, rec, (size_t)k);
			if (idx > 0)
				peer_set_addr(n, id, host, port);
		}
		break;
	case NODE_OP_MEMBER_PUBLISH: {
		/* from the member itself (aux: its id): its name and client URL */
		id = (uint32_t)q->aux;
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
		const cJSON *cu = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "clientURLs"), 0);
		if (id == 0 || id > RAFT_MAX_ID || !(members >> id & 1) || !cJSON_IsString(name) ||
		    !text_ok(name->valuestring, 64) || !cJSON_IsString(cu) || !text_ok(cu->valuestring, 256)) {
			code = KV_CODE_INVALID, msg = "dsys-raft: bad publish";
			break;
		}
		struct buf b = BUF_INIT;
		buf_puts(&b, "{\"name\":");
		json_escape(&b, name->valuestring, strlen(name->valuestring));
		buf_puts(&b, ",\"clientURLs\":[");
		json_escape(&b, cu->valuestring, strlen(cu->valuestring));
		buf_puts(&b, "]}");
		idx = member_record_propose(n, id, b.data, b.len);
		buf_free(&b);
		break;
	}
	}
out:
	cJSON_Delete(j);
	if (!code && idx > 0) {
		q->index = (uint64_t)idx;
		q->term = st.term;
		req_wait(n, q, W_APPLY);
		return;
	}
	if (!code && (idx == -EAGAIN || idx == -EPERM || idx == -EBUSY)) {
		req_wait(n, q, W_START); /* a new leader's first entry, or a leader transfer: next tick */
		return;
	}
	if (!code)
		code = KV_CODE_RESOURCE, msg = "etcdserver: too many requests";
	metrics_counter_inc(n->proposals_failed);
	req_unlink(n, q);
	req_fail(n, q, code, msg);
}

/* The proposal at index, waiting for nothing now (NULL: none). */
static struct req *apply_waiter(struct node *n, uint64_t index)
{
	struct req *q = tab_get(&n->by_index, index);
	if (q)
		req_unwait(q);
	return q;
}

static void member_waiter_answer(struct node *n, const struct raft_entry *e)
{
	struct req *q = apply_waiter(n, e->index);
	if (!q)
		return;
	if (q->term != e->term) {
		entry_lost(n, q);
		return;
	}
	member_answer(n, q);
}

/* A CONF entry applied: answer who waits for it, and notice this member's
 * own removal (it stops soon after, as etcd's removed member does). */
static void member_conf_applied(struct node *n, const struct raft_entry *e)
{
	struct raft_conf c;
	if (raft_conf_decode(e->data, e->len, &c) < 0)
		return;
	bool has = ((c.voters | c.learners) >> n->id & 1) != 0;
	if (!has && n->was_member && !n->removed_ms) {
		log_info("this member was removed from the cluster (index %llu): stopping", (unsigned long long)e->index);
		n->removed_ms = now_ms();
	}
	n->was_member = has;
	member_waiter_answer(n, e);
}

static void member_record_applied(struct node *n, const struct raft_entry *e)
{
	uint64_t aux = 0;
	for (int i = 0; i < 8; i++)
		aux |= (uint64_t)e->data[1 + i] << (8 * i);
	cJSON *j = cJSON_ParseWithLength((const char *)e->data + CMD_HEAD, e->len - CMD_HEAD);
	if (aux >= 1 && aux <= RAFT_MAX_ID)
		member_fields(n, (uint32_t)aux, j);
	cJSON_Delete(j);
	member_waiter_answer(n, e);
}

/* Each tick: a member whose name or client URL the table lacks sends them
 * (a member added by URL only, as etcd's member add is, and each member's
 * client URL, which --initial-cluster does not give), so every member
 * lists every member's; a removed member stops once its answers had time
 * to leave. */
static void member_tick(struct node *n)
{
	uint64_t now = now_ms();
	if (n->removed_ms) {
		if (!n->stopping && now >= n->removed_ms + 500)
			drain_stop(n);
		return;
	}
	const struct peer *self = &n->peers[n->id];
	char client[320];
	snprintf(client, sizeof client, "http://%s", n->client_addr);
	if (!n->client_addr[0] || (strcmp(self->name, n->name) == 0 && strcmp(self->client, client) == 0))
		return;
	if (now < n->publish_ms + PUBLISH_EVERY_MS || !leader_of(n) || !(conf_members(n, NULL) >> n->id & 1))
		return;
	n->publish_ms = now;
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"name\":");
	json_escape(&b, n->name, strlen(n->name));
	buf_puts(&b, ",\"clientURLs\":[");
	json_escape(&b, client, strlen(client));
	buf_puts(&b, "]}");
	struct req *q = calloc(1, sizeof *q);
	INVARIANT(q != NULL);
	q->op = NODE_OP_MEMBER_PUBLISH;
	q->aux = n->id;
	q->body = b.data; /* the request owns it now */
	q->len = b.len;
	q->deadline_ms = now + n->request_timeout_ms;
	req_link(n, q);
	req_start(n, q);
}

/*
 * A removed follower may never see its removal: the leader stops sending
 * to it as soon as the change is in its log.  Left alone it would campaign
 * for ever; so when the leader hears a (pre-)vote request from a former
 * member its committed configuration does not hold, it says so (a FWD_RESP
 * of request 0, status 410), and that member stops.  Only the leader says
 * it: it holds every committed entry, while a lagging follower may not
 * know of a new member yet.
 */
#define GONE_STATUS 410

static bool member_gone(struct node *n, uint32_t from)
{
	struct raft_status st;
	raft_status(n->r, &st);
	return st.role == RAFT_LEADER && st.conf_index <= st.commit && from <= n->max_id &&
	       !((st.conf.voters | st.conf.learners) >> from & 1);
}

static void member_tell_gone(struct node *n, uint32_t to)
{
	struct buf *b = peer_out(n, to);
	static const char msg[] = "{\"error\":\"etcdserver: the member has been permanently removed from the cluster\"}";
	if (b)
		raft_frame_put_fwd_resp(b, 0, GONE_STATUS, msg, sizeof msg - 1);
}

/* A joining member's question, on a connection without a HELLO: answer
 * the table if its peer URL is a member's, then the joiner hangs up. */
struct join_write {
	uv_write_t req;
	struct buf data;
};

static void join_write_cb(uv_write_t *w, int status)
{
	(void)status;
	struct join_write *jw = (struct join_write *)w;
	buf_free(&jw->data);
	free(jw);
}

static void member_join_reply(struct node *n, uv_tcp_t *tcp, const struct raft_frame *f)
{
	char url[300], host[64];
	uint16_t port;
	size_t l = f->body_len < sizeof url ? f->body_len : sizeof url - 1;
	memcpy(url, f->body, l);
	url[l] = 0;
	uint32_t id = 0;
	uint64_t members = conf_members(n, NULL);
	if (url_hostport(url, host, sizeof host, &port) == 0)
		for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
			if ((members >> i & 1) && n->peers[i].known && n->peers[i].port == port &&
			    strcmp(n->peers[i].host, host) == 0)
				id = i;
	struct buf body = BUF_INIT;
	if (id)
		member_table_json(n, id, &body);
	else
		buf_puts(&body, "{\"error\":\"no member has this peer URL: add it first (member add)\"}");
	struct join_write *jw = calloc(1, sizeof *jw);
	INVARIANT(jw != NULL);
	raft_frame_put_fwd_resp(&jw->data, f->req_id, id ? 200 : 404, body.data, body.len);
	buf_free(&body);
	uv_buf_t b = uv_buf_init(jw->data.data, (unsigned)jw->data.len);
	if (uv_write(&jw->req, (uv_stream_t *)tcp, &b, 1, join_write_cb) < 0) {
		buf_free(&jw->data);
		free(jw);
	}
	log_info("a joining member at %s asked for its id: %u", url, id);
}

/* host (a numeric IPv4 or IPv6 address) and port as a socket address:
 * 0, or -EINVAL for anything else (peers are named by address). */
static int numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*sl = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*sl = sizeof *s6;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* The joining side, before the loop runs: ask each member of
 * --initial-cluster (blocking, short timeouts) until one knows us. */
static int join_ask(const char *host, uint16_t port, const char *self_url, struct buf *answer)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (numeric_addr(host, port, &ss, &sl) < 0)
		return -EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct buf b = BUF_INIT;
	raft_frame_put_fwd_req(&b, 1, NODE_JOIN, 0, self_url, strlen(self_url));
	int rc = connect(fd, (struct sockaddr *)&ss, sl) < 0 || write(fd, b.data, b.len) != (ssize_t)b.len ? -EIO : 0;
	buf_reset(&b);
	while (rc == 0) {
		buf_reserve(&b, 65536);
		ssize_t k = read(fd, b.data + b.len, b.cap - b.len);
		if (k <= 0) {
			rc = -EIO;
			break;
		}
		b.len += (size_t)k;
		const uint8_t *pl;
		size_t plen;
		long fl = raft_frame_next((const uint8_t *)b.data, b.len, 1u << 20, &pl, &plen);
		if (fl < 0) {
			rc = -EBADMSG;
		} else if (fl > 0) {
			struct raft_frame f = {0};
			if (raft_frame_decode(pl, plen, &f) < 0 || f.kind != RAFT_FRAME_FWD_RESP)
				rc = -EBADMSG;
			else if (f.status != 200)
				rc = -ENOENT;
			else
				buf_append(answer, f.body, f.body_len);
			raft_frame_free(&f);
			break;
		}
	}
	buf_free(&b);
	close(fd);
	return rc;
}

/* 0: joined as a member that ran before (its data dir was lost); 1: as
 * one that never ran; or -errno. */
static int member_join(struct node *n, const char *self_url)
{
	struct peer known[MAX_PEERS + 1];
	uint32_t count = n->n_peers, self = n->id;
	memcpy(known, n->peers, sizeof known);
	uint64_t deadline = now_ms() + JOIN_WAIT_MS;
	bool told = false;
	while (now_ms() < deadline) {
		for (uint32_t i = 1; i <= count; i++) {
			if (i == self)
				continue;
			struct buf ans = BUF_INIT;
			int rc = join_ask(known[i].host, known[i].port, self_url, &ans);
			if (rc == 0) {
				for (uint32_t k = 1; k <= RAFT_MAX_ID; k++)
					n->peers[k] = (struct peer){.n = n, .id = k};
				n->n_peers = n->max_id = 0;
				n->id = 0;
				rc = member_table_load(n, ans.data, ans.len, true);
				buf_free(&ans);
				if (rc == 0) {
					log_info("joined cluster %llu as member %u, told by %s", (unsigned long long)n->cluster_id,
					         n->id, known[i].name);
					/* a member that never started (it has not published a name)
					 * can have lost no acknowledged entry nor vote: it need not
					 * abstain, and must not -- a cluster of one that added it as
					 * a voter needs its vote to elect anyone */
					return n->peers[n->id].name[0] ? 0 : 1;
				}
				return rc;
			}
			if (rc == -ENOENT && !told) {
				log_warn("%s does not know %s yet: waiting for a member add", known[i].name, self_url);
				told = true;
			}
			buf_free(&ans);
		}
		usleep(200 * 1000);
	}
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------ apply */

/*
 * Huge pages for the heap.  Every write leaves its key and value in the
 * store, so a member's heap grows with the write rate, and each new 4 KiB
 * of it costs a page fault, over 10 us in a VM: under `etcdctl check perf`
 * (1.3 KiB kept per write) the heap's growth was nearly every fault left
 * once the log's arena took huge pages (lib/raft).  So the heap grows in
 * HEAP_PAD steps (M_TOP_PAD, which also lets blocks up to HEAP_MMAP come
 * from it, as glibc's adaptive threshold would), and each tick asks for
 * transparent huge pages on what it grew by since (madvise, a hint:
 * nothing changes where THP is off), before most of it is touched.
 * mem_trim still gives the heap's free top back (malloc_trim ignores the
 * pad), and the next growth is asked for again.
 */
#define HEAP_PAD ((size_t)32 << 20)
#define HEAP_MMAP ((size_t)32 << 20)

static uintptr_t heap_hinted; /* the heap's top when last hinted */

static void heap_setup(void)
{
	(void)mallopt(M_TOP_PAD, (int)HEAP_PAD);
	(void)mallopt(M_MMAP_THRESHOLD, (int)HEAP_MMAP);
	heap_hinted = (uintptr_t)sbrk(0);
}

static void heap_hint(void)
{
	const uintptr_t h = (uintptr_t)2 << 20;
	uintptr_t top = (uintptr_t)sbrk(0);
	if (top < heap_hinted)
		heap_hinted = top; /* trimmed: what grows back is a new mapping */
	uintptr_t from = (heap_hinted + h - 1) & ~(h - 1), to = top & ~(h - 1);
	if (to > from) {
		(void)madvise((void *)from, to - from, MADV_HUGEPAGE);
		heap_hinted = to;
	}
}

/*
 * Memory given back.  What a member frees in bulk -- every revision a
 * compaction drops, the log entries a snapshot replaces, the store an
 * installed snapshot replaces -- was allocated in small pieces (a key, a
 * value, a log block) among others that live on, so glibc's malloc keeps
 * it: free() returns memory to the kernel only from the top of the heap.
 * After such a step, malloc_trim gives back every free page of every
 * arena (madvise), so the resident size follows what is held.  It costs a
 * walk of the free lists, once per compaction or snapshot.
 */
static void mem_trim(const char *why)
{
	uint64_t t0 = now_ns();
	malloc_trim(0);
	log_debug("memory trimmed after %s in %.1f ms", why, (double)(now_ns() - t0) / 1e6);
}

/*
 * A proposal whose index was applied holding another entry (a leader
 * change put that one there): its own entry can never be committed (the
 * index is taken for good, Log Matching), so the write provably did not
 * happen, and it is proposed again -- through whoever leads now -- while
 * its deadline lasts, instead of failing with "leader changed".  Each try
 * still answers at most once: only the entry at the (index, term) it
 * waits for answers it.
 */
static void entry_lost(struct node *n, struct req *q)
{
	if (n->stopping || now_ms() >= q->deadline_ms || q->op > KV_OP_MAX) {
		/* a membership change is not tried again: part of it (its CONF
		 * entry) may have been applied without its record */
		metrics_counter_inc(n->proposals_failed);
		req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: leader changed");
		return;
	}
	log_debug("the entry of req %p at %llu (term %llu) was replaced: proposing it again", (void *)q,
	          (unsigned long long)q->index, (unsigned long long)q->term);
	req_wait(n, q, W_START);
	n->kick = true; /* drive restarts it once this Ready is done */
}

/*
 * The proposals e settles, unlinked: the one at e's index and term in
 * *mine; proposed again, any other at its index, and every one of an
 * older term than e's at a later index: e is committed, so every later
 * leader's log holds it, and a log's terms never fall, so no entry of an
 * older term can ever be committed after e's index.  (One at an earlier
 * index was settled when its index was applied, or, if a snapshot from
 * the leader covered it, by install_snapshot: that one may have been
 * committed, so it is never proposed again.)  The last matters
 * when a frozen leader comes back with a tail of proposals that the new
 * leader never got: when the new leader's clients are all waiting on
 * that tail, no new write would reach those indexes, and waiting for
 * each index to be filled would make them time out one by one.
 */
static void apply_waiters(struct node *n, const struct raft_entry *e, struct req **mine)
{
	struct req_list lost = {NULL, NULL};
	*mine = NULL;
	/* those at e's index (of any term: another member's entry of an
	 * older term may win an index this one proposed at later, Figure 8
	 * of the Raft paper) */
	for (struct req *q; (q = tab_get(&n->by_index, e->index));) {
		req_unwait(q);
		if (q->term == e->term && !*mine)
			*mine = q;
		else
			wl_push(&lost, q);
	}
	/* those of an older term at a later index: n->applying's head, by
	 * term (none at an earlier index is left: each was settled when its
	 * index was applied, or by install_snapshot) */
	for (struct req *q = n->applying.head, *next; q && q->term < e->term; q = next) {
		next = q->link[L_WAIT].next;
		if (q->index > e->index) {
			req_unwait(q);
			wl_push(&lost, q);
		}
	}
	for (struct req *q; (q = lost.head);)
		entry_lost(n, q); /* each leaves lost: answered, or to n->starting */
}

static void apply_entry(struct node *n, const struct raft_entry *e)
{
	if (e->type == RAFT_ENTRY_CONF) {
		member_conf_applied(n, e);
		return;
	}
	if (e->type != RAFT_ENTRY_NORMAL || e->len == 0) {
		/* a new leader's no-op: a write proposed at its index was lost */
		struct req *none;
		apply_waiters(n, e, &none);
		INVARIANT(none == NULL);
		return;
	}
	if (e->len >= CMD_HEAD && e->data[0] == NODE_REC_MEMBER) {
		member_record_applied(n, e);
		return;
	}
	struct req *waiter;
	apply_waiters(n, e, &waiter);
	buf_reset(&n->scratch);
	int status;
	if (e->len < CMD_HEAD) {
		status = kv_put_error(&n->scratch, KV_CODE_INVALID, "bad entry");
	} else {
		uint64_t aux = 0;
		for (int i = 0; i < 8; i++)
			aux |= (uint64_t)e->data[1 + i] << (8 * i);
		struct kv_header h = header(n);
		uint64_t t0 = now_ns();
		status = kv_exec(n->kv, (enum kv_op)e->data[0], aux, (const char *)e->data + CMD_HEAD,
		                 e->len - CMD_HEAD, &h, &n->scratch);
		metrics_histogram_observe_ns(n->apply_h, now_ns() - t0);
		metrics_counter_inc(n->proposals_committed);
		if ((enum kv_op)e->data[0] == KV_OP_COMPACT && status == 200)
			mem_trim("a compaction");
	}
	if (waiter)
		req_answer(n, waiter, status, n->scratch.data, n->scratch.len);
}

/* ------------------------------------------------------------ Ready */

static void put_snap_record(struct buf *b, struct wal *w, uint64_t index, uint64_t term)
{
	uint8_t rec[17];
	rec[0] = 'S';
	for (int k = 0; k < 8; k++) {
		rec[1 + k] = (uint8_t)(index >> (8 * k));
		rec[9 + k] = (uint8_t)(term >> (8 * k));
	}
	struct iovec part = {rec, sizeof rec};
	if (b)
		wal_record_put(b, &part, 1);
	else
		wal_appendv(w, &part, 1);
}

static void put_hs_record(struct buf *b, struct wal *w, const struct raft_hard_state *hs)
{
	uint8_t rec[1 + 24];
	rec[0] = 'H';
	uint64_t v[3] = {hs->term, hs->vote, hs->commit};
	for (int j = 0; j < 3; j++)
		for (int k = 0; k < 8; k++)
			rec[1 + 8 * j + k] = (uint8_t)(v[j] >> (8 * k));
	struct iovec part = {rec, sizeof rec};
	if (b)
		wal_record_put(b, &part, 1);
	else
		wal_appendv(w, &part, 1);
}

static void put_entry_record(struct buf *b, struct wal *w, const struct raft_entry *e)
{
	uint8_t head[1 + 8 + 8 + 1];
	head[0] = 'E';
	for (int k = 0; k < 8; k++) {
		head[1 + k] = (uint8_t)(e->term >> (8 * k));
		head[9 + k] = (uint8_t)(e->index >> (8 * k));
	}
	head[17] = e->type;
	struct iovec parts[2] = {{head, sizeof head}, {(void *)e->data, e->len}};
	if (b)
		wal_record_put(b, parts, 2);
	else
		wal_appendv(w, parts, 2);
}

/*
 * What a Ready must have durable before its messages leave: new entries
 * (an acknowledgement promises them), an installed snapshot, and a new
 * term or vote (a vote must never be cast twice in a term).  The commit
 * index is volatile state in Raft (Figure 2): a Ready that only moves it
 * writes nothing and waits for nothing, and the commit index rides along
 * in the next 'H' record written with entries.  A restart that finds an
 * older commit index applies less at first and learns the rest from the
 * leader; it never applies more than was committed, because a record
 * reaches the disk only after the entries logged before it (one file,
 * appended in order).
 */
/*
 * Asynchronous leader writes (raft.h, rd.async; thesis 10.2.1): a
 * leader's Ready that changes neither term nor vote is appended to the
 * WAL, sent, applied (only what is already durable is handed out) and
 * advanced at once, so the core goes on taking acknowledgements,
 * proposals and ticks while the sync thread fsyncs.  When the WAL reports
 * the write durable (synced_cb), raft_persisted tells the core, which
 * only then counts the leader's own copy toward a commit.  Writes reach
 * the disk in append order, so a later synchronous Ready (a vote, a new
 * term) waits for every asynchronous write before it too.
 */
static void aw_report(struct node *n)
{
	uint64_t durable = wal_durable(n->wal);
	while (n->aw_len && n->aw[n->aw_head].seq <= durable) {
		struct aw *a = &n->aw[n->aw_head];
		metrics_histogram_observe_ns(n->fsync_h, now_ns() - a->start_ns);
		raft_persisted(n->r, a->index, a->term);
		n->aw_head = (n->aw_head + 1) % AW_MAX;
		n->aw_len--;
	}
}

/*
 * A disk that hangs must still cost the leadership, as it does a
 * synchronous Ready (tick_inflight): once the oldest asynchronous write
 * has waited four election timeouts, the node takes no Raft input (inflight,
 * with no Ready to finish) and tick_inflight's heartbeats stop, so the
 * followers elect a leader that can commit.  Writes that finish lift it.
 */
static uint64_t aw_limit_ns(const struct node *n)
{
	return 4ull * n->election_tick * n->tick_ms * 1000000ull;
}

static void aw_stall_check(struct node *n)
{
	if (n->inflight || !n->aw_len || now_ns() - n->aw[n->aw_head].start_ns <= aw_limit_ns(n))
		return;
	log_warn("the log's write of index %llu has waited over four election timeouts: taking no Raft input",
	         (unsigned long long)n->aw[n->aw_head].index);
	n->aw_stalled = true;
	n->inflight = true;
	n->persist_start_ns = n->aw[n->aw_head].start_ns;
}

static void aw_unstall(struct node *n)
{
	if (!n->aw_stalled || (n->aw_len && now_ns() - n->aw[n->aw_head].start_ns > aw_limit_ns(n)))
		return;
	n->aw_stalled = false;
	n->inflight = false;
	log_info("the log writes again: taking Raft input");
}

static bool hs_must_sync(const struct node *n, const struct raft_ready *rd)
{
	return rd->hs_changed && (rd->hs.term != n->hs.term || rd->hs.vote != n->hs.vote);
}

static void persist(struct node *n, const struct raft_ready *rd)
{
	wal_lock(n->wal);
	/* an installed snapshot (already durable in DIR/snap) replaces the
	 * whole stored log: the 'S' record says so to the replay */
	if (rd->snapshot)
		put_snap_record(NULL, n->wal, rd->snapshot->meta.index, rd->snapshot->meta.term);
	for (size_t i = 0; i < rd->n_entries; i++)
		put_entry_record(NULL, n->wal, &rd->entries[i]);
	if (hs_must_sync(n, rd) || (rd->hs_changed && (rd->n_entries || rd->snapshot))) {
		put_hs_record(NULL, n->wal, &rd->hs);
		n->hs = rd->hs;
	}
	n->wait_seq = wal_appended(n->wal);
	wal_unlock(n->wal);
}

/*
 * A cut tail (wal_tail_cut) may have held entries this member had
 * acknowledged, and votes it had cast: outside Raft's model, where stored
 * state is never lost.  Voting or campaigning now could elect a leader
 * without an acknowledged, committed entry (this member's ack was part of
 * its majority).  So the member abstains -- it drops vote, pre-vote and
 * TimeoutNow requests and its election clock does not run -- until a
 * leader elected without it has caught it up: once its commit index is at
 * an entry of the leader's current term, its log holds every entry
 * committed before that term (Log Matching, Leader Completeness), which
 * covers whatever was cut.  While it abstains it still takes appends and
 * serves reads through the leader.  Left as a gap: a vote cast in the cut
 * tail for a term above the leader's that later comes round again.
 */
static void abstain_check(struct node *n, const struct raft_status *st)
{
	uint64_t t = 0;
	if (!st->lead || st->lead == n->id || st->commit == 0 || raft_term_at(n->r, st->commit, &t) < 0 ||
	    t != st->term)
		return;
	int rc = wal_tail_cut_clear(n->wal);
	if (rc < 0) {
		log_warn("cannot clear '%s/wal/cut': %s; still abstaining", n->data_dir, strerror(-rc));
		return;
	}
	n->abstain = false;
	log_info("caught up by leader %u to index %llu (term %llu): voting again", st->lead,
	         (unsigned long long)st->commit, (unsigned long long)st->term);
}

/*
 * Messages a leader sends (appends, heartbeats, snapshots, read barrier
 * answers, TimeoutNow) promise nothing about this member's disk, so they
 * leave before its fsync (thesis 10.2.1: the leader writes its log in
 * parallel with replicating it).  Safe because the leader counts its own
 * copy of an entry toward the commit only through the acknowledgements it
 * steps after raft_advance, and raft_advance comes after the fsync: until
 * then every input waits (drive).  A leader that crashes first is as one
 * that crashed after sending.  What a follower or candidate sends --
 * acknowledgements, votes, vote requests, heartbeat answers -- waits for
 * its disk.
 */
static bool msg_early(const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAP:
	case RAFT_MSG_READ_INDEX_RESP:
	case RAFT_MSG_TIMEOUT_NOW: return true;
	default: return false;
	}
}

static void send_msgs(struct node *n, const struct raft_ready *rd, bool early)
{
	for (size_t i = 0; i < rd->n_msgs; i++) {
		if (msg_early(&rd->msgs[i]) != early)
			continue;
		struct buf *b = peer_out(n, rd->msgs[i].to);
		if (b && rd->msgs[i].type == RAFT_MSG_SNAP) {
			struct peer *p = &n->peers[rd->msgs[i].to];
			struct raft_msg m = rd->msgs[i];
			struct raft_snapshot s;
			uint8_t *data = NULL;
			if (!m.snapshot->len) {
				/* Raft holds our own snapshots' index only (snap_log_step) */
				char err[256] = "it is missing";
				int rc = snap_read(n->data_dir, &s.meta, &data, &s.len, err, sizeof err);
				if (rc < 0 || s.meta.index != m.snapshot->meta.index || s.meta.term != m.snapshot->meta.term) {
					/* a newer one is being written over it: the leader
					 * sends again after its snapshot timeout */
					log_info("snapshot at %llu for %u not sent: %s",
					         (unsigned long long)m.snapshot->meta.index, m.to,
					         rc < 0 ? err : "DIR/snap holds another");
					free(data);
					continue;
				}
				s.meta = m.snapshot->meta;
				s.data = data;
				m.snapshot = &s;
			}
			buf_reset(&p->snap_out);
			p->snap_off = 0;
			raft_msg_payload(&p->snap_out, &m);
			free(data);
		} else if (b) {
			raft_frame_put_msg(b, &rd->msgs[i]);
		}
	}
}

static void apply_upto(struct node *n, uint64_t last)
{
	struct raft_ready *rd = &n->rd;
	for (; n->n_applied < rd->n_committed && rd->committed[n->n_applied].index <= last; n->n_applied++) {
		apply_entry(n, &rd->committed[n->n_applied]);
		n->applied = rd->committed[n->n_applied].index;
	}
}

/*
 * The part of a Ready that need not wait for this member's fsync: the
 * leader's messages, and applying what is committed and already in this
 * member's log on disk (entries before this Ready's) -- committed means
 * durable on a majority, so the store may apply it, and the proposer
 * answer its client, while this member's write of newer entries is still
 * on its way to the disk.  Committed entries of this very Ready wait for
 * the fsync: a leader alone in its configuration commits what only its
 * own, unsynced log holds.  Reads confirmed here are served as soon as the
 * store has applied their index.
 */
static void ready_early(struct node *n)
{
	struct raft_ready *rd = &n->rd;
	send_msgs(n, rd, true);
	apply_upto(n, rd->n_entries ? rd->entries[0].index - 1 : UINT64_MAX);
	for (size_t i = 0; i < rd->n_reads; i++)
		reads_confirmed(n, rd->reads[i].ctx, rd->reads[i].index);
	serve_reads(n);
	n->early = true;
}

static void finish_ready(struct node *n, bool async)
{
	struct raft_ready *rd = &n->rd;
	if (!n->early)
		ready_early(n);
	n->early = false;
	apply_upto(n, UINT64_MAX);
	n->n_applied = 0;
	send_msgs(n, rd, false);
	if (async) {
		raft_advance_async(n->r, rd);
	} else {
		INVARIANT_MSG(!n->aw_len || wal_durable(n->wal) >= n->aw[(n->aw_head + n->aw_len - 1) % AW_MAX].seq,
		              "a synchronous Ready is advanced only once every earlier write is durable");
		raft_advance(n->r, rd);
		n->aw_head = n->aw_len = 0; /* it covers every write before it */
	}
	n->inflight = false;
	n->in_ready = false;
	maybe_snapshot(n);
	if (rd->n_committed)
		watchers_check(n, false);
	struct raft_status st;
	raft_status(n->r, &st);
	n->hb_term = st.role == RAFT_LEADER ? st.term : 0;
	if (n->abstain)
		abstain_check(n, &st);
	if (st.lead != n->last_lead) {
		if (st.lead)
			metrics_counter_inc(n->leader_changes);
		log_info("leader is now %u (term %llu)", st.lead, (unsigned long long)st.term);
		n->last_lead = st.lead;
	}
	serve_reads(n);
}

static void step_frame(struct node *n, uint32_t from, const uint8_t *p, size_t len);

static bool snap_holds_store(const struct raft_snapshot *s)
{
	struct kv *tmp = kv_new(NULL);
	INVARIANT(tmp != NULL);
	const uint8_t *kd;
	const char *tbl;
	size_t kl, tl;
	snap_members_split(s->data, s->len, &kd, &kl, &tbl, &tl);
	bool ok = kv_restore(tmp, kd, kl) == 0;
	kv_free(tmp);
	return ok;
}

/* A CHUNK: append it to what this peer's snapshot has so far; the whole
 * payload is stepped as one frame.  Out of order (a restarted stream, a
 * lost connection): start again or drop; the leader resends. */
static void snap_chunk(struct node *n, uint32_t from, const struct raft_frame *f)
{
	struct peer *p = &n->peers[from];
	if (f->offset == 0) {
		buf_free(&p->snap_in);
		p->snap_in_total = f->total;
		if (f->total > SNAP_IN_MAX) {
			log_warn("peer %u sends a snapshot of %llu bytes, past the limit: dropped", from,
			         (unsigned long long)f->total);
			p->snap_in_total = 0;
			return;
		}
	}
	if (p->snap_in_total != f->total || f->offset != p->snap_in.len) {
		buf_free(&p->snap_in);
		p->snap_in_total = 0;
		return;
	}
	buf_append(&p->snap_in, f->body, f->body_len);
	if (p->snap_in.len < p->snap_in_total)
		return;
	struct buf whole = p->snap_in;
	buf_init(&p->snap_in);
	p->snap_in_total = 0;
	uint8_t kind = whole.len ? (uint8_t)whole.data[0] : 0;
	if (kind == RAFT_FRAME_MSG)
		step_frame(n, from, (const uint8_t *)whole.data, whole.len);
	buf_free(&whole);
}

static void step_frame(struct node *n, uint32_t from, const uint8_t *p, size_t len)
{
	struct raft_frame f = {0};
	if (raft_frame_decode(p, len, &f) == 0) {
		if (f.kind == RAFT_FRAME_CHUNK) {
			snap_chunk(n, from, &f);
		} else if (f.kind == RAFT_FRAME_MSG && f.msg.type == RAFT_MSG_SNAP && !snap_holds_store(f.msg.snapshot)) {
			/* checked before Raft takes it: once in a Ready it cannot be refused */
			log_warn("peer %u sent a snapshot that does not hold a store: dropped", from);
		} else if (n->abstain && f.kind == RAFT_FRAME_MSG &&
		           (f.msg.type == RAFT_MSG_VOTE || f.msg.type == RAFT_MSG_PREVOTE ||
		            f.msg.type == RAFT_MSG_TIMEOUT_NOW)) {
			log_debug("abstaining: %s from %u dropped", raft_msg_type_name(f.msg.type), from);
		} else if (f.kind == RAFT_FRAME_MSG && (f.msg.type == RAFT_MSG_VOTE || f.msg.type == RAFT_MSG_PREVOTE) &&
		           member_gone(n, from)) {
			member_tell_gone(n, from);
		} else if (f.kind == RAFT_FRAME_MSG && f.msg.from == from && f.msg.to == n->id) {
			int rc = raft_step(n->r, &f.msg);
			if (rc < 0 && rc != -EINVAL)
				log_debug("step from %u: %s", from, strerror(-rc));
		} else if (f.kind == RAFT_FRAME_FWD_REQ) {
			fwd_request(n, from, &f);
		} else if (f.kind == RAFT_FRAME_FWD_RESP) {
			fwd_response(n, &f);
		}
	}
	raft_frame_free(&f);
}

/* ------------------------------------------------------------ snapshots */

/*
 * Snapshots.  Every --snapshot-count applied entries the member writes its
 * store to DIR/snap (snap.c, durable before anything refers to it), hands
 * its index to lib/raft (raft_compact: the log before it is dropped, and a
 * follower too far behind gets the snapshot, which send_msgs reads back
 * from DIR/snap: Raft keeps no copy of the store), and rewrites the log as an
 * 'S' record naming the snapshot, the hard state and the entries after it
 * (wal_rewrite; the sync thread writes it).  A snapshot from the leader is
 * written to DIR/snap the same way, restored into the store, and an 'S'
 * record goes into the log before the entries that follow it.
 *
 * At start DIR/snap is read first; the log's entries after its index are
 * kept when the log holds its index with its term (Log Matching), else
 * the log is stale and dropped (a crash between writing a received
 * snapshot and logging its 'S').  A log that starts after the snapshot,
 * or names a snapshot that is missing, refuses to start.
 *
 * The store is serialized on the loop thread (a copy in memory), but in
 * slices of --snapshot-slice bytes, one per loop pass (an idle handle),
 * with requests, appends and heartbeats served between them: kv_snap
 * fixes the store's revision at the snapshot's index, leaves out what is
 * applied meanwhile and holds the freeing of a compaction until the last
 * slice.  In one piece it held the loop for a time that grew with the
 * store (hundreds of ms at 100 MiB on a busy 2-core VM), and every
 * request waiting then landed in the p99.  The file is written and
 * fdatasync'd by a thread of its own; the log's rewrite (the entries
 * after the snapshot, tens of MiB under load) is then built in slices
 * too, and handed to the log's thread without a copy in the pass that
 * hands the snapshot to Raft.  A snapshot from the leader is written on
 * the loop thread: the Ready waits for it anyway.  Members still do not
 * take their first snapshot at the same index: member i waits (i - 1) %
 * 8 eighths of --snapshot-count more, and later ones follow from there
 * (members sharing CPUs then do not copy their stores at the same time).
 */
static void install_snapshot(struct node *n, const struct raft_snapshot *s)
{
	if (n->snap_state == SNAP_SLICING) {
		/* the store it reads is replaced: drop it */
		snap_slicing_stop(n);
		log_info("snapshot at %llu not used: the leader's at %llu comes instead",
		         (unsigned long long)n->snap_meta.index, (unsigned long long)s->meta.index);
	}
	if (n->snap_state == SNAP_LOGGING) {
		/* its DIR/snap is replaced: the log it was rewriting for goes */
		buf_free(&n->snap_recs);
		uv_idle_stop(&n->snap_idle);
		n->snap_state = SNAP_IDLE;
		log_info("snapshot at %llu not used: the leader's at %llu comes instead",
		         (unsigned long long)n->snap_meta.index, (unsigned long long)s->meta.index);
	}
	if (n->snap_state == SNAP_WRITING) {
		/* our own snapshot's thread writes the same DIR/snap.tmp and
		 * renames it to DIR/snap: let it end first (its result is dropped:
		 * the leader's snapshot stands past it), or the two renames race
		 * and one fails with ENOENT */
		pthread_join(n->snap_thread, NULL);
		n->snap_state = SNAP_IDLE;
		n->snap_done = false;
		buf_free(&n->snap_buf);
		log_info("snapshot at %llu not used: the leader's at %llu comes instead",
		         (unsigned long long)n->snap_meta.index, (unsigned long long)s->meta.index);
	}
	int rc = snap_write(n->data_dir, &s->meta, s->data, s->len);
	const uint8_t *kd;
	const char *tbl;
	size_t kl, tl;
	snap_members_split(s->data, s->len, &kd, &kl, &tbl, &tl);
	if (rc == 0)
		rc = kv_restore(n->kv, kd, kl);
	if (rc == 0 && tbl)
		member_table_load(n, tbl, tl, false);
	n->was_member = ((s->meta.conf.voters | s->meta.conf.learners) >> n->id & 1) != 0;
	if (rc < 0) {
		/* the Ready cannot be refused: stop, and a restart takes it again */
		log_error("cannot install the snapshot at index %llu: %s", (unsigned long long)s->meta.index,
		          strerror(-rc));
		fprintf(stderr, "dsys-raft: cannot install a snapshot in '%s'\n", n->data_dir);
		_exit(EXIT_UNREACHABLE);
	}
	n->snap_index = s->meta.index;
	n->snap_bytes = s->len;
	/* our proposals at indexes the snapshot covers are never applied here
	 * one by one: each may or may not be in it, so its outcome is unknown
	 * (never "proposed again": it could then apply twice) */
	struct req_list unknown = {NULL, NULL};
	for (struct req *q = n->applying.head, *next; q; q = next) {
		next = q->link[L_WAIT].next;
		if (q->index <= s->meta.index) {
			req_unwait(q);
			wl_push(&unknown, q);
		}
	}
	for (struct req *q; (q = unknown.head);) {
		metrics_counter_inc(n->proposals_failed);
		req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: request timed out");
	}
	log_info("installed a snapshot at index %llu (term %llu, %zu bytes) from the leader",
	         (unsigned long long)s->meta.index, (unsigned long long)s->meta.term, s->len);
	mem_trim("installing a snapshot");
}

/* On a thread of its own: the file write and its fdatasync, off the loop
 * that sends heartbeats.  The buffer is the loop's copy, which the loop
 * leaves alone until snap_done, seen by the next tick. */
static void *snap_thread_main(void *arg)
{
	struct node *n = arg;
	n->snap_rc = snap_write(n->data_dir, &n->snap_meta, n->snap_buf.data, n->snap_buf.len);
	/* freed here: unmapping a store's size of pages takes the loop
	 * milliseconds, and DIR/snap holds it now */
	n->snap_bytes_written = n->snap_buf.len;
	buf_free(&n->snap_buf);
	n->snap_done = true;
	return NULL;
}

/* DIR/snap is durable: the log's rewrite is built next (snap_log_step),
 * then the snapshot goes to Raft.  Runs on the loop once the thread is
 * through. */
static void snapshot_written(struct node *n)
{
	pthread_join(n->snap_thread, NULL);
	n->snap_state = SNAP_IDLE;
	n->snap_done = false;
	const struct raft_snapshot_meta *m = &n->snap_meta;
	if (n->snap_rc < 0) {
		log_error("cannot write a snapshot in '%s': %s; the log is not compacted", n->data_dir,
		          strerror(-n->snap_rc));
		n->snap_index = m->index; /* try again after another --snapshot-count */
		return;
	}
	/* the log: the snapshot's 'S', the hard state (written again at the
	 * end: the same size), the entries after it */
	/* sized at once for the entries there are now and a half more: grown
	 * by doubling, the copy of tens of MiB fell in one slice */
	struct raft_status st;
	raft_status(n->r, &st);
	size_t need = 256;
	for (uint64_t i = m->index + 1; i <= st.last_index; i++) {
		const struct raft_entry *e = raft_entry_at(n->r, i);
		if (e)
			need += 32 + e->len;
	}
	buf_reset(&n->snap_recs);
	buf_reserve(&n->snap_recs, need + need / 2);
	put_snap_record(&n->snap_recs, NULL, m->index, m->term);
	put_hs_record(&n->snap_recs, NULL, &n->hs);
	n->snap_recs_head = n->snap_recs.len;
	n->snap_rec_next = m->index + 1;
	n->snap_rec_term = m->term;
	n->snap_t0 = now_ns();
	n->snap_pause_max = n->snap_cpu_max = 0;
	n->snap_state = SNAP_LOGGING;
	uv_idle_start(&n->snap_idle, snap_idle_cb);
}

/* Copy the next entries after the snapshot into the log's rewrite, about
 * --snapshot-slice bytes a pass; once all are in and no Ready is under
 * way, hand the snapshot to Raft (raft_compact: an input, so between
 * Readies) and the rewrite to the log.  A log that changed under the
 * copy (a follower's conflicting tail cut) is copied again: the term of
 * the last entry copied still there means all before it are (Log
 * Matching).  The entries up to the last are copied in the very pass that
 * hands the rewrite over, so it covers everything appended so far, as
 * wal_rewrite wants. */
static void snap_log_step(struct node *n)
{
	const struct raft_snapshot_meta *m = &n->snap_meta;
	struct raft_status st;
	raft_status(n->r, &st);
	if (st.snap_index >= m->index) {
		/* a leader's snapshot came past it meanwhile: that one stands */
		log_info("snapshot at %llu not used: Raft has one at %llu", (unsigned long long)m->index,
		         (unsigned long long)st.snap_index);
		buf_free(&n->snap_recs);
		uv_idle_stop(&n->snap_idle);
		n->snap_state = SNAP_IDLE;
		return;
	}
	uint64_t t;
	if (raft_term_at(n->r, n->snap_rec_next - 1, &t) < 0 || t != n->snap_rec_term) {
		n->snap_recs.len = n->snap_recs_head;
		n->snap_rec_next = m->index + 1;
		n->snap_rec_term = m->term;
	}
	size_t from = n->snap_recs.len;
	while (n->snap_rec_next <= st.last_index && n->snap_recs.len - from < n->snap_slice) {
		const struct raft_entry *e = raft_entry_at(n->r, n->snap_rec_next);
		INVARIANT(e != NULL);
		put_entry_record(&n->snap_recs, NULL, e);
		n->snap_rec_term = e->term;
		n->snap_rec_next++;
	}
	if (!n->inflight && !n->in_ready && !n->stopping && m->index - st.snap_index > SNAP_COMPACT_STEP) {
		/* Raft's log behind the snapshot goes a step a pass too (its
		 * payloads are freed: tens of ms for 100000 entries at once).
		 * Meanwhile Raft names a snapshot DIR/snap does not hold: one
		 * asked of send_msgs is not sent, and is sent again later */
		raft_compact(n->r, st.snap_index + SNAP_COMPACT_STEP, NULL, 0);
		uv_idle_start(&n->snap_idle, snap_idle_cb);
		return;
	}
	if (n->snap_rec_next <= st.last_index) {
		uv_idle_start(&n->snap_idle, snap_idle_cb); /* more next pass */
		return;
	}
	if (n->inflight || n->in_ready || n->stopping) {
		/* maybe_snapshot comes back after the Ready (no spinning meanwhile) */
		uv_idle_stop(&n->snap_idle);
		return;
	}
	uv_idle_stop(&n->snap_idle);
	uint64_t t0 = now_ns(), c0 = cpu_ns();
	int rc = raft_compact(n->r, m->index, NULL, 0);
	if (rc < 0) {
		log_info("snapshot at %llu not used: %s", (unsigned long long)m->index, strerror(-rc));
		buf_free(&n->snap_recs);
		n->snap_state = SNAP_IDLE;
		return;
	}
	uint64_t t1 = now_ns(), c1 = cpu_ns();
	n->snap_index = m->index;
	n->snap_bytes = n->snap_bytes_written;
	/* the hard state as it is now, over the one written first */
	struct buf hs = BUF_INIT;
	put_snap_record(&hs, NULL, m->index, m->term);
	put_hs_record(&hs, NULL, &n->hs);
	INVARIANT(hs.len == n->snap_recs_head);
	memcpy(n->snap_recs.data, hs.data, hs.len);
	buf_free(&hs);
	size_t len = n->snap_recs.len;
	wal_lock(n->wal);
	wal_rewrite_take(n->wal, &n->snap_recs);
	wal_unlock(n->wal);
	n->snap_state = SNAP_IDLE;
	uint64_t pause = now_ns() - t0, cpu = cpu_ns() - c0;
	metrics_histogram_observe_ns(n->snap_pause_h, pause);
	log_info("snapshot at index %llu (%llu bytes); log rewritten from there (%zu bytes, built in slices in %llu "
	         "ms, the longest %llu us, %llu us of CPU at most); %llu us on the loop to end it, %llu of CPU (raft_compact "
	         "%llu, %llu of CPU)",
	         (unsigned long long)m->index, (unsigned long long)n->snap_bytes, len,
	         (unsigned long long)((now_ns() - n->snap_t0) / 1000000), (unsigned long long)(n->snap_pause_max / 1000),
	         (unsigned long long)(n->snap_cpu_max / 1000), (unsigned long long)(pause / 1000),
	         (unsigned long long)(cpu / 1000), (unsigned long long)((t1 - t0) / 1000),
	         (unsigned long long)((c1 - c0) / 1000));
	mem_trim("a snapshot");
}

/* Drop a snapshot being serialized (a leader's snapshot replaces the
 * store, or the node stops). */
static void snap_slicing_stop(struct node *n)
{
	kv_snap_end(n->kv, n->snap_kv);
	n->snap_kv = NULL;
	uv_idle_stop(&n->snap_idle);
	buf_free(&n->snap_buf);
	n->snap_state = SNAP_IDLE;
}

/* One slice of the store a loop pass: requests and peers' messages are
 * served between slices, so a large store never holds the loop for long
 * (the whole of it took hundreds of ms at 100 MiB).  The last slice hands
 * the bytes to a thread that writes DIR/snap. */
static void snap_idle_cb(uv_idle_t *h)
{
	struct node *n = h->data;
	if (n->snap_state == SNAP_LOGGING && !n->stopping) {
		uint64_t t0 = now_ns(), c0 = cpu_ns();
		snap_log_step(n);
		uint64_t t = now_ns() - t0, c = cpu_ns() - c0;
		if (n->snap_state == SNAP_LOGGING) {
			metrics_histogram_observe_ns(n->snap_pause_h, t);
			if (t > n->snap_pause_max)
				n->snap_pause_max = t;
			if (c > n->snap_cpu_max)
				n->snap_cpu_max = c;
		}
		return;
	}
	if (n->snap_state != SNAP_SLICING || n->stopping) {
		if (n->snap_state == SNAP_SLICING)
			snap_slicing_stop(n);
		uv_idle_stop(h);
		return;
	}
	uint64_t t0 = now_ns(), c0 = cpu_ns();
	bool done = kv_snap_step(n->kv, n->snap_kv, &n->snap_buf, n->snap_slice);
	metrics_counter_inc(n->snap_slices);
	size_t slices = kv_snap_slices(n->snap_kv);
	if (done) {
		/* frees what a compaction meanwhile dropped (as a compaction does) */
		kv_snap_end(n->kv, n->snap_kv);
		n->snap_kv = NULL;
		uv_idle_stop(h);
	}
	uint64_t t = now_ns() - t0, c = cpu_ns() - c0;
	metrics_histogram_observe_ns(n->snap_pause_h, t);
	if (t > n->snap_pause_max)
		n->snap_pause_max = t;
	if (c > n->snap_cpu_max)
		n->snap_cpu_max = c;
	if (!done)
		return;
	struct raft_status st;
	raft_status(n->r, &st);
	log_info("snapshot at index %llu: the store serialized in %zu slices between loop passes in %llu ms, the "
	         "longest %llu us, %llu us of CPU at most (%zu bytes; %llu entries applied meanwhile)",
	         (unsigned long long)n->snap_meta.index, slices, (unsigned long long)((now_ns() - n->snap_t0) / 1000000),
	         (unsigned long long)(n->snap_pause_max / 1000), (unsigned long long)(n->snap_cpu_max / 1000),
	         n->snap_buf.len,
	         (unsigned long long)(st.applied - n->snap_meta.index));
	n->snap_done = false;
	n->snap_state = SNAP_WRITING;
	if (pthread_create(&n->snap_thread, NULL, snap_thread_main, n) != 0) {
		n->snap_state = SNAP_IDLE;
		buf_free(&n->snap_buf);
		log_error("cannot start a thread to write a snapshot");
	}
}

/* Between Readies (after raft_advance, and each tick): finish a written
 * snapshot, or start one when --snapshot-count entries were applied. */
static void maybe_snapshot(struct node *n)
{
	if (n->snap_state == SNAP_WRITING) {
		if (n->snap_done && !n->stopping)
			snapshot_written(n);
		return;
	}
	if (n->snap_state == SNAP_LOGGING) {
		if (!n->stopping && !uv_is_active((uv_handle_t *)&n->snap_idle))
			snap_log_step(n);
		return;
	}
	struct raft_status st;
	raft_status(n->r, &st);
	uint64_t stagger = n->snap_index ? 0 : (n->id - 1) % 8 * n->snap_count / 8;
	if (n->snap_state != SNAP_IDLE || !n->snap_count || st.applied < n->snap_index + n->snap_count + stagger ||
	    n->stopping)
		return;
	struct raft_snapshot_meta m = {.index = st.applied, .conf = st.conf};
	if (raft_term_at(n->r, st.applied, &m.term) < 0)
		return;
	/* the store as of st.applied: kv_snap_begin fixes its revision, and
	 * what is applied from now on is past it */
	buf_reset(&n->snap_buf);
	snap_members_put(n, &n->snap_buf);
	n->snap_kv = kv_snap_begin(n->kv);
	if (!n->snap_kv) {
		log_error("cannot start a snapshot: out of memory");
		return;
	}
	n->snap_meta = m;
	n->snap_t0 = now_ns();
	n->snap_pause_max = n->snap_cpu_max = 0;
	n->snap_state = SNAP_SLICING;
	uv_idle_start(&n->snap_idle, snap_idle_cb);
}

/* Feed what waited while a Ready was in flight, then cycle Readies. */
static void drive(struct node *n)
{
	while (!n->inflight) {
		if (n->dq) {
			struct deferred *d = n->dq;
			n->dq = d->next;
			if (!n->dq)
				n->dq_tail = &n->dq;
			if (d->len == 0)
				raft_peer_restarted(n->r, d->from);
			else
				step_frame(n, d->from, d->data, d->len);
			free(d);
			continue;
		}
		if (n->pending_ticks) {
			n->pending_ticks--;
			if (!n->abstain)
				raft_tick(n->r);
			continue;
		}
		bool restarted = false;
		/* those waiting now, not those a start brings (they started) */
		for (struct req *q = n->starting.head, *last = n->starting.tail, *next; q; q = next) {
			next = q == last ? NULL : q->link[L_WAIT].next;
			if (q->deadline_ms) {
				req_start(n, q);
				restarted = true;
				if (n->inflight)
					break;
			}
		}
		(void)restarted;
		reads_ask(n);
		if (!raft_ready(n->r, &n->rd))
			return;
		n->in_ready = true;
		if (n->rd.async && n->aw_len < AW_MAX) {
			persist(n, &n->rd);
			if (wal_durable(n->wal) >= n->wait_seq) {
				finish_ready(n, false); /* all on disk already: as a synchronous Ready */
				continue;
			}
			if (n->rd.n_entries) {
				const struct raft_entry *e = &n->rd.entries[n->rd.n_entries - 1];
				n->aw[(n->aw_head + n->aw_len++) % AW_MAX] =
					(struct aw){n->wait_seq, e->index, e->term, now_ns()};
			}
			finish_ready(n, true);
			continue;
		}
		if (n->rd.snapshot)
			install_snapshot(n, n->rd.snapshot);
		/* raft_advance means "all handed out so far is durable": while
		 * asynchronous writes are on their way, even a Ready that writes
		 * nothing waits for them (a leader's Ready with the ring full, the
		 * first Readies of a leader that stepped down), or the leader
		 * would count its own copy of entries still in the page cache */
		if (n->rd.n_entries || n->rd.snapshot || hs_must_sync(n, &n->rd) || n->aw_len) {
			persist(n, &n->rd);
			if (wal_durable(n->wal) < n->wait_seq) {
				n->inflight = true;
				n->persist_start_ns = now_ns();
				ready_early(n);
				return; /* synced_cb finishes it */
			}
		}
		finish_ready(n, false);
	}
}

/* On the log's sync thread, its mutex held. */
static void wal_synced_hook(void *ud)
{
	struct node *n = ud;
	if (n->async_ready)
		uv_async_send(&n->synced);
}

static void synced_cb(uv_async_t *a)
{
	struct node *n = a->data;
	n->disk_ns = now_ns();
	if (wal_failed(n->wal)) {
		/* after a failed fsync the page cache's state is unknown: stop, a
		 * restart replays what is really on disk */
		char file[4200];
		int e = wal_failure(n->wal, file, sizeof file);
		log_error("the log '%s' failed to write or sync: %s; stopping", file, strerror(-e));
		fprintf(stderr, "dsys-raft: the log '%s' failed to write or sync: %s\n", file, strerror(-e));
		_exit(EXIT_UNREACHABLE);
	}
	if ((!n->inflight || n->aw_stalled) && !n->in_ready && n->aw_len) {
		aw_report(n);
		aw_unstall(n);
		drive(n);
		return;
	}
	if (n->aw_stalled)
		return;
	if (!n->inflight || wal_durable(n->wal) < n->wait_seq)
		return;
	metrics_histogram_observe_ns(n->fsync_h, now_ns() - n->persist_start_ns);
	finish_ready(n, false);
	drive(n);
}

/* ------------------------------------------------------------ peers: in */

static void inconn_closed_cb(uv_handle_t *h)
{
	struct inconn *c = h->data;
	buf_free(&c->rbuf);
	free(c);
}

static void inconn_close(struct inconn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, inconn_closed_cb);
}

static void inconn_alloc_cb(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
	struct inconn *c = h->data;
	buf_reserve(&c->rbuf, sugg < 65536 ? 65536 : sugg);
	b->base = c->rbuf.data + c->rbuf.len;
	b->len = c->rbuf.cap - c->rbuf.len;
}

static void inconn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	(void)b;
	struct inconn *c = s->data;
	struct node *n = c->n;
	if (nread < 0) {
		inconn_close(c);
		return;
	}
	c->rbuf.len += (size_t)nread;
	size_t off = 0;
	while (off < c->rbuf.len) {
		const uint8_t *pl;
		size_t plen;
		long k = raft_frame_next((uint8_t *)c->rbuf.data + off, c->rbuf.len - off, RAFT_FRAME_MAX, &pl, &plen);
		if (k < 0) {
			log_warn("peer connection sent a frame past the limit: closing it");
			inconn_close(c);
			return;
		}
		if (k == 0)
			break;
		off += (size_t)k;
		if (c->from == 0) {
			struct raft_frame f = {0};
			int rc = raft_frame_decode(pl, plen, &f);
			if (rc == 0 && f.kind == RAFT_FRAME_FWD_REQ && f.op == NODE_JOIN) {
				member_join_reply(n, &c->tcp, &f); /* no HELLO: a joining member's question */
				raft_frame_free(&f);
				continue;
			}
			raft_frame_free(&f);
			if (rc < 0 || f.kind != RAFT_FRAME_HELLO || f.cluster_id != n->cluster_id || f.from > RAFT_MAX_ID ||
			    f.from == n->id) {
				log_warn("a peer connection without a valid hello for this cluster: closing it");
				inconn_close(c);
				return;
			}
			c->from = f.from;
			/* a peer connecting afresh may have restarted with less log
			 * than it acknowledged: the leader probes it again */
			if (n->inflight || n->in_ready) {
				struct deferred *d = malloc(sizeof *d);
				INVARIANT(d != NULL);
				*d = (struct deferred){.from = c->from};
				*n->dq_tail = d;
				n->dq_tail = &d->next;
			} else {
				raft_peer_restarted(n->r, c->from);
			}
			continue;
		}
		/* forwarded requests and answers are no Raft input: they need
		 * not wait for this member's fsync (req_start) */
		if (n->inflight && !(plen && (pl[0] == RAFT_FRAME_FWD_REQ || pl[0] == RAFT_FRAME_FWD_RESP))) {
			struct deferred *d = malloc(sizeof *d + plen);
			INVARIANT(d != NULL);
			d->next = NULL;
			d->from = c->from;
			d->len = plen;
			memcpy(d->data, pl, plen);
			*n->dq_tail = d;
			n->dq_tail = &d->next;
		} else {
			step_frame(n, c->from, pl, plen);
		}
	}
	buf_consume(&c->rbuf, off);
	drive(n);
}

static void peer_accept_cb(uv_stream_t *l, int status)
{
	struct node *n = l->data;
	if (status < 0)
		return;
	struct inconn *c = calloc(1, sizeof *c);
	INVARIANT(c != NULL);
	c->n = n;
	uv_tcp_init(n->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, inconn_closed_cb);
		return;
	}
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, inconn_alloc_cb, inconn_read_cb);
}

/* ------------------------------------------------------------ tick, drain */

/*
 * A tick while a Ready is being synced.  The core takes no input until
 * the write is durable, so its clock waits; two things keep a slow disk
 * from costing a leader its leadership:
 * - Ticks are counted only up to one election timeout (etcd drops ticks
 *   too when its loop is held up).  Fed in one burst, more would cross
 *   two of the leader's check-quorum rounds with no message between them,
 *   and it would step down although every follower answered.  A slower
 *   clock only delays timeouts; it is safe because the node does not use
 *   lease reads (the lease would need the clock to keep time).
 * - A leader sends each peer a heartbeat of its own: the term it led when
 *   its last Ready was done (durable, so it cannot claim a term its disk
 *   does not hold), commit 0 (which moves no follower's commit) and no
 *   read context (so it confirms no ReadIndex).  It only resets the
 *   followers' election clocks, as the core's heartbeat would; the
 *   answers wait in the queue like any peer frame.  Only while the disk
 *   makes progress, a write finished within four election timeouts (a
 *   slow disk's Ready may wait behind a log compaction's two syncs): a
 *   disk that hangs must not hold the cluster without a leader that can
 *   commit.
 */
static void tick_inflight(struct node *n)
{
	if (n->pending_ticks < n->election_tick)
		n->pending_ticks++;
	uint64_t since = n->disk_ns > n->persist_start_ns ? n->disk_ns : n->persist_start_ns;
	if (!n->hb_term || now_ns() - since > 4 * n->election_tick * n->tick_ms * 1000000ull)
		return;
	/* only to members: a removed one must miss its heartbeats, campaign and
	 * be told it was removed (its removal may never reach it) */
	uint64_t members = conf_members(n, NULL);
	for (uint32_t id = 1; id <= n->n_peers; id++) {
		if (id == n->id || !(members >> id & 1))
			continue;
		struct buf *b = peer_out(n, id);
		if (b)
			raft_frame_put_msg(b, &(struct raft_msg){.type = RAFT_MSG_HEARTBEAT, .from = n->id, .to = id,
			                                         .term = n->hb_term});
	}
}

static void tick_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	heap_hint();
	aw_stall_check(n);
	if (n->inflight) {
		tick_inflight(n);
		return;
	}
	if (!n->abstain)
		raft_tick(n->r); /* abstaining: a follower's clock only starts elections */
	maybe_snapshot(n);
	leases_tick(n);
	member_tick(n);
	reqs_tick(n);
	watchers_check(n, false);
	drive(n);
}

static void fail_all(struct node *n)
{
	watchers_check(n, true);
	for (struct req *q; (q = n->reqs.head);) {
		req_fail(n, q, KV_CODE_UNAVAILABLE, "etcdserver: server stopped");
	}
}

static void drain_stop(struct node *n)
{
	uv_timer_stop(&n->drain_timer);
	fail_all(n);
	n->stopping = true;
	http_server_stop(n->srv);
}

/* While a leader hands over: stop once someone else leads, or at the deadline. */
static void drain_timer_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	if (leader_of(n) == n->id && now_ms() < n->drain_deadline_ms)
		return;
	drain_stop(n);
}

/* SIGTERM: a leader hands leadership to a follower first (etcd does the
 * same), so the cluster does not wait an election timeout for a new one. */
static void signal_cb(uv_signal_t *s, int sig)
{
	struct node *n = s->data;
	if (n->stopping || uv_is_active((uv_handle_t *)&n->drain_timer)) {
		drain_stop(n); /* a second signal: stop at once */
		return;
	}
	log_info("signal %d: draining", sig);
	struct raft_status st;
	raft_status(n->r, &st);
	if (st.role == RAFT_LEADER && !n->inflight) {
		for (uint32_t i = 1; i <= n->n_peers; i++)
			if (i != n->id && (st.conf.voters >> i & 1) && n->peers[i].connected &&
			    raft_transfer_leader(n->r, i) == 0) {
				log_info("handing leadership to %u before stopping", i);
				n->drain_deadline_ms = now_ms() + 2 * n->election_tick * n->tick_ms;
				drive(n);
				uv_timer_start(&n->drain_timer, drain_timer_cb, n->tick_ms, n->tick_ms);
				return;
			}
	}
	drain_stop(n);
}

static void handle_closed_cb(uv_handle_t *h) { (void)h; }

static int thread_init(struct http_thread *t, void *arg)
{
	struct node *n = arg;
	n->loop = http_thread_loop(t);
	uv_tcp_init(n->loop, &n->listener);
	n->listener.data = n;
	int rc = uv_tcp_open(&n->listener, n->peer_fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&n->listener, 128, peer_accept_cb);
	if (rc < 0)
		return rc;
	uv_timer_init(n->loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, tick_cb, n->tick_ms, n->tick_ms);
	uv_timer_init(n->loop, &n->reconnect);
	n->reconnect.data = n;
	uv_timer_start(&n->reconnect, reconnect_cb, 0, RECONNECT_MS);
	uv_timer_init(n->loop, &n->drain_timer);
	n->drain_timer.data = n;
	uv_async_init(n->loop, &n->synced, synced_cb);
	n->synced.data = n;
	n->async_ready = true;
	uv_prepare_init(n->loop, &n->flush);
	n->flush.data = n;
	uv_idle_init(n->loop, &n->snap_idle);
	n->snap_idle.data = n;
	uv_prepare_start(&n->flush, flush_cb);
	uv_signal_init(n->loop, &n->sigterm);
	uv_signal_init(n->loop, &n->sigint);
	n->sigterm.data = n->sigint.data = n;
	uv_signal_start(&n->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&n->sigint, signal_cb, SIGINT);
	for (uint32_t i = 1; i <= n->n_peers; i++)
		n->peers[i].n = n;
	drive(n); /* a restart applies what its log had committed */
	return 0;
}

static void thread_fini(struct http_thread *t, void *arg)
{
	(void)t;
	struct node *n = arg;
	n->stopping = true;
	fail_all(n);
	/* the synced hook runs under the log's mutex: once this is false under
	 * it, the sync thread never touches the async handle again */
	wal_lock(n->wal);
	n->async_ready = false;
	wal_unlock(n->wal);
	uv_handle_t *hs[] = {(uv_handle_t *)&n->listener, (uv_handle_t *)&n->tick, (uv_handle_t *)&n->reconnect,
	                     (uv_handle_t *)&n->drain_timer, (uv_handle_t *)&n->synced, (uv_handle_t *)&n->flush,
	                     (uv_handle_t *)&n->sigterm, (uv_handle_t *)&n->sigint, (uv_handle_t *)&n->snap_idle};
	if (n->snap_state == SNAP_SLICING)
		snap_slicing_stop(n);
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		if (!uv_is_closing(hs[i]))
			uv_close(hs[i], handle_closed_cb);
	for (uint32_t i = 1; i <= n->n_peers; i++)
		if (i != n->id)
			peer_drop(&n->peers[i]);
	while (n->conns)
		inconn_close(n->conns);
}

/* ------------------------------------------------------------ status */

bool node_health(struct node *n, struct buf *out)
{
	struct raft_status st;
	raft_status(n->r, &st);
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_str(&w, "health", st.lead ? "true" : "false");
	if (!st.lead)
		json_kv_str(&w, "reason", "no leader");
	json_kv_str(&w, "name", n->name);
	json_kv_u64(&w, "leader", st.lead);
	json_kv_u64(&w, "term", st.term);
	if (n->abstain)
		json_kv_str(&w, "recovering", "lost a cut WAL tail; not voting until a leader catches it up");
	json_obj_end(&w);
	return st.lead != 0;
}

void node_status_json(struct node *n, struct buf *out)
{
	struct raft_status st;
	raft_status(n->r, &st);
	struct kv_header h = header(n);
	buf_putc(out, '{');
	kv_put_header(out, n->kv, &h, true);
	wal_lock(n->wal);
	uint64_t bytes = wal_bytes(n->wal);
	wal_unlock(n->wal);
	buf_printf(out,
	           ",\"version\":\"3.4.23\",\"dbSize\":\"%llu\",\"leader\":\"%llu\",\"raftIndex\":\"%llu\","
	           "\"raftTerm\":\"%llu\",\"raftAppliedIndex\":\"%llu\",\"dbSizeInUse\":\"%llu\"}",
	           (unsigned long long)bytes, (unsigned long long)member_id(n, st.lead),
	           (unsigned long long)st.commit, (unsigned long long)st.term, (unsigned long long)st.applied,
	           (unsigned long long)bytes);
}

/* etcd's HashKV (and Hash, rev 0): a CRC-32 of the store's keys as of
 * revision rev (0: the current one), each key with its value, create and
 * mod revisions, version and lease -- kv_exec's own range answer, which
 * every member that applied the same log writes byte for byte the same
 * (the header, which names the member, is left out).  So members at one
 * revision answer one hash, and a diverged member another: the consistency
 * check etcdctl endpoint hashkv --cluster makes.  Returns the HTTP status;
 * out is the answer (or etcd's error: a compacted or future revision). */
int node_hashkv(struct node *n, int64_t rev, struct buf *out)
{
	if (rev <= 0)
		rev = kv_revision(n->kv);
	char body[96];
	int len = snprintf(body, sizeof body, "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"revision\":\"%lld\"}",
	                   (long long)rev);
	struct kv_header h = header(n);
	struct buf r = BUF_INIT;
	int st = kv_exec(n->kv, KV_OP_RANGE, 0, body, (size_t)len, &h, &r);
	if (st != 200) {
		buf_append(out, r.data, r.len);
		buf_free(&r);
		return st;
	}
	/* the answer past its header: {"header":{...},"kvs":[...],...} */
	const char *p = r.data ? memmem(r.data, r.len, "\"kvs\"", 5) : NULL;
	uint32_t crc = p ? wal_crc32c(p, r.len - (size_t)(p - r.data)) : 0;
	buf_putc(out, '{');
	kv_put_header(out, n->kv, &h, true);
	/* never compacted: -1, as etcd says it */
	int64_t compacted = kv_compact_revision(n->kv);
	buf_printf(out, ",\"hash\":%lu,\"compact_revision\":\"%lld\"}", (unsigned long)crc,
	           (long long)(compacted ? compacted : -1));
	buf_free(&r);
	return 200;
}

/* etcd's alarm list: NOSPACE on every member while the store (the same on
 * every member) is past the quota.  Any action answers the list: the
 * alarm follows the store's size, so there is nothing to disarm. */
void node_alarms_json(struct node *n, struct buf *out)
{
	struct kv_header h = header(n);
	buf_putc(out, '{');
	kv_put_header(out, n->kv, &h, true);
	if (kv_alarm_nospace(n->kv)) {
		buf_puts(out, ",\"alarms\":[");
		uint64_t members = conf_members(n, NULL);
		bool first = true;
		for (uint32_t i = 1; i <= RAFT_MAX_ID; i++)
			if (members >> i & 1) {
				buf_printf(out, "%s{\"memberID\":\"%llu\",\"alarm\":\"NOSPACE\"}", first ? "" : ",",
				           (unsigned long long)member_id(n, i));
				first = false;
			}
		buf_putc(out, ']');
	}
	buf_putc(out, '}');
}

#define GAUGE(name, field) \
	static double name(void *arg) \
	{ \
		struct raft_status st; \
		raft_status(((struct node *)arg)->r, &st); \
		return (double)(field); \
	}
GAUGE(g_term, st.term)
GAUGE(g_commit, st.commit)
GAUGE(g_applied, st.applied)
GAUGE(g_is_leader, st.role == RAFT_LEADER)
GAUGE(g_has_leader, st.lead != 0)
GAUGE(g_last, st.last_index)

static double g_wal_bytes(void *arg)
{
	struct node *n = arg;
	wal_lock(n->wal);
	uint64_t b = wal_bytes(n->wal);
	wal_unlock(n->wal);
	return (double)b;
}

static double g_kv_bytes(void *arg) { return (double)kv_bytes(((struct node *)arg)->kv); }
static double g_nospace(void *arg) { return kv_alarm_nospace(((struct node *)arg)->kv); }

static double g_snap_bytes(void *arg) { return (double)((struct node *)arg)->snap_bytes; }
static double g_snap_index(void *arg) { return (double)((struct node *)arg)->snap_index; }

static double g_revision(void *arg) { return (double)kv_revision(((struct node *)arg)->kv); }
static double g_watchers(void *arg) { return (double)((struct node *)arg)->nwatchers; }

static void register_metrics(struct node *n, struct metrics *reg)
{
	metrics_gauge_fn_register(reg, "raft_term", "Current Raft term.", NULL, g_term, n);
	metrics_gauge_fn_register(reg, "raft_commit_index", "Highest log index known committed.", NULL, g_commit, n);
	metrics_gauge_fn_register(reg, "raft_apply_index", "Highest log index applied to the key-value store.", NULL,
	                          g_applied, n);
	metrics_gauge_fn_register(reg, "raft_last_index", "Last index in this member's log.", NULL, g_last, n);
	metrics_gauge_fn_register(reg, "raft_is_leader", "1 when this member is the leader.", NULL, g_is_leader, n);
	metrics_gauge_fn_register(reg, "raft_has_leader", "1 when this member knows a leader.", NULL, g_has_leader, n);
	metrics_gauge_fn_register(reg, "raft_wal_bytes", "Size of the write-ahead log file.", NULL, g_wal_bytes, n);
	metrics_gauge_fn_register(reg, "raft_kv_bytes", "The store's size as --quota-backend-bytes counts it.", NULL,
	                          g_kv_bytes, n);
	metrics_gauge_fn_register(reg, "raft_alarm_nospace", "1 while the store is past --quota-backend-bytes.", NULL,
	                          g_nospace, n);
	metrics_gauge_fn_register(reg, "raft_snapshot_bytes", "Size of the last snapshot of the store.", NULL,
	                          g_snap_bytes, n);
	metrics_gauge_fn_register(reg, "raft_snapshot_index", "Log index of the last snapshot (0: none).", NULL,
	                          g_snap_index, n);
	metrics_gauge_fn_register(reg, "raft_kv_revision", "The key-value store's revision.", NULL, g_revision, n);
	metrics_gauge_fn_register(reg, "raft_watchers", "Watches open on this member (gateway streams and gRPC watch polls).",
	                          NULL, g_watchers, n);
	n->leader_changes = metrics_counter_register(reg, "raft_leader_changes_total",
	                                             "Times this member saw a new leader.", NULL);
	n->proposals_failed = metrics_counter_register(reg, "raft_proposals_failed_total",
	                                               "Client writes that failed (refused, lost in a leader change, timed out).",
	                                               NULL);
	n->proposals_committed = metrics_counter_register(reg, "raft_proposals_applied_total",
	                                                  "Client writes applied to the key-value store.", NULL);
	n->fsync_h = metrics_histogram_register(reg, "raft_wal_fsync_duration_seconds",
	                                        "From a Ready's append to the log until it is durable (write + fdatasync).",
	                                        NULL, NULL, 0);
	n->apply_h = metrics_histogram_register(reg, "raft_apply_duration_seconds",
	                                        "Time to apply one committed entry to the key-value store.", NULL, NULL, 0);
	n->snap_slices = metrics_counter_register(reg, "raft_snapshot_slices_total",
	                                          "Slices the store's snapshots were serialized in, between loop passes.",
	                                          NULL);
	n->snap_pause_h = metrics_histogram_register(reg, "raft_snapshot_pause_duration_seconds",
	                                             "Time a snapshot holds the loop at once: one slice, or its end.",
	                                             NULL, NULL, 0);
}

/* ------------------------------------------------------------ recovery */

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int k = 0; k < 8; k++)
		v |= (uint64_t)p[k] << (8 * k);
	return v;
}

static int replay_cb(void *ud, const unsigned char *rec, size_t len)
{
	struct replay *rp = &((struct node *)ud)->rp;
	if (len == 25 && rec[0] == 'H') {
		rp->hs = (struct raft_hard_state){rd64(rec + 1), rd64(rec + 9), rd64(rec + 17)};
		return 0;
	}
	if (len == 17 && rec[0] == 'S') {
		/* a snapshot (in DIR/snap) replaces everything stored before */
		for (size_t i = 0; i < rp->n; i++)
			free((void *)rp->ents[i].data);
		rp->n = 0;
		rp->base = rd64(rec + 1);
		rp->base_term = rd64(rec + 9);
		return 0;
	}
	if (len < 18 || rec[0] != 'E' || rec[17] > RAFT_ENTRY_CONF)
		return -EBADMSG;
	uint64_t term = rd64(rec + 1), index = rd64(rec + 9);
	/* an entry at i replaces everything stored at or after i */
	if (index <= rp->base || index > rp->base + rp->n + 1)
		return -EBADMSG;
	for (size_t i = index - 1 - rp->base; i < rp->n; i++)
		free((void *)rp->ents[i].data);
	rp->n = index - 1 - rp->base;
	if (rp->n == rp->cap) {
		rp->cap = rp->cap ? 2 * rp->cap : 1024;
		rp->ents = realloc(rp->ents, rp->cap * sizeof *rp->ents);
		if (!rp->ents)
			return -ENOMEM;
	}
	size_t dl = len - 18;
	uint8_t *d = malloc(dl ? dl : 1);
	if (!d)
		return -ENOMEM;
	memcpy(d, rec + 18, dl);
	rp->ents[rp->n++] = (struct raft_entry){term, index, d, (uint32_t)dl, rec[17]};
	return 0;
}

/* ------------------------------------------------------------ options */

enum {
	OPT_NAME = 1, OPT_DATA_DIR, OPT_LISTEN_CLIENT, OPT_LISTEN_PEER, OPT_INITIAL_CLUSTER, OPT_HEARTBEAT,
	OPT_ELECTION, OPT_REQUEST_TIMEOUT, OPT_MAX_RANGE_BYTES, OPT_MAX_REQUEST_BYTES, OPT_WATCH_PROGRESS,
	OPT_SNAPSHOT_COUNT, OPT_SNAPSHOT_SLICE, OPT_QUOTA, OPT_CLUSTER_STATE,
};

static const struct cli_option node_options[] = {
	{"name", 0, "NAME", "DSYS_RAFT_NAME", "this member's name in --initial-cluster", OPT_NAME},
	{"data-dir", 0, "DIR", "DSYS_RAFT_DATA_DIR", "where the write-ahead log lives (DIR/wal)", OPT_DATA_DIR},
	{"listen-client", 0, "HOST:PORT", NULL, "client port: etcd's v3 JSON API, /health, /metrics (default 127.0.0.1:2379)",
	 OPT_LISTEN_CLIENT},
	{"listen-peer", 0, "HOST:PORT", NULL, "peer port (default: this member's address in --initial-cluster)",
	 OPT_LISTEN_PEER},
	{"initial-cluster", 0, "LIST", "DSYS_RAFT_INITIAL_CLUSTER",
	 "every member as NAME=http://HOST:PORT, comma-separated, the same on each", OPT_INITIAL_CLUSTER},
	{"heartbeat-interval", 0, "DURATION", NULL, "Raft tick and heartbeat interval (default 100ms)", OPT_HEARTBEAT},
	{"election-timeout", 0, "DURATION", NULL, "election timeout, at least 2 heartbeats (default 1s)", OPT_ELECTION},
	{"request-timeout", 0, "DURATION", NULL, "a client request not answered in this time fails (default 5s)",
	 OPT_REQUEST_TIMEOUT},
	{"max-range-bytes", 0, "SIZE", NULL, "largest range answer; larger ranges are refused (default 64M)",
	 OPT_MAX_RANGE_BYTES},
	{"max-request-bytes", 0, "SIZE", NULL, "largest request body, else 413 (default 1.5M)", OPT_MAX_REQUEST_BYTES},
	{"experimental-watch-progress-notify-interval", 0, "DURATION", NULL,
	 "a watch that asked for progress_notify gets a progress line after this long without events (default 10m, as etcd)",
	 OPT_WATCH_PROGRESS},
	{"snapshot-count", 0, "N", NULL, "applied entries between snapshots, which compact the log; 0: never (default 100000)",
	 OPT_SNAPSHOT_COUNT},
	{"snapshot-slice", 0, "SIZE", NULL, "bytes of the store a snapshot serializes per loop pass (default 256K)",
	 OPT_SNAPSHOT_SLICE},
	{"initial-cluster-state", 0, "STATE", NULL,
	 "new (default), or existing: an empty data dir joins a running cluster and votes only once caught up",
	 OPT_CLUSTER_STATE},
	{"quota-backend-bytes", 0, "SIZE", NULL,
	 "past this store size, writes that add data are refused (etcd's NOSPACE alarm); 0: none (default 2G)", OPT_QUOTA},
	SERVER_CLI_TRACE_OPTION,
	CLI_END
};

static const struct cli_spec node_spec = {
	"dsys-raft node",
	"--name NAME --data-dir DIR --initial-cluster LIST [OPTION]...",
	"Run one member of a Raft cluster serving etcd's v3 JSON API.",
	node_options,
	"Prints one JSON ready line when both ports accept connections; SIGTERM drains.\n",
};

struct node_opts {
	struct node *n;
	struct server_cli sc;
	const char *initial;
	char peer_listen[300];
	uint64_t heartbeat_ms, election_ms, max_range, quota;
	bool existing;
};

static int on_node_option(void *ctx, int id, const char *arg)
{
	struct node_opts *o = ctx;
	uint64_t v;
	switch (id) {
	case OPT_NAME:
		if (!*arg || strlen(arg) >= sizeof o->n->name || strpbrk(arg, "=,\"\\"))
			return cli_bad_value(NULL, arg, "want a name of 1 to 63 characters without = , \" or \\");
		strcpy(o->n->name, arg);
		return 0;
	case OPT_DATA_DIR:
		if (!*arg || strlen(arg) >= sizeof o->n->data_dir - 8)
			return cli_bad_value(NULL, arg, "want a directory");
		strcpy(o->n->data_dir, arg);
		return 0;
	case OPT_LISTEN_CLIENT:
		return server_cli_option(&o->sc, SERVER_CLI_LISTEN, arg) < 0 ? -1 : 0;
	case OPT_LISTEN_PEER: {
		char host[256];
		uint16_t port;
		if (strlen(arg) >= sizeof o->peer_listen || parse_hostport(arg, host, sizeof host, &port) < 0)
			return cli_bad_value(NULL, arg, "want HOST:PORT");
		strcpy(o->peer_listen, arg);
		return 0;
	}
	case OPT_INITIAL_CLUSTER:
		o->initial = arg;
		return 0;
	case OPT_HEARTBEAT:
		if (parse_duration_ms(arg, &v) < 0 || v < 1 || v > 60000)
			return cli_bad_value(NULL, arg, "want a duration from 1ms to 1m");
		o->heartbeat_ms = v;
		return 0;
	case OPT_ELECTION:
		if (parse_duration_ms(arg, &v) < 0 || v < 2 || v > 600000)
			return cli_bad_value(NULL, arg, "want a duration from 2ms to 10m");
		o->election_ms = v;
		return 0;
	case OPT_REQUEST_TIMEOUT:
		if (parse_duration_ms(arg, &v) < 0 || v < 1 || v > 3600000)
			return cli_bad_value(NULL, arg, "want a duration from 1ms to 1h");
		o->n->request_timeout_ms = v;
		return 0;
	case OPT_WATCH_PROGRESS:
		if (parse_duration_ms(arg, &v) < 0 || v < 1 || v > 86400000)
			return cli_bad_value(NULL, arg, "want a duration from 1ms to 24h");
		o->n->watch_progress_ms = v;
		return 0;
	case OPT_CLUSTER_STATE:
		if (strcmp(arg, "new") != 0 && strcmp(arg, "existing") != 0)
			return cli_bad_value(NULL, arg, "want new or existing");
		o->existing = strcmp(arg, "existing") == 0;
		return 0;
	case OPT_QUOTA:
		if (strcmp(arg, "0") == 0) {
			o->quota = 0;
			return 0;
		}
		return server_cli_size(arg, 1024, 1ull << 50, &o->quota) < 0 ? -1 : 0;
	case OPT_SNAPSHOT_COUNT:
		if (parse_u64(arg, &v) < 0 || v > 100000000)
			return cli_bad_value(NULL, arg, "want a count from 0 to 100000000");
		o->n->snap_count = v;
		return 0;
	case OPT_SNAPSHOT_SLICE:
		return server_cli_size(arg, 1, 1ull << 40, &o->n->snap_slice) < 0 ? -1 : 0;
	case OPT_MAX_RANGE_BYTES:
		return server_cli_size(arg, 1024, 1ull << 40, &o->max_range) < 0 ? -1 : 0;
	case OPT_MAX_REQUEST_BYTES:
		if (server_cli_size(arg, 1024, RAFT_FRAME_MAX / 2, &v) < 0)
			return -1;
		o->sc.cfg.limits.max_body = v;
		return 0;
	case SERVER_CLI_TRACE_SAMPLE: /* a server span per client request, as dsys-serve's */
		return server_cli_option(&o->sc, id, arg) < 0 ? -1 : 0;
	}
	return -1;
}

/* "n1=http://127.0.0.1:2380,n2=..." into peers[1..] */
static int parse_initial(struct node *n, const char *list)
{
	char tmp[4096];
	if (strlen(list) >= sizeof tmp)
		return cli_bad_value("--initial-cluster", list, "too long");
	strcpy(tmp, list);
	n->n_peers = 0;
	for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (!eq || eq == t || (size_t)(eq - t) >= sizeof n->peers[0].name || n->n_peers == MAX_PEERS)
			return cli_bad_value("--initial-cluster", list, "want NAME=http://HOST:PORT,... (at most 16 members)");
		*eq = 0;
		const char *url = eq + 1;
		if (strncmp(url, "http://", 7) == 0)
			url += 7;
		struct peer *p = &n->peers[++n->n_peers];
		strcpy(p->name, t);
		if (parse_hostport(url, p->host, sizeof p->host, &p->port) < 0 || p->port == 0)
			return cli_bad_value("--initial-cluster", list, "want NAME=http://HOST:PORT with a port, for each member");
		p->id = n->n_peers;
		p->known = true;
		n->max_id = n->n_peers;
		for (uint32_t i = 1; i < n->n_peers; i++)
			if (strcmp(n->peers[i].name, p->name) == 0)
				return cli_bad_value("--initial-cluster", list, "a name appears twice");
	}
	if (n->n_peers == 0)
		return cli_bad_value("--initial-cluster", list, "no members");
	for (uint32_t i = 1; i <= n->n_peers; i++)
		if (strcmp(n->peers[i].name, n->name) == 0)
			n->id = i;
	if (!n->id) {
		cli_error("--name '%s' is not in --initial-cluster", n->name);
		return -1;
	}
	/* the cluster id: a hash of the member list, the same on every member */
	n->cluster_id = fnv64(list, strlen(list), 0xcbf29ce484222325ull);
	return 0;
}

static int bind_peer(struct node *n, const char *addr)
{
	char host[256];
	uint16_t port;
	if (parse_hostport(addr, host, sizeof host, &port) < 0)
		return -EINVAL;
	struct sockaddr_storage ss;
	socklen_t sl;
	if (numeric_addr(host, port, &ss, &sl) < 0)
		return -EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char ip[INET6_ADDRSTRLEN];
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		snprintf(n->peer_addr, sizeof n->peer_addr, "%s:%u", ip, ntohs(s4->sin_port));
	} else {
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		snprintf(n->peer_addr, sizeof n->peer_addr, "[%s]:%u", ip, ntohs(s6->sin6_port));
	}
	n->peer_fd = fd;
	return 0;
}

int node_main(int argc, char **argv)
{
	static struct node node;
	struct node *n = &node;
	memset(n, 0, sizeof *n);
	n->request_timeout_ms = 5000;
	n->watch_progress_ms = 600000;
	n->snap_count = 100000; /* etcd 3.4's default: a snapshot copies the whole store, history included */
	n->snap_slice = 256u << 10; /* at most 1-3 ms of CPU a slice on a busy 2-core VM (the first
	                               MiBs of the copy fault a 4 KiB page at a time) */
	n->dq_tail = &n->dq;
	n->peer_fd = -1;
	heap_setup();
	/* a file-size limit (ulimit -f) then fails the log's write with EFBIG,
	 * which stops the node with a message, instead of killing it */
	signal(SIGXFSZ, SIG_IGN);
	if (log_init("dsys-raft") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	struct node_opts o = {.n = n, .heartbeat_ms = 100, .election_ms = 1000, .max_range = 64ull << 20,
	                     .quota = 2ull << 30};
	server_cli_init(&o.sc);
	o.sc.cfg.port = 2379;
	o.sc.cfg.limits.max_body = 1536 * 1024;
	int first = 0;
	int r = cli_parse(&node_spec, argc, argv, on_node_option, &o, &first);
	if (r >= 0)
		return r;
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		return EXIT_USAGE;
	}
	if (!n->name[0] || !n->data_dir[0] || !o.initial) {
		cli_error("--name, --data-dir and --initial-cluster are required");
		fprintf(stderr, "Try 'dsys-raft node --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (parse_initial(n, o.initial) < 0)
		return EXIT_USAGE;
	if (o.election_ms < 2 * o.heartbeat_ms) {
		cli_error("--election-timeout must be at least twice --heartbeat-interval");
		return EXIT_USAGE;
	}
	n->tick_ms = o.heartbeat_ms;
	n->election_tick = (uint32_t)(o.election_ms / o.heartbeat_ms);
	if (!o.peer_listen[0])
		snprintf(o.peer_listen, sizeof o.peer_listen, "%s:%u", n->peers[n->id].host, n->peers[n->id].port);

	/* the log first: a damaged one refuses to start, before any port opens */
	char dir[4200], err[512] = "";
	snprintf(dir, sizeof dir, "%.4000s/wal", n->data_dir);
	if (mkdir(n->data_dir, 0700) < 0 && errno != EEXIST) {
		cli_error("cannot create '%s': %s", n->data_dir, strerror(errno));
		return EXIT_NO;
	}
	struct replay rp;
	struct wal_options wo = {.max_record = RAFT_FRAME_MAX, .compact_bytes = 0, .mark_cut = true};
	struct wal_hooks wh = {.replay = replay_cb, .synced = wal_synced_hook};
	r = wal_open(dir, &wo, &wh, n, &n->wal, err, sizeof err);
	rp = n->rp;
	memset(&n->rp, 0, sizeof n->rp);
	if (r < 0) {
		cli_error("cannot recover the log: %s", err[0] ? err : strerror(-r));
		for (size_t i = 0; i < rp.n; i++)
			free((void *)rp.ents[i].data);
		free(rp.ents);
		return r == -EBADMSG ? EXIT_NO : r == -EBUSY ? EXIT_NO : EXIT_UNREACHABLE;
	}
	/* Who this member is: DIR/member once it has started; at the first
	 * start --initial-cluster says, or, joining, the cluster does (see
	 * "membership"). */
	for (uint32_t i = 1; i <= n->n_peers; i++)
		n->boot_voters |= 1ull << i;
	int mf = member_file_read(n);
	bool never_ran = false;
	if (mf < 0) {
		cli_error("cannot read '%s/member': %s", n->data_dir, strerror(-mf));
		wal_close(n->wal);
		return EXIT_NO;
	}
	if (mf == 0) {
		char sp[4200];
		snprintf(sp, sizeof sp, "%.4000s/snap", n->data_dir);
		if (o.existing && wal_replayed(n->wal) == 0 && access(sp, F_OK) < 0) {
			char self_url[300];
			snprintf(self_url, sizeof self_url, "http://%s:%u", n->peers[n->id].host, n->peers[n->id].port);
			/* the answer brings the first cluster's voters (the log's index 0):
			 * the log after it holds every change since, this member's add too */
			int jr = member_join(n, self_url);
			never_ran = jr == 1;
			if (jr < 0) {
				cli_error("no member of --initial-cluster knows %s as a member (add it first: member add): %s",
				          self_url, strerror(-jr));
				wal_close(n->wal);
				return jr == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_UNREACHABLE;
			}
		}
		int wr = member_file_write(n);
		if (wr < 0) {
			cli_error("cannot write '%s/member': %s", n->data_dir, strerror(-wr));
			wal_close(n->wal);
			return EXIT_NO;
		}
	}
	/* An empty data dir told the cluster exists: the member it replaces may
	 * have acknowledged entries and cast votes that this one knows nothing
	 * of -- a cut tail of the whole log.  Noted like one, so a crash before
	 * it is caught up keeps it abstaining. */
	if (o.existing && n->n_peers > 1 && wal_replayed(n->wal) == 0 && !never_ran) {
		char sp[4200];
		snprintf(sp, sizeof sp, "%.4000s/snap", n->data_dir);
		int mr = access(sp, F_OK) < 0 ? wal_tail_cut_mark(n->wal, "an empty member of an existing cluster") : 0;
		if (mr < 0) {
			cli_error("cannot write '%s/cut': %s", dir, strerror(-mr));
			wal_close(n->wal);
			return EXIT_NO;
		}
	}
	n->abstain = wal_tail_cut(n->wal);
	if (n->abstain && n->n_peers == 1) {
		/* alone, there is nobody to catch up from: what was cut is gone
		 * either way, and waiting would only stop the cluster */
		log_warn("'%s' lost a cut tail; a one-member cluster goes on without it", dir);
		wal_tail_cut_clear(n->wal);
		n->abstain = false;
	}
	if (n->abstain)
		log_warn("'%s' lost a cut tail (see its 'cut' file): not voting until a leader catches this member up",
		         dir);
	struct raft_config rc;
	raft_config_default(&rc);
	rc.id = n->id;
	rc.election_tick = n->election_tick;
	rc.heartbeat_tick = 1;
	rc.seed = (uint64_t)getpid() ^ now_ns();
	n->rng = rc.seed;
	if (raft_new(&n->r, &rc) < 0) {
		cli_error("cannot start raft: bad timing settings");
		return EXIT_USAGE;
	}
	struct raft_conf conf = {.voters = n->boot_voters};
	struct raft_snapshot boot = {.meta = {.index = 0, .term = 0, .conf = conf}};
	/* etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds rounded up, so a
	 * lease outlives the election that follows a leader's death */
	struct kv_limits kl = {.max_range_bytes = o.max_range,
	                       .min_lease_ttl = (int64_t)((3 * o.election_ms / 2 + 999) / 1000),
	                       .quota_bytes = o.quota};
	n->kv = kv_new(&kl);
	INVARIANT(n->kv != NULL);
	/* the snapshot, then the log's entries after it (see "snapshots") */
	uint8_t *sdata = NULL;
	size_t slen = 0;
	r = snap_read(n->data_dir, &boot.meta, &sdata, &slen, err, sizeof err);
	size_t skip = 0, keep = rp.n;
	if (r == -ENOENT && rp.base) {
		snprintf(err, sizeof err, "the log starts after index %llu, but '%.400s/snap' is missing",
		         (unsigned long long)rp.base, n->data_dir);
		r = -EBADMSG;
	} else if (r == -ENOENT) {
		r = 0;
	} else if (r == 0 && boot.meta.index < rp.base) {
		snprintf(err, sizeof err, "'%.400s/snap' (index %llu) is older than the log's start (index %llu)",
		         n->data_dir, (unsigned long long)boot.meta.index, (unsigned long long)rp.base);
		r = -EBADMSG;
	} else if (r == 0) {
		const uint8_t *kd;
		const char *tbl;
		size_t kl, tl;
		snap_members_split(sdata, slen, &kd, &kl, &tbl, &tl);
		r = kv_restore(n->kv, kd, kl);
		if (r == 0 && tbl)
			member_table_load(n, tbl, tl, false);
		if (r < 0)
			snprintf(err, sizeof err, "'%.400s/snap' does not hold a store", n->data_dir);
		uint64_t si = boot.meta.index;
		bool matches = si == rp.base ? rp.base_term == boot.meta.term || rp.n == 0
		             : si <= rp.base + rp.n && rp.ents[si - rp.base - 1].term == boot.meta.term;
		if (matches) {
			skip = si - rp.base;
			keep = rp.n - skip;
		} else {
			keep = 0; /* the log is older than the snapshot: it goes */
		}
		if (rp.hs.commit < si)
			rp.hs.commit = si;
		/* Raft keeps no copy: send_msgs reads DIR/snap when it must send it */
		n->snap_index = si;
		n->snap_bytes = slen;
		if (r == 0)
			log_info("the store restored from DIR/snap at index %llu (%zu bytes); %zu entries of the log after it",
			         (unsigned long long)si, slen, keep);
	}
	if (r == 0 && rp.hs.commit > boot.meta.index + keep)
		rp.hs.commit = boot.meta.index + keep; /* a torn tail can cut entries the hard state knew committed */
	n->was_member = ((boot.meta.conf.voters | boot.meta.conf.learners) >> n->id & 1) != 0;
	/* the addresses the log names, committed or not yet: a restarted member
	 * may need one to reach the majority that commits it (applying the
	 * records sets them again, and names too) */
	for (size_t i = skip; r == 0 && i < skip + keep; i++) {
		const struct raft_entry *e = &rp.ents[i];
		if (e->type == RAFT_ENTRY_NORMAL && e->len > CMD_HEAD && e->data[0] == NODE_REC_MEMBER) {
			cJSON *j = cJSON_ParseWithLength((const char *)e->data + CMD_HEAD, e->len - CMD_HEAD);
			const cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "peerURLs"), 0);
			char host[64];
			uint16_t port;
			uint32_t id = e->data[1];
			if (cJSON_IsString(u) && id >= 1 && id <= RAFT_MAX_ID &&
			    url_hostport(u->valuestring, host, sizeof host, &port) == 0)
				peer_set_addr(n, id, host, port);
			cJSON_Delete(j);
		}
	}
	if (r == 0) {
		r = raft_restore(n->r, &rp.hs, &boot, rp.ents + skip, keep);
		if (r < 0)
			snprintf(err, sizeof err, "%s", strerror(-r));
	}
	n->hs = rp.hs;
	free(sdata);
	for (size_t i = 0; i < rp.n; i++)
		free((void *)rp.ents[i].data);
	free(rp.ents);
	if (r < 0) {
		cli_error("cannot recover the log in '%s': %s", dir, err);
		wal_close(n->wal);
		kv_free(n->kv);
		return EXIT_NO;
	}

	r = bind_peer(n, o.peer_listen);
	if (r < 0) {
		cli_error("cannot listen on '%s': %s", o.peer_listen, strerror(-r));
		wal_close(n->wal);
		return EXIT_NO;
	}
	struct metrics *reg = metrics_new();
	metrics_process_register(reg);
	register_metrics(n, reg);
	struct http_router *router = http_router_new(reg);
	api_routes(router, n, reg);
	o.sc.cfg.threads = 1;           /* one loop: the Raft state is single-threaded */
	o.sc.cfg.io = HTTP_IO_UV;
	o.sc.cfg.handle_signals = false; /* ours: leader transfer before the drain */
	o.sc.cfg.metrics = reg;
	o.sc.cfg.handler = http_router_handle;
	o.sc.cfg.handler_arg = router;
	o.sc.cfg.thread_init = thread_init;
	o.sc.cfg.thread_fini = thread_fini;
	o.sc.cfg.thread_arg = n;
	int status = server_cli_listen(&o.sc, &n->srv);
	if (status == EXIT_OK) {
		snprintf(n->client_addr, sizeof n->client_addr, "%s", http_server_address(n->srv));
		struct buf line = BUF_INIT;
		struct json_writer w;
		json_writer_init(&w, &line);
		json_obj_begin(&w);
		json_kv_str(&w, "event", "ready");
		json_kv_str(&w, "name", n->name);
		json_kv_u64(&w, "id", n->id);
		json_kv_str(&w, "listen", n->client_addr);
		json_kv_str(&w, "listen_peer", n->peer_addr);
		json_kv_str(&w, "data_dir", n->data_dir);
		struct raft_status st;
		raft_status(n->r, &st);
		json_kv_u64(&w, "last_index", st.last_index);
		json_kv_u64(&w, "term", st.term);
		json_kv_i64(&w, "pid", (int64_t)getpid());
		json_obj_end(&w);
		status = json_emit(&line) < 0 ? cli_write_error(errno) : EXIT_OK;
		buf_free(&line);
		if (status == EXIT_OK)
			status = server_cli_run(n->srv);
	}
	http_server_free(n->srv);
	http_router_free(router);
	wal_close(n->wal);
	if (n->snap_state == SNAP_WRITING)
		pthread_join(n->snap_thread, NULL); /* it reads snap_buf */
	buf_free(&n->scratch);
	buf_free(&n->snap_buf);
	buf_free(&n->snap_recs);
	for (uint32_t i = 1; i <= n->n_peers; i++) {
		buf_free(&n->peers[i].out);
		buf_free(&n->peers[i].snap_out);
		buf_free(&n->peers[i].snap_in);
	}
	while (n->dq) {
		struct deferred *d = n->dq;
		n->dq = d->next;
		free(d);
	}
	kv_free(n->kv);
	raft_free(n->r);
	metrics_free(reg);
	return status;
}
