/*
 * raft/msg.h -- the frames Raft nodes exchange over TCP.
 *
 * A peer connection carries frames: u32 length (little-endian, of what
 * follows) | u8 kind | fields.  The kinds:
 *
 *   HELLO     first frame of a connection: who dials (node id) and the
 *             cluster id, so a node never takes messages from another
 *             cluster that reused a port
 *   MSG       one struct raft_msg, its entries and snapshot inline
 *   FWD_REQ   a client request a follower hands to the leader (etcd's
 *             followers forward proposals the same way): request id, op,
 *             an aux word, the request body
 *   FWD_RESP  the leader's answer to it: request id, HTTP status, body
 *   CHUNK     a slice of a MSG payload too large for one frame (an
 *             InstallSnapshot): total payload size, this slice's offset,
 *             the bytes; slices come in order, and the receiver steps the
 *             MSG once it has them all
 *
 * Integers are little-endian and fixed-width; a length is checked against
 * what is left before anything is read, so a decoder never reads past the
 * frame.  Decoding is pure (fuzzed by tests/fuzz/fuzz_raft_msg.c): bad
 * input is -EINVAL, never a crash.
 *
 * Ownership: a decoded frame points into the bytes it was decoded from
 * (entry data, snapshot data, bodies), and into f->ents, an array the
 * frame owns and grows (raft_frame_free releases it).
 */
#ifndef DSYS_RAFT_MSG_H
#define DSYS_RAFT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "raft/raft.h"

#define RAFT_FRAME_MAX (64u << 20) /* a longer length field ends the connection */

enum raft_frame_kind {
	RAFT_FRAME_HELLO = 1,
	RAFT_FRAME_MSG,
	RAFT_FRAME_FWD_REQ,
	RAFT_FRAME_FWD_RESP,
	RAFT_FRAME_CHUNK,
};

struct raft_frame {
	uint8_t kind;
	/* HELLO */
	uint32_t from;
	uint64_t cluster_id;
	/* MSG */
	struct raft_msg msg;
	struct raft_snapshot snap;
	struct raft_entry *ents;   /* owned, grown as needed */
	size_t ents_cap;
	/* CHUNK (body, body_len: the slice) */
	uint64_t total, offset;
	/* FWD_REQ, FWD_RESP */
	uint64_t req_id;
	uint8_t op;
	uint64_t aux;
	uint16_t status;
	const uint8_t *body;
	size_t body_len;
};

/* Each appends one whole frame (length prefix included) to b. */
void raft_frame_put_hello(struct buf *b, uint32_t from, uint64_t cluster_id);
void raft_frame_put_msg(struct buf *b, const struct raft_msg *m);
void raft_frame_put_fwd_req(struct buf *b, uint64_t req_id, uint8_t op, uint64_t aux,
                            const void *body, size_t n);
void raft_frame_put_fwd_resp(struct buf *b, uint64_t req_id, uint16_t status, const void *body, size_t n);

/* A MSG frame's payload (kind byte first, no length prefix, no size
 * limit), for cutting into CHUNK frames. */
void raft_msg_payload(struct buf *b, const struct raft_msg *m);
/* One CHUNK frame: n bytes at offset of a payload of total bytes. */
void raft_frame_put_chunk(struct buf *b, uint64_t total, uint64_t offset, const void *data, size_t n);

/* The first frame of p[0..n): returns its total size (prefix included)
 * and sets *payload and *plen, 0 when more bytes are needed, or -EMSGSIZE
 * when its length is past max (or 0). */
long raft_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **payload, size_t *plen);

/* Decode one frame's payload.  Returns 0 or -EINVAL (-ENOMEM). */
int raft_frame_decode(const uint8_t *p, size_t n, struct raft_frame *f);
void raft_frame_free(struct raft_frame *f);

#endif
