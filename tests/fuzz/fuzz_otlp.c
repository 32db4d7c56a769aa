/*
 * fuzz_otlp.c -- libFuzzer target for the collector's body decoders:
 * obs/otlp_codec's protobuf and JSON readers of both signals, and its
 * bounded gunzip.
 *
 * The first byte picks the signal (bit 0), the encoding (bit 1) and
 * whether the rest is gunzipped first (bit 2); the decoder gets a copy of
 * exactly the remaining bytes.  Properties (trap on violation):
 *   - gunzip never passes its bound;
 *   - a body that decodes is delivered whole: the callback runs once per
 *     counted item, and each item, encoded again in either encoding,
 *     decodes to exactly one item;
 *   - a body refused is refused whole, with a reason, and nothing of it
 *     delivered.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/otlp_codec.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct ctx {
	enum otlp_signal sig;
	long calls;
};


static int item_cb(void *ud, const struct otlp_item *it)
{
	struct ctx *c = ud;
	c->calls++;
	CHECK((it->span != NULL) == (c->sig == OTLP_SIGNAL_TRACES));
	struct buf js = BUF_INIT, pb = BUF_INIT;
	otlp_codec_encode(OTLP_JSON, it, 1, &js);
	otlp_codec_encode(OTLP_PROTOBUF, it, 1, &pb);
	char err[256];
	long n1 = otlp_codec_decode(c->sig, OTLP_JSON, (const uint8_t *)js.data, js.len, NULL, NULL, err, sizeof err);
	long n2 = otlp_codec_decode(c->sig, OTLP_PROTOBUF, (const uint8_t *)pb.data, pb.len, NULL, NULL, err, sizeof err);
	CHECK(n1 == 1 && n2 == 1);
	buf_free(&js);
	buf_free(&pb);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	struct ctx c = {.sig = (mode & 1) ? OTLP_SIGNAL_LOGS : OTLP_SIGNAL_TRACES};
	enum otlp_encoding enc = (mode & 2) ? OTLP_JSON : OTLP_PROTOBUF;
	uint8_t *in = malloc(size - 1 ? size - 1 : 1);
	memcpy(in, data + 1, size - 1);
	size_t len = size - 1;
	struct buf inflated = BUF_INIT;
	const uint8_t *body = in;
	if (mode & 4) {
		int rc = otlp_codec_gunzip(in, len, 1 << 20, &inflated);
		CHECK(inflated.len <= (1 << 20) + 65536);
		if (rc < 0) {
			CHECK(rc == -EINVAL || rc == -EFBIG);
			goto out;
		}
		body = (const uint8_t *)inflated.data;
		len = inflated.len;
	}
	char err[256];
	long n = otlp_codec_decode(c.sig, enc, body ? body : in, len, item_cb, &c, err, sizeof err);
	CHECK(n == -EINVAL || n == c.calls);
	if (n < 0)
		CHECK(c.calls == 0 && err[0]);
out:
	buf_free(&inflated);
	free(in);
	return 0;
}
