/*
 * raft/msg.c -- encoding and decoding of the peer frames (see msg.h).
 *
 * The writer reserves the length prefix, appends the fields, then patches
 * the prefix: one pass, no size computed twice.  The reader is a cursor
 * that fails sticky: once a read would pass the end, every later read
 * yields zeros and the frame is refused at the end, so the decoder has a
 * single check instead of one per field.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "raft/msg.h"

/* ------------------------------------------------------------ writing */

static void put8(struct buf *b, uint8_t v) { buf_append(b, &v, 1); }

static void put32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	buf_append(b, x, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

static size_t frame_begin(struct buf *b, uint8_t kind)
{
	size_t at = b->len;
	put32(b, 0);
	put8(b, kind);
	return at;
}

static void frame_end(struct buf *b, size_t at)
{
	size_t n = b->len - at - 4;
	INVARIANT_MSG(n <= RAFT_FRAME_MAX, "a frame fits the limit its reader enforces");
	uint8_t *p = (uint8_t *)b->data + at;
	p[0] = (uint8_t)n;
	p[1] = (uint8_t)(n >> 8);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 24);
}

void raft_frame_put_hello(struct buf *b, uint32_t from, uint64_t cluster_id)
{
	size_t at = frame_begin(b, RAFT_FRAME_HELLO);
	put32(b, from);
	put64(b, cluster_id);
	frame_end(b, at);
}

static void put_msg_fields(struct buf *b, const struct raft_msg *m)
{
	put8(b, m->type);
	put8(b, m->reject);
	put8(b, m->force);
	put32(b, m->from);
	put32(b, m->to);
	put64(b, m->term);
	put64(b, m->index);
	put64(b, m->log_term);
	put64(b, m->commit);
	put64(b, m->hint);
	put64(b, m->ctx);
	put32(b, m->n_entries);
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		put64(b, e->term);
		put64(b, e->index);
		put8(b, e->type);
		put32(b, e->len);
		buf_append(b, e->data, e->len);
	}
	put8(b, m->snapshot != NULL);
	if (m->snapshot) {
		const struct raft_snapshot *s = m->snapshot;
		put64(b, s->meta.index);
		put64(b, s->meta.term);
		put64(b, s->meta.conf.voters);
		put64(b, s->meta.conf.learners);
		put32(b, (uint32_t)s->len);
		buf_append(b, s->data, s->len);
	}
}

void raft_frame_put_msg(struct buf *b, const struct raft_msg *m)
{
	size_t at = frame_begin(b, RAFT_FRAME_MSG);
	put_msg_fields(b, m);
	frame_end(b, at);
}

void raft_msg_payload(struct buf *b, const struct raft_msg *m)
{
	put8(b, RAFT_FRAME_MSG);
	put_msg_fields(b, m);
}

void raft_frame_put_chunk(struct buf *b, uint64_t total, uint64_t offset, const void *data, size_t n)
{
	size_t at = frame_begin(b, RAFT_FRAME_CHUNK);
	put64(b, total);
	put64(b, offset);
	buf_append(b, data, n);
	frame_end(b, at);
}

void raft_frame_put_fwd_req(struct buf *b, uint64_t req_id, uint8_t op, uint64_t aux,
                            const void *body, size_t n)
{
	size_t at = frame_begin(b, RAFT_FRAME_FWD_REQ);
	put64(b, req_id);
	put8(b, op);
	put64(b, aux);
	buf_append(b, body, n);
	frame_end(b, at);
}

void raft_frame_put_fwd_resp(struct buf *b, uint64_t req_id, uint16_t status, const void *body, size_t n)
{
	size_t at = frame_begin(b, RAFT_FRAME_FWD_RESP);
	put64(b, req_id);
	put8(b, (uint8_t)status);
	put8(b, (uint8_t)(status >> 8));
	buf_append(b, body, n);
	frame_end(b, at);
}

/* ------------------------------------------------------------ reading */

struct cur {
	const uint8_t *p;
	size_t n;
	bool bad;
};

static const uint8_t *take(struct cur *c, size_t k)
{
	if (c->bad || k > c->n) {
		c->bad = true;
		return NULL;
	}
	const uint8_t *p = c->p;
	c->p += k;
	c->n -= k;
	return p;
}

static uint8_t get8(struct cur *c)
{
	const uint8_t *p = take(c, 1);
	return p ? p[0] : 0;
}

