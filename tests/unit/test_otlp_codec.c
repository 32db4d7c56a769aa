/*
 * test_otlp_codec.c -- obs/otlp_codec: spans and log records survive a
 * trip through either encoding; two requests concatenate into one; a
 * bad body is refused whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "obs/otlp_codec.h"
#include "tap.h"

struct got {
	int n;
	struct buf json[4];    /* each item re-encoded as JSON */
};

static int collect_cb(void *ud, const struct otlp_item *it)
{
	struct got *g = ud;
	if (g->n == 4)
		return -ENOSPC;
	otlp_codec_encode(OTLP_JSON, it, 1, &g->json[g->n]);
	buf_putc(&g->json[g->n], '\0');
	g->n++;
	return 0;
}

static void got_free(struct got *g)
{
	for (int i = 0; i < 4; i++)
		buf_free(&g->json[i]);
	memset(g, 0, sizeof *g);
}

int main(void)
{
	char err[256];
	struct trace_attrs res = {0};
	trace_attr_set_str(&res, "service.name", "codec");
	struct trace_context parent = {.trace_id = {1, 2, 3}, .span_id = {9}, .flags = 1};
	strcpy(parent.state, "k=v");
	struct trace_span sp;
	trace_span_init(&sp, "op", TRACE_KIND_SERVER, &parent);
	trace_attr_set_int(&sp.attrs, "big", -9007199254740993LL);
	trace_attr_set_bool(&sp.attrs, "b", true);
	trace_attr_set_double(&sp.attrs, "d", 0.25);
	trace_span_event(&sp, "ev", 123, NULL);
	trace_span_end(&sp, TRACE_STATUS_ERROR, "bad");
	sp.end_ns = 18446744073709551615ULL; /* the largest fixed64 */

	struct otlp_item it = {.resource = &res, .span = &sp};
	struct buf want = BUF_INIT, pb = BUF_INIT, js = BUF_INIT;
	otlp_codec_encode(OTLP_JSON, &it, 1, &want);
	buf_putc(&want, '\0');
	ok(strstr(want.data, "\"traceState\":\"k=v\"") && strstr(want.data, "\"intValue\":\"-9007199254740993\""),
	   "JSON carries tracestate and exact 64-bit integers");

	for (int enc = 0; enc < 2; enc++) {
		struct buf *b = enc ? &js : &pb;
		otlp_codec_encode(enc ? OTLP_JSON : OTLP_PROTOBUF, &it, 1, b);
		struct got g = {0};
		long n = otlp_codec_decode(OTLP_SIGNAL_TRACES, enc ? OTLP_JSON : OTLP_PROTOBUF,
		                           (const uint8_t *)b->data, b->len, collect_cb, &g, err, sizeof err);
		is_int(n, 1, "%s: one span decoded", enc ? "json" : "protobuf");
		is_str(g.n ? g.json[0].data : "", want.data, "%s: the same span back", enc ? "json" : "protobuf");
		got_free(&g);
	}

	/* two protobuf requests, concatenated, are one request of two spans */
	struct buf two = BUF_INIT;
	buf_append(&two, pb.data, pb.len);
	buf_append(&two, pb.data, pb.len);
	struct got g = {0};
	is_int(otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_PROTOBUF, (const uint8_t *)two.data, two.len,
	                         collect_cb, &g, err, sizeof err), 2, "concatenated protobuf: two spans");
	got_free(&g);
	struct buf parts[2] = {js, js}, merged = BUF_INIT;
	is_int(otlp_codec_json_merge(OTLP_SIGNAL_TRACES, parts, 2, &merged), 0, "JSON requests merge");
	is_int(otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_JSON, (const uint8_t *)merged.data, merged.len,
	                         collect_cb, &g, err, sizeof err), 2, "merged JSON: two spans");
	got_free(&g);
	is_int(otlp_codec_json_merge(OTLP_SIGNAL_LOGS, parts, 2, &merged), -EINVAL,
	       "span requests are not merged as logs");

	/* refused whole */
	static const char *bad[] = {
		"", "[]", "{\"resourceSpans\":{}}", "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{}]}]}]}",
		"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"00\",\"spanId\":\"0000000000000001\"}]}]}]}",
		"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
		"\"spanId\":\"0000000000000001\",\"startTimeUnixNano\":\"-1\"}]}]}]}",
		"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
		"\"spanId\":\"0000000000000001\",\"attributes\":[{\"key\":\"a\",\"value\":{\"intValue\":\"x\"}}]}]}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		g.n = 0;
		long n = otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_JSON, (const uint8_t *)bad[i], strlen(bad[i]),
		                           collect_cb, &g, err, sizeof err);
		ok(n == -EINVAL && g.n == 0 && err[0], "bad JSON body %zu refused whole: %s", i, err);
	}
	/* a valid span followed by a bad one: nothing delivered */
	static const char half[] =
		"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\","
		"\"spanId\":\"0000000000000001\",\"kind\":\"SPAN_KIND_CLIENT\"},{\"traceId\":1}]}]}]}";
	is_int(otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_JSON, (const uint8_t *)half, strlen(half), collect_cb,
	                         &g, err, sizeof err), -EINVAL, "half a good body is refused");
	is_int(g.n, 0, "and none of it delivered");
	static const uint8_t junk[] = {0x0a, 0x05, 0x12, 0x03, 0x12, 0x01};
	is_int(otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_PROTOBUF, junk, sizeof junk, collect_cb, &g, err,
	                         sizeof err), -EINVAL, "truncated protobuf is refused");
	static const uint8_t badid[] = {0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x0a, 0x02, 0x01, 0x02};
	is_int(otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_PROTOBUF, badid, sizeof badid, collect_cb, &g, err,
	                         sizeof err), -EINVAL, "a 2-byte trace id is refused");
	ok(strstr(err, "traceId") != NULL, "naming the field: %s", err);
	is_int(g.n, 0, "nothing delivered");

	/* a log record, both ways */
	struct trace_log l = {.time_ns = 5, .observed_ns = 6, .severity = TRACE_SEV_WARN, .has_span = true,
	                      .flags = 1, .trace_id = {7}, .span_id = {8}};
	trace_log_set(&l.body, "disk almost full");
	trace_log_set(&l.severity_text, "WARN");
	trace_attr_set_str(&l.attrs, "host", "a");
	struct otlp_item li = {.resource = &res, .log = &l};
	struct buf lwant = BUF_INIT;
	otlp_codec_encode(OTLP_JSON, &li, 1, &lwant);
	buf_putc(&lwant, '\0');
	for (int enc = 0; enc < 2; enc++) {
		struct buf b = BUF_INIT;
		otlp_codec_encode(enc ? OTLP_JSON : OTLP_PROTOBUF, &li, 1, &b);
		is_int(otlp_codec_decode(OTLP_SIGNAL_LOGS, enc ? OTLP_JSON : OTLP_PROTOBUF, (const uint8_t *)b.data,
		                         b.len, collect_cb, &g, err, sizeof err), 1, "log %d: one record", enc);
		is_str(g.n ? g.json[0].data : "", lwant.data, "log %d: the same record back", enc);
		got_free(&g);
		buf_free(&b);
	}
	ok(strstr(lwant.data, "\"severityNumber\":13") && strstr(lwant.data, "\"body\":{\"stringValue\":\"disk"),
	   "log JSON has severityNumber and a string body");

	trace_log_free(&l);
	buf_free(&lwant);
	buf_free(&merged);
	buf_free(&two);
	buf_free(&want);
	buf_free(&pb);
	buf_free(&js);
	trace_span_free(&sp);
	trace_attrs_free(&res);
	return tap_done();
}
