/*
 * fuzz_raft_msg.c -- libFuzzer target for lib/raft/msg, the decoder of
 * what peers send a Raft node over TCP (a peer may be buggy, or not a
 * peer at all).
 *
 * The input is a byte stream as a connection delivers it.  Properties
 * (trap on violation):
 *   - raft_frame_next never claims more bytes than it was given, and each
 *     frame's payload lies inside the input;
 *   - raft_frame_decode returns 0 or -EINVAL, and on success every pointer
 *     it sets lies inside the payload;
 *   - a decoded frame encodes back to exactly the bytes it came from (the
 *     encoding is canonical), so nothing is read that was not checked.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "raft/msg.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int inside(const uint8_t *p, size_t n, const uint8_t *q, size_t k)
{
	return k == 0 || (q >= p && q + k <= p + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct raft_frame f = {0};
	struct buf again = BUF_INIT;
	size_t off = 0;
	while (off < size) {
		const uint8_t *pl;
		size_t plen;
		long k = raft_frame_next(data + off, size - off, 1u << 20, &pl, &plen);
		if (k <= 0)
			break;
		CHECK((size_t)k <= size - off && plen + 4 == (size_t)k && pl == data + off + 4);
		int rc = raft_frame_decode(pl, plen, &f);
		CHECK(rc == 0 || rc == -EINVAL);
		if (rc == 0) {
			buf_reset(&again);
			switch (f.kind) {
			case RAFT_FRAME_HELLO:
				raft_frame_put_hello(&again, f.from, f.cluster_id);
				break;
			case RAFT_FRAME_MSG:
				for (uint32_t i = 0; i < f.msg.n_entries; i++)
					CHECK(inside(pl, plen, f.msg.entries[i].data, f.msg.entries[i].len));
				if (f.msg.snapshot)
					CHECK(inside(pl, plen, f.msg.snapshot->data, f.msg.snapshot->len));
				raft_frame_put_msg(&again, &f.msg);
				break;
			case RAFT_FRAME_FWD_REQ:
				CHECK(inside(pl, plen, f.body, f.body_len));
				raft_frame_put_fwd_req(&again, f.req_id, f.op, f.aux, f.body, f.body_len);
				break;
			case RAFT_FRAME_FWD_RESP:
				CHECK(inside(pl, plen, f.body, f.body_len));
				raft_frame_put_fwd_resp(&again, f.req_id, f.status, f.body, f.body_len);
				break;
			case RAFT_FRAME_CHUNK:
				CHECK(inside(pl, plen, f.body, f.body_len));
				CHECK(f.offset < f.total && f.body_len > 0 && f.body_len <= f.total - f.offset);
				raft_frame_put_chunk(&again, f.total, f.offset, f.body, f.body_len);
				break;
			default:
				CHECK(0);
			}
			CHECK(again.len == (size_t)k && memcmp(again.data, data + off, (size_t)k) == 0);
		}
		off += (size_t)k;
	}
	buf_free(&again);
	raft_frame_free(&f);
	return 0;
}
