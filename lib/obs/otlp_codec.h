/*
 * obs/otlp_codec.h -- OTLP request bodies in both of OTLP/HTTP's
 * encodings, to and from struct trace_span and struct trace_log.
 *
 *   // writing: one request holding n items (batching)
 *   struct otlp_item it[] = {{.resource = &res, .span = &sp}};
 *   otlp_codec_encode(OTLP_PROTOBUF, it, 1, &body);     // or OTLP_JSON
 *
 *   // reading: every span or record of a received body, one call each
 *   int rc = otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_PROTOBUF, data, len,
 *                              on_item, ud, err, sizeof err);
 *
 * Encoding.  OTLP_JSON is the OTLP/JSON mapping (trace_span_json's);
 * OTLP_PROTOBUF is the binary form of lib/obs/otlp_trace.proto and
 * otlp_logs.proto, whose field numbers are OpenTelemetry's.  Each item
 * becomes its own ResourceSpans (or ResourceLogs) entry, so items from
 * different processes may share one request, and two encoded requests
 * of one signal concatenate into one: protobuf appends repeated fields
 * of concatenated messages, and otlp_codec_json_merge does the same for
 * JSON.  The collector's forwarder relies on this to batch what it
 * spooled without decoding it again.
 *
 * Decoding.  Attribute values of OTLP types we do not model (arrays,
 * key-value lists, bytes) become string attributes: their JSON text, or
 * the bytes in hex.  What does not fit a struct trace_span (more than
 * TRACE_MAX_ATTRS attributes, TRACE_MAX_EVENTS events) is counted as
 * dropped, as the sender would have.  A body that is not a valid request
 * -- bad protobuf, bad JSON, an id of the wrong length, a field of the
 * wrong JSON type -- is refused whole with -EINVAL and err saying where;
 * no item of it is delivered.
 *
 * Ownership: items passed to the callback are valid during the call only.
 * Threads: any, each decoding with scratch of its own (kept per thread;
 * a callback that decodes in turn gets a fresh one).
 */
#ifndef DSYS_OTLP_CODEC_H
#define DSYS_OTLP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "obs/trace.h"

enum otlp_encoding { OTLP_PROTOBUF, OTLP_JSON };
enum otlp_signal { OTLP_SIGNAL_TRACES, OTLP_SIGNAL_LOGS };

#define OTLP_CODEC_MAX_ITEMS 1000000  /* spans or records in one request */

struct otlp_item {
	const struct trace_attrs *resource;
	const char *scope_name, *scope_version;  /* NULL: "dsys" and our version */
	const struct trace_span *span;           /* exactly one of span and log */
	const struct trace_log *log;
};

/* Append one export request holding the n items (all spans, or all logs). */
void otlp_codec_encode(enum otlp_encoding enc, const struct otlp_item *items, size_t n,
                       struct buf *out);

/*
 * Call cb once for every span (or log record) in body[0..len), after
 * the whole body was found valid.  Returns the number of items, or
 * -EINVAL (err set), or what cb returned when negative (which stops).
 */
typedef int (*otlp_item_cb)(void *ud, const struct otlp_item *item);
long otlp_codec_decode(enum otlp_signal sig, enum otlp_encoding enc, const uint8_t *body,
                       size_t len, otlp_item_cb cb, void *ud, char *err, size_t errlen);

/*
 * Merge the JSON requests a[0..n) of one signal (each as
 * otlp_codec_encode writes them: {"resourceSpans":[...]}) into one, by
 * joining their arrays.  Returns 0, or -EINVAL for a part of another form.
 */
int otlp_codec_json_merge(enum otlp_signal sig, const struct buf *parts, size_t n, struct buf *out);

/*
 * Inflate a gzip body (Content-Encoding: gzip) into out, at most max
 * bytes, since a few kilobytes may inflate to gigabytes.  Returns 0,
 * -EFBIG past max, or -EINVAL for a damaged stream or bytes after it.
 */
int otlp_codec_gunzip(const void *in, size_t n, uint64_t max, struct buf *out);

#endif