static uint32_t get32(struct cur *c)
{
	const uint8_t *p = take(c, 4);
	return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

static uint64_t get64(struct cur *c)
{
	uint64_t lo = get32(c);
	return lo | (uint64_t)get32(c) << 32;
}

long raft_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **payload, size_t *plen)
{
	if (n < 4)
		return 0;
	uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	if (len == 0 || len > max)
		return -EMSGSIZE;
	if (n - 4 < len)
		return 0;
	*payload = p + 4;
	*plen = len;
	return (long)len + 4;
}

/* The smallest encoded entry: term, index, type, len. */
#define ENTRY_MIN 21

static int decode_msg(struct cur *c, struct raft_frame *f)
{
	struct raft_msg *m = &f->msg;
	memset(m, 0, sizeof *m);
	m->type = get8(c);
	m->reject = get8(c);
	m->force = get8(c);
	m->from = get32(c);
	m->to = get32(c);
	m->term = get64(c);
	m->index = get64(c);
	m->log_term = get64(c);
	m->commit = get64(c);
	m->hint = get64(c);
	m->ctx = get64(c);
	uint32_t ne = get32(c);
	if (c->bad || m->type < RAFT_MSG_APP || m->type > RAFT_MSG_TYPE_MAX || m->reject > 1 || m->force > 1 ||
	    m->from == 0 || m->from > RAFT_MAX_ID || m->to == 0 || m->to > RAFT_MAX_ID)
		return -EINVAL;
	/* a count the bytes left cannot hold is refused before any allocation */
	if (ne > c->n / ENTRY_MIN)
		return -EINVAL;
	if (ne > f->ents_cap) {
		struct raft_entry *e = realloc(f->ents, ne * sizeof *e);
		if (!e)
			return -ENOMEM;
		f->ents = e;
		f->ents_cap = ne;
	}
	for (uint32_t i = 0; i < ne; i++) {
		struct raft_entry *e = &f->ents[i];
		e->term = get64(c);
		e->index = get64(c);
		e->type = get8(c);
		e->len = get32(c);
		e->data = take(c, e->len);
		if (c->bad || e->type > RAFT_ENTRY_CONF)
			return -EINVAL;
		/* entries of one append are consecutive; raft.c relies on it */
		if (e->index != m->index + 1 + i)
			return -EINVAL;
	}
	if (ne && m->type != RAFT_MSG_APP)
		return -EINVAL;
	m->entries = ne ? f->ents : NULL;
	m->n_entries = ne;
	uint8_t has_snap = get8(c);
	if (has_snap > 1 || (has_snap != (m->type == RAFT_MSG_SNAP)))
		return -EINVAL;
	if (has_snap) {
		struct raft_snapshot *s = &f->snap;
		s->meta.index = get64(c);
		s->meta.term = get64(c);
		s->meta.conf.voters = get64(c);
		s->meta.conf.learners = get64(c);
		s->len = get32(c);
		s->data = take(c, s->len);
		if (c->bad || (s->meta.conf.voters & 1) || (s->meta.conf.learners & 1))
			return -EINVAL; /* bit 0 is "nobody" */
		m->snapshot = s;
	}
	return c->bad || c->n ? -EINVAL : 0;
}

int raft_frame_decode(const uint8_t *p, size_t n, struct raft_frame *f)
{
	struct cur c = {p, n, false};
	f->kind = get8(&c);
	switch (f->kind) {
	case RAFT_FRAME_HELLO:
		f->from = get32(&c);
		f->cluster_id = get64(&c);
		return c.bad || c.n || f->from == 0 || f->from > RAFT_MAX_ID ? -EINVAL : 0;
	case RAFT_FRAME_MSG:
		return decode_msg(&c, f);
	case RAFT_FRAME_FWD_REQ:
		f->req_id = get64(&c);
		f->op = get8(&c);
		f->aux = get64(&c);
		if (c.bad)
			return -EINVAL;
		f->body = c.p;
		f->body_len = c.n;
		return 0;
	case RAFT_FRAME_CHUNK:
		f->total = get64(&c);
		f->offset = get64(&c);
		if (c.bad || f->offset >= f->total || c.n == 0 || c.n > f->total - f->offset)
			return -EINVAL;
		f->body = c.p;
		f->body_len = c.n;
		return 0;
	case RAFT_FRAME_FWD_RESP:
		f->req_id = get64(&c);
		f->status = get8(&c);
		f->status |= (uint16_t)(get8(&c) << 8);
		if (c.bad || f->status < 100 || f->status > 599)
			return -EINVAL;
		f->body = c.p;
		f->body_len = c.n;
		return 0;
	}
	return -EINVAL;
}

void raft_frame_free(struct raft_frame *f)
{
	free(f->ents);
	f->ents = NULL;
	f->ents_cap = 0;
}
